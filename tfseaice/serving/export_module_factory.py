"""One export module per task family, chosen by the task's `serving_kind` (as Model Garden's serving factory).

`export_trained(task, model, export_dir, info)` writes the task's SavedModel
atomically and returns `saved_model_cli show --all`-like text of its signatures.
"""

import os
import shutil

from tfseaice import io_utils
from tfseaice.errors import InputError
from tfseaice.serving.pix2pix_export import export_generator
from tfseaice.serving.saved_model import describe_saved_model
from tfseaice.serving.sic_export import export_sic
from tfseaice.serving.zones_export import export_zones
from tfseaice.tasks import TASKS, get_task


def _sic(model, export_dir, info, extra_meta, flip_tta):
    return export_sic(model, export_dir, info, extra_meta=extra_meta, flip_tta=flip_tta)


def _pix2pix(model, export_dir, info, extra_meta, flip_tta):
    return export_generator(model, export_dir, extra_names=info.get("extra_channels"))


def _zones(model, export_dir, info, extra_meta, flip_tta):
    return export_zones(model, export_dir)


# serving_kind -> exporter. The ice-chart tasks share the SIC export (sic_export adds their sod/floe outputs).
EXPORTERS = {"sic": _sic, "icechart": _sic, "generator": _pix2pix, "zones": _zones}
assert {task.serving_kind for task in TASKS} <= set(EXPORTERS), "every registered task needs an exporter"


def export_trained(task, model, export_dir, info=None, overwrite=False, extra_meta=None, flip_tta=False):
    """Export `model` of task `task` to `export_dir` (refused if it exists, unless `overwrite`).

    `flip_tta`: the SIC and ice-chart exports serve the mean of each input's four flips; other tasks refuse it.
    """
    try:
        kind = get_task(task).serving_kind
    except ValueError:
        raise InputError(export_dir, f"no SavedModel export for task {task!r}") from None
    if flip_tta and EXPORTERS[kind] is not _sic:
        raise InputError("--flip_tta", f"applies to SIC and ice-chart models; {task} is exported as trained")
    exporter = EXPORTERS[kind]
    io_utils.refuse_existing(export_dir, overwrite)
    with io_utils.atomic_path(export_dir) as tmp:
        exporter(model, tmp, dict(info or {}), extra_meta, flip_tta)
        if not os.path.isfile(os.path.join(tmp, "saved_model.pb")):
            shutil.rmtree(tmp, ignore_errors=True)
            raise InputError(export_dir, f"the {task} export wrote no saved_model.pb")
    return describe_saved_model(export_dir)
