"""Every generated block of README.md and docs/ equals what its JSON gives, and the docs point nowhere outside.

scripts/results_docs.py regenerates each block (results tables from results/*.json, the
performance table from bench/results/*.json); a figure edited by hand inside a block, or a
JSON changed without regenerating, fails here. The tamper tests show the check can fail.
"""

import importlib.util
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs = _load("results_docs")


def test_every_generated_block_matches_its_json():
    assert docs.differences() == [], "run: python scripts/results_docs.py --write"


def test_every_results_document_has_its_blocks():
    blocks = docs.expected()
    for path in sorted((ROOT / "results").glob("*.json")):
        doc = json.loads(path.read_text())
        assert f"from results/{path.name}" in blocks[docs.RESULTS_DOC][f"results:{doc['table']}"]
        assert f"results/{path.name}" in blocks[docs.README][f"results:{doc['table']}"]


def _copy(tmp_path):
    """The documentation and its JSON in a scratch tree, to tamper with."""
    for rel in (docs.README, docs.RESULTS_DOC, docs.PERFORMANCE_DOC, docs.BENCH_README):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / "results", tmp_path / "results")
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    return tmp_path


def test_a_figure_typed_into_a_block_fails(tmp_path):
    root = _copy(tmp_path)
    readme = root / docs.README
    text = readme.read_text()
    block = text.split("<!-- results:sic -->")[1].split("<!-- /results:sic -->")[0]
    figure = re.search(r"\d\.\d{3} ± \d\.\d{3}", block).group(0)
    readme.write_text(text.replace(block, block.replace(figure, "0.999 ± 0.001", 1)))
    assert docs.differences(str(root)) == ["README.md: results:sic"]
    docs.write(str(root))
    assert docs.differences(str(root)) == [] and readme.read_text() == text


def test_a_changed_json_fails_until_regenerated(tmp_path):
    root = _copy(tmp_path)
    path = root / "results" / "glacier_bf16.json"
    doc = json.loads(path.read_text())
    doc["summary"]["pix2pix"]["ssim"]["mean"] += 0.1
    path.write_text(json.dumps(doc))
    bench = root / "bench" / "results" / "regional_loss.json"
    b = json.loads(bench.read_text())
    b["speedup"] = 1.0
    bench.write_text(json.dumps(b))
    assert docs.differences(str(root)) == ["README.md: results:glacier", "docs/results.md: results:glacier",
                                           "docs/performance.md: bench:report", "bench/README.md: bench:report"]


def test_check_command_passes_on_the_repository():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_docs.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def _doc_files(rel):
    """The files git tracks under `rel` (what a clone holds, not a file left untracked in the working tree)."""
    out = subprocess.run(["git", "ls-files", "--", rel], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not out:  # not a git checkout (e.g. an unpacked source archive): every file there
        path = ROOT / rel
        return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [ROOT / f for f in out if f == rel or f.endswith((".md", ".flags", ".cff"))]


@pytest.mark.parametrize("rel", ["README.md", "docs", "configs", "bench/README.md", "CITATION.cff", "CHANGELOG.md",
                                 "Dockerfile"])
def test_nothing_points_outside_the_repository(rel):
    """No path to a folder beside the clone (a user's clone has none), no bare issue numbers."""
    for path in _doc_files(rel):
        text = path.read_text(errors="replace")
        assert not re.search(r"shared[/]", text), f"{path}: refers to a folder outside the repository"
        # (a document's own issue, e.g. "issue 3.9" of ESA's product specification, is not one of ours)
        assert not re.search(r"\bissue \d+(?![.\d])", text, re.IGNORECASE), f"{path}: an issue number without a link"


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(((?!https?://|#)[^)#\s]+)", text)
    assert "docs/results.md" in targets and "LICENSE" in targets
    for target in targets:
        assert (ROOT / target).exists(), f"README.md links to {target}, not in the repository"


PAGES = ["README.md", "CHANGELOG.md"] + [str(p.relative_to(ROOT)) for p in _doc_files("docs") if p.suffix == ".md"]


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("rel", PAGES)
def test_relative_links_and_anchors_resolve(rel):
    page = ROOT / rel
    for target, anchor in re.findall(r"\]\((?!https?://)([^)#\s]*)(?:#([^)\s]+))?\)", page.read_text()):
        path = (page.parent / target).resolve() if target else page
        assert path.exists(), f"{rel} links to {target}, not in the repository"
        if anchor and path.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"{rel}: no heading #{anchor} in {target or rel}"


def test_make_results_writes_the_full_table_and_the_glance(tmp_path):
    """`make results-<table>` (scripts/results.py) rewrites both places from the same documents."""
    results = _load("results")
    page = "<!-- results:sic -->\nold\n<!-- /results:sic -->\n"
    (tmp_path / "results.md").write_text(page)
    (tmp_path / "README.md").write_text(page)
    doc = json.loads((ROOT / "results" / "sic_bf16.json").read_text())
    results.write_outputs(doc, str(tmp_path / "out"), str(tmp_path / "results.md"), str(tmp_path / "README.md"))
    assert results.markdown(doc) in (tmp_path / "results.md").read_text()
    glance = (tmp_path / "README.md").read_text()
    assert docs.glance("sic", [doc]) in glance and "old" not in glance
