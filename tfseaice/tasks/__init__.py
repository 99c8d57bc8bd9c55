"""Task registry: each task ties data, model, loss, metrics and callbacks together.

The registry owns the task names. A task module defines `get(name)` returning
an object with the contract in docs/architecture.md; export and inference of a
trained task live one layer up, in `tfseaice.serving`.
"""

import importlib

_MODULES = {
    "sic_regional": "tfseaice.tasks.sic",
    "sic_pixel": "tfseaice.tasks.sic",
    "pix2pix": "tfseaice.tasks.pix2pix",
    "glacier_zones": "tfseaice.tasks.glacier_zones",
    "icechart_regional": "tfseaice.tasks.icechart",
    "icechart_pixel": "tfseaice.tasks.icechart",
}

TASK_NAMES = tuple(_MODULES)
SIC_TASKS = ("sic_regional", "sic_pixel")   # tasks whose models map sea-ice concentration
ICECHART_TASKS = ("icechart_regional", "icechart_pixel")  # SIC + stage of development + floe size


def get_task(name):
    """Return the task object registered under `name` (its module is imported on demand)."""
    if name not in _MODULES:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")
    module = importlib.import_module(_MODULES[name])
    return module.get(name)
