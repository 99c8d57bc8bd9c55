"""Training precision: fp32, or Keras' mixed_bfloat16 where the CPU computes bf16 natively.

bench/train_step.py measured the SIC U-Net train step on a 2-core Xeon with
AMX: bf16 about 1.9x the images/s of fp32, with the same losses within the
bf16 tolerance. Without AMX/AVX512-BF16 a CPU emulates bf16 and is slower than
fp32, so "auto" picks bf16 only where the CPU has those instructions (and no
GPU is used; on a GPU ask for the precision you want). Variables stay float32 under mixed_bfloat16, so the weights
load into a float32 model, and `twin` copies them into a bf16 one: whole-scene inference
(tfseaice.serving.loading) makes the same choice as training. SavedModel export stays float32, so that a
served model runs on any CPU.
"""

import contextlib

# TensorFlow and Keras are imported where used: cpu_flags() also serves bench/lib/machine.py,
# which must stay cheap to import.
CHOICES = ("auto", "fp32", "bf16")
POLICY = {"fp32": "float32", "bf16": "mixed_bfloat16"}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(path="/proc/cpuinfo"):
    """The ISA flags of the first CPU listed in /proc/cpuinfo (empty where unreadable)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve(precision, flags=None):
    """"auto" -> "bf16" where the hardware computes bf16 natively, else "fp32"."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {CHOICES}, got {precision!r}")
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "fp32"
    flags = cpu_flags() if flags is None else set(flags)
    return "bf16" if flags & set(BF16_CPU_FLAGS) else "fp32"


@contextlib.contextmanager
def policy(precision):
    """Set the Keras global dtype policy for `precision` ("fp32"/"bf16"), restore it after."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(POLICY[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def model_precision(model):
    """"bf16" if a Keras model (or its `.unet`) computes in bfloat16, else "fp32" (also for non-Keras models)."""
    for m in (getattr(model, "unet", None), model):
        policy = getattr(m, "dtype_policy", None)
        if policy is not None:
            return "bf16" if getattr(policy, "compute_dtype", "float32") == "bfloat16" else "fp32"
    return "fp32"


def twin(model, build, precision):
    """`model` itself for "fp32"; else a copy built by `build()` under `precision`'s Keras policy
    holding `model`'s weights (variables are float32 under either policy, so they copy as they are).

    `build` must build the same architecture as `model` (e.g. the task's `build_model`).
    """
    if precision == "fp32":
        return model
    with policy(precision):
        copy = build()
    copy.set_weights(model.get_weights())
    return copy
