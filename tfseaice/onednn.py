"""TensorFlow's oneDNN CPU kernels on for inference: import this module before TensorFlow.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512_VNNI,
AVX512_BF16, AVX_VNNI or AMX; elsewhere (e.g. an AMD EPYC with AVX2) it runs Eigen's
kernels, which bench/scene_inference.py measured at about half the speed of oneDNN's for
the SIC U-Net forward pass. The entry points that run whole-scene inference (predict,
evaluate, autoice) import this module first, so that `TF_ENABLE_ONEDNN_OPTS=1` is set
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
