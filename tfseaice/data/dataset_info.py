"""`dataset_info.json`: what a folder of TFRecord shards holds. Written last by
the converters, so a folder without it is an incomplete conversion."""

import os

import tensorflow as tf

from tfseaice import io_utils
from tfseaice.data.records import READABLE_VERSIONS, SCHEMA_VERSION
from tfseaice.errors import InputError

FILENAME = "dataset_info.json"


def load(data_dir, kind=None):
    """Read and check dataset_info.json of `data_dir` (kind: 'sic' or 'glacier')."""
    path = os.path.join(data_dir, FILENAME)
    if not tf.io.gfile.exists(path):
        raise InputError(path, "missing: not a finished conversion (run data_prep first, or it was interrupted)")
    info = io_utils.load_json(path, "; convert again")
    if kind and info.get("kind") != kind:
        raise InputError(path, f"holds {info.get('kind')!r} data, this needs {kind!r}")
    version = info.get("schema_version")
    if version not in READABLE_VERSIONS.get(info.get("kind"), (SCHEMA_VERSION,)):
        raise InputError(data_dir, f"converted with schema version {version}; this tfseaice reads version "
                                   f"{SCHEMA_VERSION}: convert again")
    return info


def shard_paths(data_dir, info, split):
    """Full paths of the shards of `split` listed in `info`, all of which must exist."""
    names = info.get("splits", {}).get(split, {}).get("shards", [])
    paths = [os.path.join(data_dir, n) for n in names]
    for p in paths:
        if not tf.io.gfile.exists(p):
            raise InputError(p, f"shard listed in {FILENAME} is missing")
    return paths
