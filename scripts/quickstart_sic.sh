#!/usr/bin/env bash
# End to end on built-in sample data: sample scenes -> TFRecords (Beam) ->
# train the regional-loss U-Net and the pixel-wise baseline -> evaluate both on
# held-out scenes -> score them the AutoICE way and write the challenge's upload package ->
# predict one scene -> export a SavedModel for TF Serving.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-quickstart_out}
NUM_SCENES=${NUM_SCENES:-16}
SIZE=${SIZE:-1024}
STRIDE=${STRIDE:-256}
TRAIN_ARGS=${TRAIN_ARGS:-}   # extra tfseaice.train flags, e.g. "--epochs=30"
start=$(date +%s)
STEPS=${STEPS:-1 2 3 4 5 6 7 8}   # the steps to run, e.g. "3 4 5" (scripts/results.py reruns the scored ones)
want() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo; echo "=== [$(( $(date +%s) - start )) s] $*"; }

if want 1; then
  step "1/8 sample scenes (raw AI4Arctic layout, with pixel truth)"
  $PY -m data_prep.make_sample_scenes --out_dir="$OUT/scenes" --num_scenes="$NUM_SCENES" --size="$SIZE" --seed=1 --overwrite --panel="$OUT/sample_scene.png"
  $PY -m data_prep.make_sample_scenes --out_dir="$OUT/test_scenes" --num_scenes=3 --size="$SIZE" --seed=1001 --overwrite
fi

if want 2; then
  step "2/8 scenes -> TFRecord shards (Apache Beam, DirectRunner)"
  $PY -m data_prep.ai4arctic_to_tfrecord --input_glob="$OUT/scenes/*.nc" --output_dir="$OUT/records" \
      --patch_size=256 --stride="$STRIDE" --downsample=2 --val_fraction=0.15 --seed=1 --overwrite
fi

if want 3; then
  step "3/8 train the regional-loss U-Net (polygon labels only)"
  $PY -m tfseaice.train --flagfile=configs/quickstart_sic.flags --task=sic_regional \
      --data_dir="$OUT/records" --model_dir="$OUT/models/sic_regional" --overwrite $TRAIN_ARGS
fi

if want 4; then
  step "4/8 train the pixel-wise baseline (rasterised chart)"
  $PY -m tfseaice.train --flagfile=configs/quickstart_sic.flags --task=sic_pixel \
      --data_dir="$OUT/records" --model_dir="$OUT/models/sic_pixel" --overwrite $TRAIN_ARGS
fi

if want 5; then
  step "5/8 whole-scene evaluation on held-out scenes"
  for m in sic_regional sic_pixel; do
    $PY -m tfseaice.evaluate --task=sic --model_dir="$OUT/models/$m" --scenes_glob="$OUT/test_scenes/*.nc" \
        --downsample=2 --truth_variable=sic_truth --output="$OUT/metrics_$m.json" --overwrite
  done
fi

if want 6; then
  step "6/8 AutoICE: chart-less test files + reference files, scored as the challenge scores; upload package"
  $PY -m data_prep.split_autoice_reference --input_glob="$OUT/test_scenes/*.nc" --test_dir="$OUT/autoice/test" \
      --reference_dir="$OUT/autoice/ref" --overwrite
  $PY -m tfseaice.evaluate --task=sic --model_dir="$OUT/models/sic_regional" --scenes_glob="$OUT/autoice/test/*.nc" \
      --reference_glob="$OUT/autoice/ref/*_reference.nc" --downsample=2 --output="$OUT/autoice/metrics.json" --overwrite
  $PY -m tfseaice.autoice --model_dir="$OUT/models/sic_regional" --scenes_glob="$OUT/autoice/test/*.nc" \
      --out="$OUT/autoice/upload_package.nc" --overwrite
fi

if want 7; then
  step "7/8 products for one scene (netCDF + GeoTIFF + PNG panel)"
  scene=$(ls "$OUT"/test_scenes/*.nc | head -n 1)
  $PY -m tfseaice.predict --model_dir="$OUT/models/sic_regional" --scene="$scene" --downsample=2 \
      --out="$OUT/prediction.nc" --format=netcdf,geotiff --overwrite
fi

if want 8; then
  step "8/8 SavedModel for TF Serving"
  $PY -m tfseaice.export --model_dir="$OUT/models/sic_regional" --export_dir="$OUT/saved_model/sic/1" --overwrite
fi

if want 5; then
  $PY scripts/compare_metrics.py "$OUT/metrics_sic_regional.json" "$OUT/metrics_sic_pixel.json"
  echo
  $PY scripts/results.py --table=sic --check="$OUT"   # this run beside the README's range (a report, never a failure)
fi
echo
echo "Done in $(( $(date +%s) - start )) s. Outputs in $OUT/:"
echo "  scenes/, test_scenes/        sample scenes (netCDF), sample_scene.png"
echo "  records/                     TFRecord shards + dataset_info.json"
echo "  models/sic_regional|pixel/   checkpoints, history.csv, TensorBoard logs (tensorboard --logdir $OUT/models)"
echo "  metrics_*.json / *.md        whole-scene evaluation (paper Table 1 + truth)"
echo "  autoice/                     chart-less test files, reference files, metrics.json, upload_package.nc"
echo "  prediction.nc, prediction_*.tif, prediction.png  pixel SIC, ice/water, polygon SIC"
echo "  saved_model/sic/1            SavedModel for TF Serving"
