"""The class prior of the training charts: each class's share of the labelled polygon pixels.

Why: the levers against the dominant stage (class weights ∝ prior^-alpha, logit
adjustment by tau log prior; tfseaice.losses.composition) need the prior the
training charts teach, read once from the records before training.
"""

import numpy as np
import tensorflow as tf

from tfseaice.data import dataset_info, records
from tfseaice.errors import InputError


def composition_prior(data_dir, chart="sod", split="train", info=None):
    """[C] float64: sum over polygons of pixels x composition / labelled pixels, over `split`'s patches.

    Each (patch, polygon) pair counts with its usable pixels in the patch
    (`polygon_pixel_count`); unlabelled (NaN) rows are skipped.
    """
    info = info or dataset_info.load(data_dir, kind="sic")
    total, pixels = None, 0.0
    for serialized in tf.data.TFRecordDataset(dataset_info.shard_paths(data_dir, info, split)):
        ex = records.decode_sic(serialized)
        comp = ex[f"polygon_{chart}"].numpy().astype(np.float64)
        count = ex["polygon_pixel_count"].numpy().astype(np.float64)
        labelled = np.all(np.isfinite(comp), axis=-1) & (count > 0)
        part = (comp[labelled] * count[labelled, None]).sum(axis=0)
        total = part if total is None else total + part
        pixels += count[labelled].sum()
    if not pixels:
        raise InputError(data_dir, f"no labelled {chart.upper()} polygon pixels in the {split!r} split")
    return total / pixels
