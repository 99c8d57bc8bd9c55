r"""Write realistic sample AI4Arctic scenes (raw layout + `sic_truth`, `sod_truth`, `floe_truth`).

  python -m data_prep.make_sample_scenes --out_dir=DIR --num_scenes=N --size=S --seed=K \
      [--family=A|B] [--ready_to_train] [--overwrite] [--panel=PATH.png]

Scene i is made from a seed derived from (--seed, i), so the same flags give
identical data. --family picks the generator: A (default) the scenes of
tfseaice/simulate/scenes.py, B a second generator written apart from it
(tfseaice/simulate/family_b.py: other textures, wind, incidence, coast and
polygon shapes; same layout and truth variables), to evaluate on scenes a
model was not tuned on. Files: `S1A_EW_GRDM_1SDH_{YYYYMMDDThhmmss}_sample_icechart_{dmi|cis}.nc`
and, with --ready_to_train, the matching 80 m `{YYYYMMDDThhmmss}_{dmi|cis}_prep.nc`.
--panel saves a PNG of the first scene. What the scenes contain:
tfseaice/simulate/scenes.py.
"""

import os
import time

from absl import flags, logging

from tfseaice import cli
from tfseaice import viz
from tfseaice.simulate import family_b, ready_to_train, scenes, writers
from tfseaice.errors import InputError

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", None, "Output folder for the netCDF scenes.", required=True)
flags.DEFINE_integer("num_scenes", 4, "Number of scenes.")
flags.DEFINE_integer("size", 1024, "Scene side in 40 m pixels (real raw scenes are ~10000).")
flags.DEFINE_integer("seed", 0, "Random seed; scene i uses a seed derived from (seed, i).")
flags.DEFINE_bool("ready_to_train", False, "Also write the matching 80 m ready-to-train files.")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.DEFINE_string("panel", None, "Save a PNG panel of the first scene to this path.")
flags.DEFINE_enum("family", "A", ["A", "B"], "Sample-scene family: A (tfseaice.simulate.scenes) or B (family_b: "
                  "another generator, for evaluation on scenes unlike the training ones).")

# family -> (make_scene(seed, size), scene_metadata(seed) -> (time, service))
FAMILIES = {"A": (scenes.make_scene, scenes.scene_metadata), "B": (family_b.make_scene, family_b.scene_metadata)}


def _plan(out_dir, num_scenes, seed, ready_to_train, family="A"):
    """(scene seed, raw path, ready-to-train path or None) per scene, before any work."""
    plan, seen = [], {}
    for i in range(num_scenes):
        s = scenes.scene_seed(seed, i)
        time_str, service = FAMILIES[family][1](s)
        raw = os.path.join(out_dir, scenes.raw_file_name(time_str, service))
        if raw in seen:
            raise InputError(raw, f"scenes {seen[raw]} and {i} would share an acquisition time; use another --seed")
        seen[raw] = i
        rtt = os.path.join(out_dir, scenes.ready_file_name(time_str, service)) if ready_to_train else None
        plan.append((s, raw, rtt))
    return plan


def main(argv):
    del argv
    if FLAGS.num_scenes < 1:
        raise InputError("--num_scenes", f"must be >= 1, got {FLAGS.num_scenes}")
    if FLAGS.size < 64:
        raise InputError("--size", f"must be >= 64 pixels, got {FLAGS.size}")
    out_dir = FLAGS.out_dir
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(out_dir, "exists and is not a folder")
    plan = _plan(out_dir, FLAGS.num_scenes, FLAGS.seed, FLAGS.ready_to_train, FLAGS.family)
    make_scene = FAMILIES[FLAGS.family][0]
    if not FLAGS.overwrite:
        targets = [p for _, raw, rtt in plan for p in (raw, rtt) if p] + ([FLAGS.panel] if FLAGS.panel else [])
        for path in targets:
            if os.path.exists(path):
                raise InputError(path, "output exists; pass --overwrite to replace it")
    os.makedirs(out_dir, exist_ok=True)

    t0 = time.time()
    n_bytes = 0
    n_polygons = 0
    for i, (s, raw, rtt) in enumerate(plan):
        t = time.time()
        ds = make_scene(s, FLAGS.size)
        writers.write_scene(ds, raw)
        n_bytes += os.path.getsize(raw)
        n_polygons += ds.sizes["polygon_codes"] - 1
        if rtt:
            writers.write_scene(ready_to_train.make_ready_to_train(ds), rtt)
            n_bytes += os.path.getsize(rtt)
        if i == 0 and FLAGS.panel:
            viz.save_sample_scene_panel(ds, FLAGS.panel)
        logging.info("scene %d/%d %s: %d polygons, ice service %s, %.1f s%s",
                     i + 1, len(plan), os.path.basename(raw), ds.sizes["polygon_codes"] - 1,
                     ds.attrs["ice_service"], time.time() - t,
                     f" (+ {os.path.basename(rtt)})" if rtt else "")
    kinds = "raw + ready-to-train" if FLAGS.ready_to_train else "raw"
    family = "" if FLAGS.family == "A" else f"family {FLAGS.family}, "
    print(f"Wrote {len(plan)} sample scene(s) ({family}{kinds}, {FLAGS.size} x {FLAGS.size} px at 40 m, "
          f"seed {FLAGS.seed}, {n_polygons} chart polygons, {n_bytes / 1e6:.1f} MB) to {out_dir} "
          f"in {time.time() - t0:.1f} s" + (f"; panel {FLAGS.panel}" if FLAGS.panel else ""))


if __name__ == "__main__":
    cli.run(main)
