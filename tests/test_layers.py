"""The package's import graph: layers import downward only, no cycle, modules stay small.

Every `import` and `from ... import` of every module is read from the source
(function-local ones too), so a cycle hidden in a function body fails here.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Lowest first. A module may import its own layer or a lower one, never a higher one.
LAYERS = (
    ("base", ("tfseaice", "tfseaice.errors", "tfseaice.io_utils", "tfseaice.run_lock", "tfseaice.cli",
              "tfseaice.distribute", "tfseaice.precision", "tfseaice.onednn")),
    ("data", ("tfseaice.data",)),
    ("models, losses, metrics, viz", ("tfseaice.models", "tfseaice.losses", "tfseaice.metrics",
                                      "tfseaice.viz", "tfseaice.tensorboard_panels")),
    ("training framework", ("tfseaice.training",)),
    ("tasks", ("tfseaice.tasks",)),
    ("training loop, serving", ("tfseaice.train_lib", "tfseaice.serving")),
    ("evaluation", ("tfseaice.evaluation",)),
    ("entry points", ("tfseaice.train", "tfseaice.evaluate", "tfseaice.predict", "tfseaice.generate",
                      "tfseaice.export", "tfseaice.autoice")),
    # The sample-data simulator is an annex: it may use the package, no module of the package may use it.
    ("simulate", ("tfseaice.simulate",)),
)
MAX_LINES = 400


def modules():
    """{dotted name: path} of every module of the tfseaice package."""
    out = {}
    for path in sorted((ROOT / "tfseaice").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def layer_of(name):
    """Index in LAYERS of the longest matching prefix, or None."""
    best, rank = -1, None
    for k, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), k
    return rank


def imported_modules(name, path, known):
    """tfseaice modules that `name` imports (resolved to the longest known module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                found.add(t)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for t in targets:
                if t.split(".")[0] in ("data_prep", "bench", "tests"):
                    found.add(t)
    return found


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imported_modules(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if layer_of(m) is None] == []


def test_imports_point_downward_only(graph):
    upward = []
    for src, targets in graph.items():
        for dst in targets:
            if layer_of(dst) is None or layer_of(dst) > layer_of(src):
                upward.append(f"{src} ({LAYERS[layer_of(src)][0]}) imports {dst} "
                              f"({LAYERS[layer_of(dst)][0] if layer_of(dst) is not None else 'outside the package'})")
    assert upward == []


def test_no_import_cycle(graph):
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def folder_of(name):
    """The package folder a module belongs to (tfseaice.tasks.sic -> tfseaice.tasks); a top-level module is its own."""
    return ".".join(name.split(".")[:2])


def folder_pairs(graph):
    """Pairs of different folders that import each other, each as 'a <-> b'."""
    edges = {(folder_of(src), folder_of(dst)) for src, targets in graph.items() for dst in targets}
    return sorted(f"{a} <-> {b}" for a, b in edges if a < b and (b, a) in edges)


def test_no_two_folders_import_each_other(graph):
    assert folder_pairs(graph) == []


def test_the_checks_catch_an_upward_import_and_a_cycle():
    fake = {"tfseaice.data.x": {"tfseaice.tasks.y"}, "tfseaice.tasks.y": {"tfseaice.data.x"}}
    assert layer_of("tfseaice.data.x") < layer_of("tfseaice.tasks.y")
    assert layer_of("tfseaice.train_lib") > layer_of("tfseaice.tasks.sic") > layer_of("tfseaice.training.config")
    with pytest.raises(AssertionError):
        test_imports_point_downward_only(fake)
    with pytest.raises(AssertionError):
        test_no_import_cycle(fake)
    loop = {"tfseaice.training.loop": {"tfseaice.tasks.sic"}, "tfseaice.tasks.sic": {"tfseaice.training.config"}}
    assert folder_pairs(loop) == ["tfseaice.tasks <-> tfseaice.training"]


@pytest.mark.parametrize("top", ["tfseaice", "data_prep", "bench"])
def test_modules_stay_small(top):
    big = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / top).rglob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}
