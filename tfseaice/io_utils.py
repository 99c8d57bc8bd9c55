"""Atomic output writing and --overwrite checks, shared by every entry point.

TensorFlow is imported only for remote paths (gs://, s3://, ...: tf.io.gfile),
so an entry point that refuses an existing output does so before loading it.
"""

import contextlib
import json
import os
import shutil
import tempfile

from tfseaice.errors import InputError


def _fs(path):
    """(exists, isdir, listdir) for `path`: os for local paths, tf.io.gfile for URLs."""
    if "://" in os.fspath(path):
        import tensorflow as tf

        return tf.io.gfile.exists, tf.io.gfile.isdir, tf.io.gfile.listdir
    return os.path.exists, os.path.isdir, os.listdir


def refuse_existing(path, overwrite):
    """Raise unless `path` is absent, an empty folder, or `overwrite` is set."""
    exists, isdir, listdir = _fs(path)
    if not exists(path):
        return
    if isdir(path) and not listdir(path):
        return
    if not overwrite:
        raise InputError(path, "output exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary sibling path; rename it onto `path` only on success."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{ext}", dir=parent)
    os.close(fd)
    os.remove(tmp)
    try:
        yield tmp
        if os.path.isdir(tmp) and os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, obj):
    """Write JSON atomically (also to gs:// and other tf.io.gfile paths)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    if "://" in os.fspath(path):
        import tensorflow as tf

        tmp = f"{path}.tmp"
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(text)
        tf.io.gfile.rename(tmp, path, overwrite=True)
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def read_json(path, missing=None):
    """The JSON object in a local file; `missing` when the file does not exist.

    A file that is not valid JSON (e.g. truncated) raises InputError naming it.
    """
    if not os.path.isfile(path):
        return missing
    return load_json(path)


def load_json(path, fix=""):
    """The JSON object (a dict) in `path` (local or tf.io.gfile URL).

    Our JSON files are written atomically, so an empty, cut or garbled one was
    damaged outside tfseaice (a copy or sync that stopped): one InputError that
    names it and says which, plus `fix` (what to do, "; ..."), not a traceback.
    """
    if "://" in os.fspath(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if not data.strip():
        raise InputError(path, f"is empty ({len(data)} bytes), not JSON{fix}")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"is truncated or not valid JSON ({exc}){fix}") from None
    if not isinstance(obj, dict):
        raise InputError(path, f"holds a JSON {type(obj).__name__}, not an object{fix}")
    return obj


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
