"""absl entry-point helpers: user errors become one line on stderr and exit 1.

Both kinds of user error end the same way, `ERROR: <what it is about>: <what
is wrong>` on one line and exit status 1:
- `InputError(path, what)` raised by the program (or by its flags parser);
- flag errors found by absl while parsing: an unknown flag (also one inside a
  `--flagfile`, which is then named with its line), a missing required flag,
  an illegal value, a flagfile that cannot be opened.
`--verbose` re-raises instead, with the traceback.
"""

import os
import re
import sys

from absl import app, flags, logging

from tfseaice.errors import InputError

flags.DEFINE_bool("verbose", False, "Show full tracebacks for input errors.")

_REQUIRED_RE = re.compile(r"^flag --(\w+)=None: Flag --\1 must have a value other than None\.$")
_VALUE_RE = re.compile(r"^flag --(\w+)=(.*?): (.*)$")


def fail(path, what):
    """Print the one-line error for `path` and exit 1."""
    what = " ".join(str(what).split())  # always one line
    print(f"ERROR: {path}: {what}", file=sys.stderr)
    sys.exit(1)


def _flagfiles(argv):
    """Flagfile paths named in argv (`--flagfile=PATH` or `--flagfile PATH`)."""
    out = []
    for i, arg in enumerate(argv):
        if arg.startswith(("--flagfile=", "-flagfile=")):
            out.append(arg.split("=", 1)[1])
        elif arg in ("--flagfile", "-flagfile") and i + 1 < len(argv):
            out.append(argv[i + 1])
    return out


def _walk_flagfiles(argv, seen=None):
    """(path, stripped lines or None, read error or None) of every flagfile named in argv, nested ones
    right after the file naming them, each once."""
    seen = set() if seen is None else seen
    for path in _flagfiles(argv):
        if path in seen:
            continue
        seen.add(path)
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except (OSError, UnicodeDecodeError) as exc:
            yield path, None, exc
            continue
        yield path, lines, None
        yield from _walk_flagfiles(lines, seen)


def find_in_flagfiles(argv, name):
    """(flagfile, line number) where `--name` is set, following nested flagfiles; None if not found."""
    for path, lines, _ in _walk_flagfiles(argv):
        for no, line in enumerate(lines or (), 1):
            if re.match(rf"^--?(no)?{re.escape(name)}(=|$)", line):
                return path, no
    return None


def damaged_flagfile(argv):
    """(path, what) of the first flagfile named in argv (or nested) that is not UTF-8 text, else None."""
    for path, _, error in _walk_flagfiles(argv):
        if isinstance(error, UnicodeDecodeError):
            return path, f"is not a text flagfile (byte {error.start}: {error.reason}); a damaged or binary file?"
    return None


def _empty_flagfiles(argv):
    out = []
    for path in _flagfiles(argv):
        try:
            if os.path.getsize(path) == 0:
                out.append(path)
        except OSError:
            pass
    return out


def flag_error(exc, argv):
    """(path, what) of the one-line message for an absl flags.Error."""
    if isinstance(exc, flags.UnrecognizedFlagError):
        m = re.search(r"Did you mean: (.*?) \?$", str(exc))   # absl keeps its suggestions in the message only
        tip = f"; did you mean --{', --'.join(m.group(1).split(', '))}?" if m else ""
        found = find_in_flagfiles(argv, exc.flagname)
        if found:
            return found[0], f"line {found[1]}: unknown flag --{exc.flagname}{tip}"
        return f"--{exc.flagname}", f"unknown flag{tip}"
    message = str(exc).strip()
    if isinstance(exc, flags.CantOpenFlagFileError):
        m = re.search(r"No such file or directory: '(.*)'", message)
        return (m.group(1) if m else "--flagfile"), "cannot open flagfile (" + message.split("flagfile: ", 1)[-1] + ")"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    required = [m.group(1) for m in (_REQUIRED_RE.match(line) for line in lines) if m]
    if required and len(required) == len(lines):
        names = ", ".join(f"--{n}" for n in required)
        empty = _empty_flagfiles(argv)
        if empty:  # say why: the flagfile that should have set them holds nothing
            return empty[0], f"flagfile is empty (0 bytes): required flag{'s' if len(required) > 1 else ''} {names} not given"
        return names, f"required flag{'s' if len(required) > 1 else ''} not given"
    if len(lines) == 1:
        m = _VALUE_RE.match(lines[0])
        if m:
            return f"--{m.group(1)}={m.group(2)}", m.group(3)
    return "flags", "; ".join(lines)


def _parser(flags_parser):
    """Wrap a flags parser so that flag errors and InputErrors give one ERROR line."""
    parse = flags_parser or (lambda argv: flags.FLAGS(argv))

    def wrapped(argv):
        verbose = any(a in ("--verbose", "-verbose", "--verbose=true", "--verbose=True") for a in argv)
        try:
            return parse(argv)
        except flags.Error as exc:
            if verbose:
                raise
            fail(*flag_error(exc, argv))
        except InputError as exc:
            if verbose:
                raise
            fail(exc.path, exc.what)
        except UnicodeDecodeError:  # absl reads flagfiles as text
            found = damaged_flagfile(argv)
            if verbose or not found:
                raise
            fail(*found)

    return wrapped


def run(main, flags_parser=None):
    """app.run(main) where InputError and flag errors exit 1 with `ERROR: <path>: <what>`."""

    def wrapped(argv):
        try:
            return main(argv)
        except InputError as exc:
            if flags.FLAGS.is_parsed() and flags.FLAGS.verbose:
                raise
            fail(exc.path, exc.what)

    logging.set_verbosity(logging.INFO)
    app.run(wrapped, flags_parser=_parser(flags_parser))


FLIP_TTA_HELP = ("Average each tile's prediction over its four flips (as is, up-down, left-right, both; "
                 "--model_dir only): 4x the inference time for steadier maps (docs/sic.md).")


def define_scene_inference_flags(tile, batch_size):
    """The flags of every entry point that runs a SIC model over whole scenes (predict, autoice):
    the model (a model folder or a SavedModel), the tiling (defaults: serving.scene_inference's), the precision
    and the flip averaging."""
    flags.DEFINE_string("model_dir", None, "Trained SIC model folder (task.json, checkpoints/).")
    flags.DEFINE_string("saved_model", None, "Exported SavedModel folder (python -m tfseaice.export).")
    flags.DEFINE_string("weights", "best", "--model_dir weights: best, latest, or a .weights.h5 path.")
    flags.DEFINE_integer("tile", tile, "Inference tile size in pixels (multiple of 16).")
    flags.DEFINE_integer("overlap", 64, "Minimum overlap of neighbouring tiles, blended.")
    flags.DEFINE_integer("batch_size", batch_size, "Tiles per model call.")
    flags.DEFINE_enum("precision", "auto", ["auto", "fp32", "bf16"],
                      "Inference precision: bf16 (Keras mixed_bfloat16, --model_dir only), fp32, or auto = bf16 "
                      "where the CPU has AMX/AVX512-BF16, else fp32. SIC is float32 either way.")
    flags.DEFINE_bool("flip_tta", False, FLIP_TTA_HELP)


def check_tiling(tile, overlap):
    """Refuse a --tile/--overlap pair that leaves no aligned step between tiles."""
    if overlap < 0 or tile - overlap < 16:
        raise InputError("--tile/--overlap", f"need tile >= overlap + 16 and overlap >= 0 (got {tile}, {overlap})")
