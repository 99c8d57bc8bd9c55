r"""Panel of held-out masks, real images and generated ones side by side (docs/glacier_realism.md figure).

  python scripts/pix2pix_realism_panel.py --data_dir=RECORDS --model_dirs=A,B --labels=orig,realism \
      --out=panel.png [--split=test] [--num=4] [--seed=0]

Rows: test patches (the first `num` in file order); columns: mask, real, each model's image (BatchNorm
moving statistics, no dropout, speckle seeded by --seed; as `evaluate --task=pix2pix` draws them).
"""

import numpy as np
from absl import flags
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfseaice import cli
from tfseaice.data import dataset_info
from tfseaice.evaluation.pix2pix import generate_batch, load_split
from tfseaice.models.speckle import reset_speckle_seed
from tfseaice.serving.loading import load_trained

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("data_dir", None, "Converted glacier records.", required=True)
    flags.DEFINE_list("model_dirs", None, "pix2pix model folders.", required=True)
    flags.DEFINE_list("labels", None, "Column titles, one per model folder.", required=True)
    flags.DEFINE_string("out", None, "PNG path.", required=True)
    flags.DEFINE_string("split", "test", "Split whose masks are drawn.")
    flags.DEFINE_integer("num", 4, "Patches (rows).")
    flags.DEFINE_integer("seed", 0, "Speckle seed.")


def main(argv):
    del argv
    info = dataset_info.load(FLAGS.data_dir, kind="glacier")
    sar, mask, extra = load_split(FLAGS.data_dir, info, FLAGS.split, FLAGS.num)
    columns = [("mask", mask / 3.0), ("real", sar[..., 0])]
    for model_dir, label in zip(FLAGS.model_dirs, FLAGS.labels):
        model, _ = load_trained(model_dir, "latest", expect_task="pix2pix")
        reset_speckle_seed(model.generator, FLAGS.seed)
        columns.append((label, generate_batch(model.generator, mask, extra)[..., 0]))
    fig = Figure(figsize=(2.2 * len(columns), 2.2 * len(mask)))
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(len(mask), len(columns)))
    for r in range(len(mask)):
        for c, (title, images) in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(images[r], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(FLAGS.out, dpi=80)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
