r"""Table + plot of the synthetic-data experiment (used by scripts/synthetic_gain.sh).

  python scripts/synthetic_gain_table.py --runs_dir=OUT/runs --out_dir=OUT [--overwrite]

Reads RUNS_DIR/<setting>/F<fraction>/seed<seed>/zones.json and writes
synthetic_gain.json, synthetic_gain.md and synthetic_gain.png
(tfseaice.evaluation.synthetic_gain).
"""

from absl import flags

from tfseaice import cli
from tfseaice.evaluation import synthetic_gain

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("runs_dir", None, "Folder of <setting>/F<fraction>/seed<seed>/zones.json.", required=True)
    flags.DEFINE_string("out_dir", None, "Where the table and plot go.", required=True)
    flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")


def main(argv):
    del argv
    rows = synthetic_gain.write_report(FLAGS.runs_dir, FLAGS.out_dir, FLAGS.overwrite)
    print(synthetic_gain.markdown(rows), end="")


if __name__ == "__main__":
    define_flags()
    cli.run(main)
