"""Print a model's metrics beside its baseline's (used by the quickstarts).

    python scripts/compare_metrics.py REGIONAL.json BASELINE.json [--keys=k1,k2,...]
"""

import json
import sys

KEYS = ("polygon_rmse", "polygon_r2", "pixel_rmse", "pixel_r2", "truth_pixel_rmse", "truth_pixel_r2",
        "truth_ice_water_f1")


def _fmt(v):
    return "n/a" if v is None else f"{v:.3f}"


def main(regional, baseline, keys=KEYS):
    rows = {name: json.load(open(path)) for name, path in (("regional loss", regional), ("pixel baseline", baseline))}
    print("| model | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, m in rows.items():
        print(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in keys) + " |")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--keys=")]
    keys = [a.split("=", 1)[1].split(",") for a in sys.argv[1:] if a.startswith("--keys=")]
    main(*args[:2], keys=tuple(keys[-1]) if keys else KEYS)
