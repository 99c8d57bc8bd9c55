"""Test set-up: two logical CPUs so MirroredStrategy tests run real replicas; the kernels the entry points run.

tfseaice.onednn first: in-process tests then run oneDNN's kernels as `python -m tfseaice.train` and the
inference commands do, also on CPUs where TensorFlow leaves them off (AVX2), so a test comparing an
in-process run with a command-line one compares the same kernels.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfseaice.onednn  # noqa: E402,F401  isort: skip
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
