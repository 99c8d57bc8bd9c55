"""Training and inference precision: fp32, Keras' mixed_bfloat16 on CPUs that compute bf16
natively, mixed_float16 on GPUs with Tensor Cores.

Why each choice ("auto", decided by `choose` from what the machine has):
- A **GPU** of compute capability 7.0 or newer (Volta and later: Tensor Cores) runs float16
  matrix maths several times faster than float32 and halves activation memory, which is what
  TensorFlow's mixed-precision guide recommends there: "auto" picks "fp16" (mixed_float16,
  float32 variables, dynamic loss scaling). Older GPUs gain nothing from it and get "fp32".
- A **CPU with AMX or AVX512-BF16**: bench/train_step.py measured the SIC U-Net train step on a
  2-core Xeon with AMX at about 1.9x the images/s of fp32 in bf16, with the same losses within
  the bf16 tolerance: "auto" picks "bf16" (mixed_bfloat16).
- **Any other CPU** emulates bf16 (slower than fp32) and has no fast float16: "fp32".

Variables stay float32 under both mixed policies, so the weights load into a float32 model,
and `twin` copies them into a bf16/fp16 one: whole-scene inference (tfseaice.serving.loading)
makes the same choice as training. Loss scaling: Keras wraps a compiled model's optimizer in a
LossScaleOptimizer under mixed_float16, and the custom train steps call `optimizer.scale_loss`
(a no-op for other policies). SavedModel export stays float32, so a served model runs anywhere.
"""
import contextlib

# TensorFlow and Keras are imported where used: cpu_flags() also serves bench/lib/machine.py,
# which must stay cheap to import.
CHOICES = ("auto", "fp32", "bf16", "fp16")
POLICY = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
FP16_MIN_COMPUTE_CAPABILITY = (7, 0)  # Volta: the first GPUs with Tensor Cores


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


def choose(gpu_compute_capabilities, flags):
    """What "auto" means on a machine: the decision alone, without asking TensorFlow (testable anywhere).

    `gpu_compute_capabilities`: one (major, minor) per visible GPU (None where unknown);
    `flags`: the CPU's ISA flags. "fp16" when every GPU has Tensor Cores (compute capability
    >= 7.0; an unknown capability counts as new enough), "fp32" on older GPUs; without a GPU
    "bf16" where the CPU computes bf16 natively, else "fp32".
    """
    caps = list(gpu_compute_capabilities or ())
    if caps:
        new_enough = all(c is None or tuple(c) >= FP16_MIN_COMPUTE_CAPABILITY for c in caps)
        return "fp16" if new_enough else "fp32"
    return "bf16" if set(flags or ()) & set(BF16_CPU_FLAGS) else "fp32"


def gpu_compute_capabilities():
    """(major, minor) or None per GPU TensorFlow sees; [] without one."""
    import tensorflow as tf

    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            cap = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        except (ValueError, RuntimeError):
            cap = None
        caps.append(tuple(cap) if cap else None)
    return caps


def resolve(precision, flags=None, gpus=None):
    """"auto" -> `choose(...)` for this machine; an explicit choice as it is. ValueError for others.

    `flags` and `gpus` default to this machine's CPU flags and GPUs' compute capabilities.
    """
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {CHOICES}, got {precision!r}")
    if precision != "auto":
        return precision
    gpus = gpu_compute_capabilities() if gpus is None else gpus
    return choose(gpus, cpu_flags() if flags is None else flags)


@contextlib.contextmanager
def policy(precision):
    """Set the Keras global dtype policy for `precision` ("fp32"/"bf16"/"fp16"), restore it after."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(POLICY[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def model_precision(model):
    """"bf16"/"fp16" if a Keras model (or its `.unet`) computes in bfloat16/float16, else "fp32"
    (also for non-Keras models)."""
    for m in (getattr(model, "unet", None), model):
        policy = getattr(m, "dtype_policy", None)
        if policy is not None:
            return {"bfloat16": "bf16", "float16": "fp16"}.get(getattr(policy, "compute_dtype", "float32"), "fp32")
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
