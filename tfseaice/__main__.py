"""`python -m tfseaice --version`: the installed version (tfseaice.__version__), and where to go next.

Kept thin on purpose: it imports nothing but the package's `__init__`, so it
answers at once, without starting TensorFlow.
"""

import sys

from tfseaice import __version__

USAGE = """usage: python -m tfseaice [--version]

tfseaice {version}. The entry points are modules of their own:
  python -m tfseaice.train --flagfile=configs/sic_regional.flags --data_dir=... --model_dir=...
  python -m tfseaice.evaluate | predict | export | autoice | generate --help
  python -m data_prep.ai4arctic_to_tfrecord | glacier_to_tfrecord --help
"""


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["--version"], ["-V"]):
        print(f"tfseaice {__version__}")
        return 0
    if args in ([], ["-h"], ["--help"]):
        print(USAGE.format(version=__version__), end="")
        return 0
    print(f"ERROR: unknown argument(s) {' '.join(args)}\n" + USAGE.format(version=__version__), end="",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
