#!/usr/bin/env bash
# pix2pix glacier SAR synthesis end to end on sample data: sample fjord images
# (CaFFe layout) -> TFRecords (Beam) -> zone-segmentation model (for the
# FCN-score) -> pix2pix (orig, small) -> evaluate -> generate -> export.
# REALISM=1 trains the realism recipe (configs/pix2pix_realism.flags: resize-conv decoder, noise + relief term, Gamma speckle
# with the data's looks; docs/glacier_realism.md) into $OUT/pix2pix_realism instead of the paper's variant.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-quickstart_out/glacier}
TRAIN_ARGS=${TRAIN_ARGS:-}   # extra tfseaice.train flags of both trainings, e.g. "--seed=2"
REALISM=${REALISM:-0}
if [ "$REALISM" = 1 ]; then
  P2P_FLAGFILE=configs/pix2pix_realism.flags P2P=$OUT/pix2pix_realism P2P_NAME="realism recipe"
  GEN_OUT=$P2P/generated RANDOM_OUT=$P2P/random_masks EXPORT_OUT=$OUT/export/pix2pix_realism/1
  INFER_FLAGS=${INFER_FLAGS:-}      # tfseaice.evaluate / generate flags of the recipe
else
  P2P_FLAGFILE=configs/pix2pix_quickstart.flags P2P=$OUT/pix2pix P2P_NAME="orig" INFER_FLAGS=${INFER_FLAGS:-}
  GEN_OUT=$OUT/generated RANDOM_OUT=$OUT/random_masks EXPORT_OUT=$OUT/export/pix2pix/1
fi
start=$(date +%s)
STEPS=${STEPS:-1 2 3 4 5 6 7}   # the steps to run, e.g. "3 4 5" (scripts/results.py reruns the scored ones)
want() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo; echo "=== [$(( $(date +%s) - start )) s] $*"; }

if want 1; then
  step "1/7 sample glacier images and zone masks"
  $PY -m data_prep.make_sample_glaciers --out_dir="$OUT/raw" --num_images=100 --seed=0 --overwrite
fi
if want 2; then
  step "2/7 images -> TFRecord patches (Apache Beam)"
  $PY -m data_prep.glacier_to_tfrecord --data_root="$OUT/raw" --output_dir="$OUT/records" --patch_size=256 \
      --val_fraction=0.1 --seed=1 --overwrite
fi
if want 3; then
  step "3/7 zone-segmentation U-Net on real images (for the FCN-score)"
  $PY -m tfseaice.train --flagfile=configs/glacier_zones.flags --data_dir="$OUT/records" --model_dir="$OUT/zones" \
      --epochs=10 --overwrite $TRAIN_ARGS
fi
if want 4; then
  step "4/7 pix2pix ($P2P_NAME, quickstart size)"
  $PY -m tfseaice.train --flagfile="$P2P_FLAGFILE" --data_dir="$OUT/records" \
      --model_dir="$P2P" --overwrite $TRAIN_ARGS
fi
if want 5; then
  step "5/7 evaluate: per-checkpoint Dice/SSIM curves, Table I row, FCN-score, trivial baseline"
  # shellcheck disable=SC2086
  $PY -m tfseaice.evaluate --task=pix2pix --model_dir="$P2P" --zones_model_dir="$OUT/zones" \
      --out_dir="$P2P/eval" --overwrite $INFER_FLAGS
fi
if want 6; then
  step "6/7 generate SAR from the test masks and from new random masks"
  # shellcheck disable=SC2086
  $PY -m tfseaice.generate --model_dir="$P2P" --masks_glob="$OUT/raw/zones/test/*_zones.png" \
      --out_dir="$GEN_OUT" --overwrite $INFER_FLAGS
  # shellcheck disable=SC2086
  $PY -m tfseaice.generate --model_dir="$P2P" --random_masks=4 --seed=7 --out_dir="$RANDOM_OUT" --overwrite \
      $INFER_FLAGS
fi
if want 7; then
  step "7/7 SavedModel of the generator (mask -> sar)"
  $PY -m tfseaice.export --model_dir="$P2P" --export_dir="$EXPORT_OUT" --overwrite
fi
if want 5 && [ "$REALISM" != 1 ]; then
  echo
  $PY scripts/results.py --table=glacier --check="$OUT"   # this run beside the README's range (a report, never a failure)
fi
echo
echo "Done in $(( $(date +%s) - start )) s. Outputs in $OUT/: raw/, records/, zones/, $(basename "$P2P")/ (eval/: curves.png,"
echo "  table.md, realism.png), ${GEN_OUT#"$OUT"/}/, ${RANDOM_OUT#"$OUT"/}/, ${EXPORT_OUT#"$OUT"/} (SavedModel)."
echo "  TensorBoard: tensorboard --logdir $OUT"
