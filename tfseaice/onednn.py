"""TensorFlow's oneDNN CPU kernels on for training and inference: import this module before TensorFlow.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512_VNNI,
AVX512_BF16, AVX_VNNI or AMX; elsewhere (e.g. an AMD EPYC with AVX2) it runs Eigen's
kernels. On a 2-core AMD EPYC with AVX2 only (docs/performance.md), oneDNN ran the SIC
train step (batch 16 x 256², fp32) at 3.64 images/s against Eigen's 1.75, and whole-scene
inference of a 2500 x 2600 scene in tiles of 512, 4 a call, at 0.74 Mpx/s against 0.41.
The entry points that train or run whole-scene inference (train, predict, evaluate,
autoice) import this module first, so that `TF_ENABLE_ONEDNN_OPTS=1` is set
before TensorFlow reads it; a value the user set (e.g. 0) is kept. Imported after
TensorFlow it changes nothing: `enabled()` tells what TensorFlow actually runs.
"""

import os

ENV = "TF_ENABLE_ONEDNN_OPTS"
os.environ.setdefault(ENV, "1")


def enabled():
    """True if this TensorFlow process runs oneDNN kernels (imports TensorFlow)."""
    from tensorflow.python.util import _pywrap_util_port  # here: importing this module must not load TF

    return bool(_pywrap_util_port.IsMklEnabled())
