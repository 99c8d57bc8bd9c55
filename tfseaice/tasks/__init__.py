"""Task registry: each task ties its options, data, model, loss, metrics and callbacks together.

A task is one module of this folder: an object with the contract in docs/architecture.md
(`name`, `data_kind`, `serving_kind`, `monitor`, `options` (a tfseaice.training.options.TaskOptions
dataclass), `make_datasets`, `build_model`, `callbacks`) and one entry in TASKS below. The train
flags, task.json and the task itself read its options from that one declaration; export and
inference (one layer up, in `tfseaice.serving`) go by its `serving_kind`.
"""

from tfseaice.tasks import glacier_zones, icechart, pix2pix, sic

TASKS = (*sic.TASKS, *icechart.TASKS, pix2pix.TASK, glacier_zones.TASK)

REGISTRY = {task.name: task for task in TASKS}
TASK_NAMES = tuple(REGISTRY)
SIC_TASKS = tuple(task.name for task in TASKS if task.serving_kind == "sic")  # models that map sea-ice concentration
ICECHART_TASKS = tuple(task.name for task in TASKS if task.serving_kind == "icechart")  # SIC + SOD + FLOE


def get_task(name):
    """The task registered under `name`."""
    if name not in REGISTRY:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def option_classes():
    """Every registered task's options dataclass (the train CLI defines their flags)."""
    return [task.options for task in REGISTRY.values()]
