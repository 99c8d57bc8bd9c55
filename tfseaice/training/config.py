"""The train configuration (`--flags` of `python -m tfseaice.train`) and what follows from it.

Sits below the tasks: a task builds its optimizer from `learning_rate(cfg, info)`.
"""

import dataclasses
import math

import keras


@dataclasses.dataclass
class TrainConfig:
    task: str
    data_dir: str
    model_dir: str
    epochs: int = 10
    steps_per_epoch: int = 0        # 0 = one pass over the training examples
    validation_steps: int = 0       # 0 = the whole validation split
    batch_size: int = 8             # global batch: split over all replicas of all workers
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"   # or "cosine": decay to 0 over all training steps
    seed: int = 1
    strategy: str = "default"
    num_cpu_replicas: int = 0
    image_every: int = 1            # epochs between TensorBoard image panels
    deterministic: bool = True
    overwrite: bool = False
    skip_corrupt: bool = False      # read corrupt/truncated shards up to their first bad record
    tf_data_service: str = ""       # grpc://HOST:PORT of a tf.data service dispatcher ("" = read locally)
    tf_data_service_mode: str = "distributed_epoch"   # or "parallel_epochs"
    precision: str = "auto"         # "fp32", "bf16" (mixed_bfloat16) or "auto" (bf16 where the CPU has AMX/AVX512-BF16)
    extra: dict = dataclasses.field(default_factory=dict)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in fields})


def learning_rate(cfg, info):
    """The optimizer's learning rate: a float, or a cosine decay over the whole run."""
    if cfg.lr_schedule == "constant":
        return cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(1, total_steps(cfg, info)))
    raise ValueError(f"--lr_schedule must be constant or cosine, got {cfg.lr_schedule!r}")


def total_steps(cfg, info):
    """The run's optimizer steps: steps per epoch (given, or one pass over the training split) x epochs."""
    return (cfg.steps_per_epoch or default_steps(info, "train", cfg.batch_size)) * cfg.epochs


def adam(cfg, info, ema_momentum=0.0):
    """Adam at `learning_rate(cfg, info)`; with `ema_momentum` > 0 it also keeps an exponential moving
    average of the weights and writes it into the model at the run's last step, so the final weights
    (the last epoch's validation, `latest`, and `best` when it wins) are the average."""
    if not ema_momentum:
        return keras.optimizers.Adam(learning_rate(cfg, info))
    return keras.optimizers.Adam(learning_rate(cfg, info), use_ema=True, ema_momentum=float(ema_momentum),
                                 ema_overwrite_frequency=max(1, total_steps(cfg, info)))


def default_steps(info, split, batch_size):
    n = info["splits"][split]["num_examples"]
    return max(1, n // batch_size) if split == "train" else max(1, math.ceil(n / batch_size))

