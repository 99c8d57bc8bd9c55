"""Test-time flip averaging: a network's outputs averaged over the four flips of its input.

Why: a fully convolutional network trained with random flips (tfseaice.data.augment) still
answers a little differently for a flipped scene; the mean of the four answers (as is,
up-down, left-right, both), each flipped back, is a steadier per-pixel estimate. On the
sample scenes it raised every regional model's SIC R² and SOD F1, by less than the seeds' spread
(docs/ice_type_losses.md), for four forward passes per tile. The result is a Keras model with
the same input and output names as the network, in its precision, so tiled inference and
the products see no difference but the figures (`--flip_tta` of predict, evaluate, autoice and export).
"""

import keras
from keras import ops

from tfseaice import precision

FLIPS = ((), (1,), (2,), (1, 2))   # axes of [B, H, W, C] flipped: none, rows, columns, both


def inference_flips(flip_tta):
    """How many answers per tile a model averages: len(FLIPS) with `flip_tta`, else 1 (the products record it)."""
    return len(FLIPS) if flip_tta else 1


def _flip(x, axes):
    for axis in axes:
        x = ops.flip(x, axis)
    return x


def flip_averaged(network):
    """A functional model computing the mean of `network(flip(x))` flipped back, over FLIPS.

    `network`: a single-input functional Keras model of images [B, H, W, C] whose outputs
    (one tensor or a dict) are per-pixel maps [B, H, W, ...]: SIC, class probabilities.
    """
    if len(network.inputs) != 1:
        raise ValueError(f"flip averaging needs a single-input network, {network.name} has {len(network.inputs)}")
    spec = network.inputs[0]
    x = keras.Input(shape=spec.shape[1:], dtype=spec.dtype, name=spec.name)
    total = None
    for axes in FLIPS:
        out = keras.tree.map_structure(lambda y, a=axes: _flip(y, a), network(_flip(x, axes)))
        total = out if total is None else keras.tree.map_structure(ops.add, total, out)
    mean = keras.tree.map_structure(lambda y: ops.multiply(y, 1.0 / len(FLIPS)), total)
    with precision.policy(precision.model_precision(network)):   # the wrapper reports the network's precision
        return keras.Model(x, mean, name=f"{network.name}_flip_averaged")
