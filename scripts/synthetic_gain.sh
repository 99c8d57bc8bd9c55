#!/usr/bin/env bash
# Does synthetic SAR help zone segmentation and the calving front? Sample glaciers (CaFFe layout) -> TFRecords ->
# per real-data setting (all training images, or a seeded REAL_FRACTIONS share of them):
#   zone U-Net on the real images only (F = 0), every seed in SEEDS;
#   per pix2pix recipe in GENERATORS (paper = the paper's "orig" at the quickstart size, realism =
#   configs/pix2pix_realism.flags): pix2pix on that real data -> SYN_N synthetic pairs -> TFRecords ->
#   zone U-Net with --synthetic_fraction=F of those pairs for every F > 0 in FRACTIONS and seed in SEEDS.
#   Every zone U-Net trains until validation mIoU stops improving (--early_stopping=PATIENCE epochs, at
#   most ZONE_EPOCHS); its epochs and steps go to train.json, the CaFFe zone metrics on the real test split
#   (python -m tfseaice.evaluate --task=glacier_zones) to zones.json.
# -> table (mean ± 95 % t-interval of mIoU and front MDE, paired gains over F = 0, steps to convergence,
#    a plain answer for the front) in JSON + Markdown, and a plot.
#
# BUDGET (environment, or `make experiment-synthetic BUDGET=...`) picks the defaults; a variable set in the
# environment wins:
#   smoke  wiring only (minutes): 12 images, 1 seed, real 100/25 %, F 0 and 0.5, 1-epoch generators.
#   small  about 1.5 hours of 2 shared CPU cores (docs/glacier_synthetic.md, split over invocations side by
#          side): 100 images, 5 seeds, real 100/25/10 %, F 0 and 0.5, both generators trained 8 epochs,
#          SYN_N 40, zone models of 10-step epochs to convergence (patience 3, at most 20 epochs).
#   full   (default) 5 seeds, real 100/25/10 %, F 0, 0.25 and 0.5, both generators at the quickstart size
#          (15 epochs), SYN_N 100, zone models of one-pass epochs to convergence (patience 5, at most 40);
#          docs/glacier_synthetic.md: measured speeds, and what it costs.
# Parameters:
#   OUT=quickstart_out/synthetic  NUM_IMAGES  PATCH=256  SYN_N  SYN_SOURCE=random|real_masks  GENERATORS="paper realism"
#   FRACTIONS  SEEDS  REAL_FRACTIONS  SUBSET_SEED=0  SYN_SEED=7  ZONE_CLASSES=3
#   P2P_FLAGFILE_paper=configs/pix2pix_quickstart.flags  P2P_FLAGFILE_realism=configs/pix2pix_realism.flags
#   GEN_FLAGS_paper=""  GEN_FLAGS_realism="--mode=full" (tfseaice.generate flags per recipe)  P2P_FLAGS=""
#   ZONE_FLAGFILE=configs/glacier_zones.flags  ZONE_EPOCHS  PATIENCE  ZONE_FLAGS=""  (e.g. "--steps_per_epoch=5")
#   EVALUATE="$PY -m tfseaice.evaluate"  (the zones evaluator command: writes zones.json, keys miou, mde_m)
# Every finished step is skipped when the script runs again (a finished model folder, a converted folder,
# a zones.json): delete OUT (or a part of it) to redo it. A larger budget in the same OUT reuses the runs
# it shares with a smaller one (same seeds, settings and recipes).
#
# SYN_SOURCE=random: `generate --random_masks=SYN_N` (new plausible fjord masks); real_masks: the real
# training masks of the setting, one image each, generated with dropout on (--dropout_at_inference).
# In the small-real settings pix2pix trains on the same image subset as the zone U-Net, so the synthetic
# pairs carry no information from the images left out.
set -euo pipefail
PY=${PY:-.venv/bin/python}
BUDGET=${BUDGET:-full}
case "$BUDGET" in
    smoke) b_images=12 b_syn=4 b_seeds="1" b_real="1 0.25" b_frac="0 0.5" b_epochs=2 b_patience=1
           b_p2p="--epochs=1 --checkpoint_every=1" b_zone="" ;;
    small) b_images=100 b_syn=40 b_seeds="1 2 3 4 5" b_real="1 0.25 0.1" b_frac="0 0.5" b_epochs=20 b_patience=3
           b_p2p="--epochs=8 --checkpoint_every=4" b_zone="--steps_per_epoch=10" ;;
    full)  b_images=100 b_syn=100 b_seeds="1 2 3 4 5" b_real="1 0.25 0.1" b_frac="0 0.25 0.5" b_epochs=40
           b_patience=5 b_p2p="" b_zone="" ;;
    *) echo "ERROR: BUDGET: must be smoke, small or full, got $BUDGET" >&2; exit 1 ;;
esac
OUT=${OUT:-quickstart_out/synthetic}
NUM_IMAGES=${NUM_IMAGES:-$b_images}
PATCH=${PATCH:-256}
SYN_N=${SYN_N:-$b_syn}
SYN_SOURCE=${SYN_SOURCE:-random}
GENERATORS=${GENERATORS:-paper realism}
FRACTIONS=${FRACTIONS:-$b_frac}
SEEDS=${SEEDS:-$b_seeds}
REAL_FRACTIONS=${REAL_FRACTIONS:-$b_real}
SUBSET_SEED=${SUBSET_SEED:-0}
SYN_SEED=${SYN_SEED:-7}
ZONE_CLASSES=${ZONE_CLASSES:-3}
P2P_FLAGFILE_paper=${P2P_FLAGFILE_paper:-${P2P_FLAGFILE:-configs/pix2pix_quickstart.flags}}
P2P_FLAGFILE_realism=${P2P_FLAGFILE_realism:-configs/pix2pix_realism.flags}
GEN_FLAGS_paper=${GEN_FLAGS_paper:-}
GEN_FLAGS_realism=${GEN_FLAGS_realism:---mode=full}
P2P_FLAGS=${P2P_FLAGS:-$b_p2p}
ZONE_FLAGFILE=${ZONE_FLAGFILE:-configs/glacier_zones.flags}
ZONE_EPOCHS=${ZONE_EPOCHS:-$b_epochs}
PATIENCE=${PATIENCE:-$b_patience}
ZONE_FLAGS=${ZONE_FLAGS:-$b_zone}
EVALUATE=${EVALUATE:-$PY -m tfseaice.evaluate}
case "$SYN_SOURCE" in random|real_masks) ;; *) echo "ERROR: SYN_SOURCE: must be random or real_masks, got $SYN_SOURCE" >&2; exit 1;; esac

start=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - start )) s] $*"; }
finished() { grep -q '"state": "complete"' "$1/task.json" 2>/dev/null; }
converted() { [ -f "$1/dataset_info.json" ]; }
setting_name() { awk -v r="$1" 'BEGIN { if (r + 0 >= 1) print "full"; else printf "real%g\n", r * 100 }'; }

step "sample glacier images and zone masks ($NUM_IMAGES)"
[ -d "$OUT/raw/sar_images" ] || \
    $PY -m data_prep.make_sample_glaciers --out_dir="$OUT/raw" --num_images="$NUM_IMAGES" --seed=0
step "real images -> TFRecord patches"
converted "$OUT/records" || $PY -m data_prep.glacier_to_tfrecord --data_root="$OUT/raw" \
    --output_dir="$OUT/records" --patch_size="$PATCH" --val_fraction=0.1 --seed=1

train_json() {  # MODEL_DIR OUTPUT: epochs run, best epoch and steps of a finished zone model
    $PY - "$1" "$OUT/records" > "$2.tmp" <<'EOF'
import csv, json, os, sys
from tfseaice.data import dataset_info
from tfseaice.training.config import default_steps
from tfseaice.training.model_dir import read_task_file
model_dir, data_dir = sys.argv[1], sys.argv[2]
cfg = read_task_file(model_dir)["config"]
with open(os.path.join(model_dir, "history.csv")) as f:
    epochs = sum(1 for _ in csv.DictReader(f))
with open(os.path.join(model_dir, "checkpoints", "best.json")) as f:
    best = json.load(f)
# an epoch is one pass over the real training split whatever the subset or mix (tfseaice.train_lib)
steps = cfg.get("steps_per_epoch") or default_steps(dataset_info.load(data_dir, kind="glacier"), "train",
                                                     cfg["batch_size"])
print(json.dumps({"epochs_run": epochs, "best_epoch": best["epoch"], "best_val_mean_iou": best["value"],
                  "steps_per_epoch": steps, "steps": epochs * steps, "best_steps": best["epoch"] * steps,
                  "max_epochs": cfg["epochs"], "early_stopping": cfg["extra"].get("early_stopping")}))
EOF
    mv "$2.tmp" "$2"
}

zone_run() {  # RUN_DIR SEED REAL_FRACTION [mix flags...]
    local run=$1 seed=$2 r=$3
    shift 3
    # shellcheck disable=SC2086
    finished "$run/model" || $PY -m tfseaice.train --flagfile="$ZONE_FLAGFILE" --data_dir="$OUT/records" \
        --model_dir="$run/model" --seed="$seed" --epochs="$ZONE_EPOCHS" --early_stopping="$PATIENCE" \
        --real_fraction="$r" --real_fraction_seed="$SUBSET_SEED" --zone_classes="$ZONE_CLASSES" \
        "$@" $ZONE_FLAGS
    [ -f "$run/train.json" ] || train_json "$run/model" "$run/train.json"
    [ -f "$run/zones.json" ] || $EVALUATE --task=glacier_zones --model_dir="$run/model" \
        --data_root="$OUT/raw" --split=test --output="$run/zones.json"
}

for R in $REAL_FRACTIONS; do
    S=$(setting_name "$R")
    SET="$OUT/$S"
    if [[ " $FRACTIONS " == *" 0 "* ]]; then   # without 0 in FRACTIONS: another invocation does the real-only runs
        for SEED in $SEEDS; do
            step "[$S] zone U-Net, real only, seed $SEED"
            zone_run "$OUT/runs/$S/F0/seed$SEED" "$SEED" "$R"
        done
    fi
    for G in $GENERATORS; do
        flagfile_var="P2P_FLAGFILE_$G"
        gen_var="GEN_FLAGS_$G"
        [ -n "${!flagfile_var:-}" ] || { echo "ERROR: no P2P_FLAGFILE_$G for the generator $G" >&2; exit 1; }
        step "[$S/$G] pix2pix on the real data of this setting (--real_fraction=$R, ${!flagfile_var})"
        # shellcheck disable=SC2086
        finished "$SET/pix2pix_$G" || $PY -m tfseaice.train --flagfile="${!flagfile_var}" --data_dir="$OUT/records" \
            --model_dir="$SET/pix2pix_$G" --real_fraction="$R" --real_fraction_seed="$SUBSET_SEED" \
            --zone_classes="$ZONE_CLASSES" --image_every=0 $P2P_FLAGS
        step "[$S/$G] synthetic pairs ($SYN_SOURCE) -> TFRecord patches"
        SYN="$SET/synthetic_$G"
        if [ ! -d "$SYN/sar_images" ]; then
            if [ "$SYN_SOURCE" = random ]; then
                # shellcheck disable=SC2086
                $PY -m tfseaice.generate --model_dir="$SET/pix2pix_$G" --random_masks="$SYN_N" --seed="$SYN_SEED" \
                    --out_dir="$SYN.tmp" --overwrite ${!gen_var:-}
            else
                rm -rf "$SYN.tmp" && mkdir -p "$SYN.tmp/zones/train"
                $PY - "$OUT/records" "$R" "$SUBSET_SEED" <<'EOF' | while read -r name; do
import sys
from tfseaice.data import dataset_info, glacier_mix
data_dir, fraction, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
names = glacier_mix.image_names(data_dir, dataset_info.load(data_dir, kind="glacier"))
print("\n".join(names if fraction >= 1 else glacier_mix.choose_images(names, fraction, seed)))
EOF
                    cp "$OUT/raw/zones/train/${name}_zones.png" "$SYN.tmp/zones/train/"
                done
                # shellcheck disable=SC2086
                $PY -m tfseaice.generate --model_dir="$SET/pix2pix_$G" --masks_glob="$SYN.tmp/zones/train/*_zones.png" \
                    --dropout_at_inference --seed="$SYN_SEED" --out_dir="$SYN.tmp/sar_images/train" ${!gen_var:-}
            fi
            mv "$SYN.tmp" "$SYN"
        fi
        converted "$SET/synthetic_records_$G" || $PY -m data_prep.glacier_to_tfrecord --data_root="$SYN" \
            --output_dir="$SET/synthetic_records_$G" --patch_size="$PATCH" --val_fraction=0 --test_split='' --seed=1
        for F in $FRACTIONS; do
            awk -v f="$F" 'BEGIN { exit !(f + 0 > 0) }' || continue
            for SEED in $SEEDS; do
                step "[$S/$G] zone U-Net, synthetic fraction $F, seed $SEED"
                zone_run "$OUT/runs/$S/${G}_F$F/seed$SEED" "$SEED" "$R" \
                    --synthetic_data_dir="$SET/synthetic_records_$G" --synthetic_fraction="$F"
            done
        done
    done
done

step "table and plot"
$PY scripts/synthetic_gain_table.py --runs_dir="$OUT/runs" --out_dir="$OUT" --overwrite
echo
echo "Done (BUDGET=$BUDGET) in $(( $(date +%s) - start )) s: $OUT/synthetic_gain.md, .json, .png (gain against F); runs in $OUT/runs/"
