#!/usr/bin/env bash
# Ice types end to end on built-in sample data: sample scenes -> TFRecords ->
# train the three-head U-Net on polygon labels only (SIC + SOD + FLOE, regional
# and composition losses) and the AutoICE/MMSeaIce-style pixel baseline -> evaluate
# both on held-out scenes against pixel truth and as the challenge scores ->
# products (sic, sod, floe) for one scene -> SavedModel.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-quickstart_out/icechart}
NUM_SCENES=${NUM_SCENES:-16}
SIZE=${SIZE:-1024}
STRIDE=${STRIDE:-256}
TRAIN_ARGS=${TRAIN_ARGS:-}   # extra tfseaice.train flags, e.g. "--epochs=30 --seed=2"
start=$(date +%s)
STEPS=${STEPS:-1 2 3 4 5 6 7}   # the steps to run, e.g. "3 4" (scripts/results.py reruns the scored ones)
want() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo; echo "=== [$(( $(date +%s) - start )) s] $*"; }

if want 1; then
  step "1/7 sample scenes (raw AI4Arctic layout, egg codes, pixel truth of SIC, SOD and FLOE)"
  $PY -m data_prep.make_sample_scenes --out_dir="$OUT/scenes" --num_scenes="$NUM_SCENES" --size="$SIZE" --seed=1 --overwrite
  $PY -m data_prep.make_sample_scenes --out_dir="$OUT/test_scenes" --num_scenes=3 --size="$SIZE" --seed=1001 --overwrite
fi

if want 2; then
  step "2/7 scenes -> TFRecord shards with per-polygon SIC, SOD and FLOE tables"
  $PY -m data_prep.ai4arctic_to_tfrecord --input_glob="$OUT/scenes/*.nc" --output_dir="$OUT/records" \
      --patch_size=256 --stride="$STRIDE" --downsample=2 --val_fraction=0.15 --seed=1 --overwrite
fi

if want 3; then
  for task in icechart_regional icechart_pixel; do
    step "3/7 train $task"
    $PY -m tfseaice.train --flagfile=configs/quickstart_icechart.flags --task=$task \
        --data_dir="$OUT/records" --model_dir="$OUT/models/$task" --overwrite $TRAIN_ARGS
  done
fi

if want 4; then
  step "4/7 whole-scene evaluation against pixel truth (SIC R², SOD and FLOE weighted F1)"
  for task in icechart_regional icechart_pixel; do
    $PY -m tfseaice.evaluate --task=sic --model_dir="$OUT/models/$task" --scenes_glob="$OUT/test_scenes/*.nc" \
        --downsample=2 --output="$OUT/metrics_$task.json" --overwrite
  done
fi

if want 5; then
  step "5/7 AutoICE: chart-less test files scored against reference files; upload package with SIC, SOD, FLOE"
  $PY -m data_prep.split_autoice_reference --input_glob="$OUT/test_scenes/*.nc" --test_dir="$OUT/autoice/test" \
      --reference_dir="$OUT/autoice/ref" --overwrite
  $PY -m tfseaice.evaluate --task=sic --model_dir="$OUT/models/icechart_regional" --scenes_glob="$OUT/autoice/test/*.nc" \
      --reference_glob="$OUT/autoice/ref/*_reference.nc" --downsample=2 --output="$OUT/autoice/metrics.json" --overwrite
  $PY -m tfseaice.autoice --model_dir="$OUT/models/icechart_regional" --scenes_glob="$OUT/autoice/test/*.nc" \
      --out="$OUT/autoice/upload_package.nc" --overwrite
fi

if want 6; then
  step "6/7 products for one scene (sic, ice_water, sod, floe: netCDF + PNG panel)"
  scene=$(ls "$OUT"/test_scenes/*.nc | head -n 1)
  $PY -m tfseaice.predict --model_dir="$OUT/models/icechart_regional" --scene="$scene" --downsample=2 \
      --out="$OUT/prediction.nc" --overwrite
fi

if want 7; then
  step "7/7 SavedModel for TF Serving (outputs sic, ice_water, sod, floe)"
  $PY -m tfseaice.export --model_dir="$OUT/models/icechart_regional" --export_dir="$OUT/saved_model/icechart/1" --overwrite
fi

if want 4; then
  $PY scripts/compare_metrics.py "$OUT/metrics_icechart_regional.json" "$OUT/metrics_icechart_pixel.json" \
      --keys=polygon_r2,truth_pixel_r2,truth_sod_f1,truth_floe_f1,truth_sic_from_sod_r2,sic_sod_gap_rmse
  echo
  $PY scripts/results.py --table=icechart --check="$OUT"   # this run beside the README's range (a report, never a failure)
fi
echo
echo "Done in $(( $(date +%s) - start )) s. Outputs in $OUT/:"
echo "  records/                          TFRecord shards (schema 2: SIC, SOD, FLOE tables) + dataset_info.json"
echo "  models/icechart_regional|pixel/   checkpoints, history.csv, TensorBoard logs"
echo "  metrics_*.json / *.md, metrics_*_confusion_{truth_,}{SOD,FLOE}.png   whole-scene evaluation"
echo "  autoice/                          reference files, metrics.json (sic_r2, sod_f1, floe_f1, score), upload_package.nc"
echo "  prediction.nc, prediction.png     sic, ice_water, sod, floe"
echo "  saved_model/icechart/1            SavedModel for TF Serving"
