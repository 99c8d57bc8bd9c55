#!/usr/bin/env bash
# Does synthetic SAR help zone segmentation? Sample glaciers (CaFFe layout) -> TFRecords ->
# per real-data setting (all training images, or a seeded REAL_FRACTIONS share of them):
#   pix2pix on that real data -> SYN_N synthetic pairs -> TFRecords ->
#   zone U-Net with --synthetic_fraction=F for every F in FRACTIONS and seed in SEEDS ->
#   CaFFe zone metrics on the real test split (python -m tfseaice.evaluate --task=glacier_zones)
# -> table (mean ± std of mIoU and MDE, gain over F = 0: JSON + Markdown) and a plot of the gain against F.
#
# Parameters (environment variables; defaults = the full experiment, a few hours on 2 cores):
#   OUT=quickstart_out/synthetic  NUM_IMAGES=100  PATCH=256  SYN_N=100  SYN_SOURCE=random|real_masks
#   FRACTIONS="0 0.25 0.5"  SEEDS="1 2 3"  REAL_FRACTIONS="1 0.25"  SUBSET_SEED=0  SYN_SEED=7  ZONE_CLASSES=3
#   P2P_FLAGFILE=configs/pix2pix_quickstart.flags  P2P_FLAGS=""  (e.g. "--epochs=1")
#   ZONE_FLAGFILE=configs/glacier_zones.flags  ZONE_EPOCHS=10  ZONE_FLAGS=""  (e.g. "--steps_per_epoch=5")
#   EVALUATE="$PY -m tfseaice.evaluate"  (the zones evaluator command: writes zones.json, keys miou, mde_m)
# A tiny budget, by hand:
#   NUM_IMAGES=12 SYN_N=4 SEEDS=1 FRACTIONS="0 0.5" P2P_FLAGS="--epochs=1 --checkpoint_every=1" ZONE_EPOCHS=1 \
#     bash scripts/synthetic_gain.sh
# Every finished step is skipped when the script runs again (a finished model folder, a converted folder,
# a zones.json): delete OUT (or a part of it) to redo it.
#
# SYN_SOURCE=random: `generate --random_masks=SYN_N` (new plausible fjord masks); real_masks: the real
# training masks of the setting, one image each, generated with dropout on (--dropout_at_inference).
# In the small-real setting pix2pix trains on the same image subset as the zone U-Net, so the synthetic
# pairs carry no information from the images left out.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-quickstart_out/synthetic}
NUM_IMAGES=${NUM_IMAGES:-100}
PATCH=${PATCH:-256}
SYN_N=${SYN_N:-100}
SYN_SOURCE=${SYN_SOURCE:-random}
FRACTIONS=${FRACTIONS:-0 0.25 0.5}
SEEDS=${SEEDS:-1 2 3}
REAL_FRACTIONS=${REAL_FRACTIONS:-1 0.25}
SUBSET_SEED=${SUBSET_SEED:-0}
SYN_SEED=${SYN_SEED:-7}
ZONE_CLASSES=${ZONE_CLASSES:-3}
P2P_FLAGFILE=${P2P_FLAGFILE:-configs/pix2pix_quickstart.flags}
P2P_FLAGS=${P2P_FLAGS:-}
ZONE_FLAGFILE=${ZONE_FLAGFILE:-configs/glacier_zones.flags}
ZONE_EPOCHS=${ZONE_EPOCHS:-10}
ZONE_FLAGS=${ZONE_FLAGS:-}
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

for R in $REAL_FRACTIONS; do
    S=$(setting_name "$R")
    SET="$OUT/$S"
    step "[$S] pix2pix on the real data of this setting (--real_fraction=$R)"
    # shellcheck disable=SC2086
    finished "$SET/pix2pix" || $PY -m tfseaice.train --flagfile="$P2P_FLAGFILE" --data_dir="$OUT/records" \
        --model_dir="$SET/pix2pix" --real_fraction="$R" --real_fraction_seed="$SUBSET_SEED" \
        --zone_classes="$ZONE_CLASSES" --image_every=0 $P2P_FLAGS
    step "[$S] synthetic pairs ($SYN_SOURCE) -> TFRecord patches"
    if [ ! -d "$SET/synthetic/sar_images" ]; then
        if [ "$SYN_SOURCE" = random ]; then
            $PY -m tfseaice.generate --model_dir="$SET/pix2pix" --random_masks="$SYN_N" --seed="$SYN_SEED" \
                --out_dir="$SET/synthetic.tmp" --overwrite
        else
            rm -rf "$SET/synthetic.tmp" && mkdir -p "$SET/synthetic.tmp/zones/train"
            $PY - "$OUT/records" "$R" "$SUBSET_SEED" <<'EOF' | while read -r name; do
import sys
from tfseaice.data import dataset_info, glacier_mix
data_dir, fraction, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
names = glacier_mix.image_names(data_dir, dataset_info.load(data_dir, kind="glacier"))
print("\n".join(names if fraction >= 1 else glacier_mix.choose_images(names, fraction, seed)))
EOF
                cp "$OUT/raw/zones/train/${name}_zones.png" "$SET/synthetic.tmp/zones/train/"
            done
            $PY -m tfseaice.generate --model_dir="$SET/pix2pix" --masks_glob="$SET/synthetic.tmp/zones/train/*_zones.png" \
                --dropout_at_inference --seed="$SYN_SEED" --out_dir="$SET/synthetic.tmp/sar_images/train"
        fi
        mv "$SET/synthetic.tmp" "$SET/synthetic"
    fi
    converted "$SET/synthetic_records" || $PY -m data_prep.glacier_to_tfrecord --data_root="$SET/synthetic" \
        --output_dir="$SET/synthetic_records" --patch_size="$PATCH" --val_fraction=0 --test_split='' --seed=1

    for F in $FRACTIONS; do
        for SEED in $SEEDS; do
            RUN="$OUT/runs/$S/F$F/seed$SEED"
            step "[$S] zone U-Net, synthetic fraction $F, seed $SEED"
            mix=()
            if awk -v f="$F" 'BEGIN { exit !(f + 0 > 0) }'; then
                mix=(--synthetic_data_dir="$SET/synthetic_records" --synthetic_fraction="$F")
            fi
            # shellcheck disable=SC2086
            finished "$RUN/model" || $PY -m tfseaice.train --flagfile="$ZONE_FLAGFILE" --data_dir="$OUT/records" \
                --model_dir="$RUN/model" --seed="$SEED" --epochs="$ZONE_EPOCHS" --real_fraction="$R" \
                --real_fraction_seed="$SUBSET_SEED" --zone_classes="$ZONE_CLASSES" "${mix[@]}" $ZONE_FLAGS
            # shellcheck disable=SC2086
            [ -f "$RUN/zones.json" ] || $EVALUATE --task=glacier_zones --model_dir="$RUN/model" \
                --data_root="$OUT/raw" --split=test --output="$RUN/zones.json"
        done
    done
done

step "table and plot"
$PY scripts/synthetic_gain_table.py --runs_dir="$OUT/runs" --out_dir="$OUT" --overwrite
echo
echo "Done in $(( $(date +%s) - start )) s: $OUT/synthetic_gain.md, .json, .png (gain against F); runs in $OUT/runs/"
