#!/usr/bin/env bash
# Bring your own scenes, end to end on built-in sample data (issue 23): sample Sentinel-1 GRD
# products (SAFE folders and .zip, known sigma0) + SIGRID-3 charts -> scenes in the AI4Arctic raw
# layout (Apache Beam: pairing by time and coverage, GSHHG distance_map) -> TFRecords -> train the
# regional-loss U-Net (short) -> map a chart-less product straight from its .zip -> netCDF, GeoTIFF, panel PNG.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=${OUT:-quickstart_out/sentinel1}
NUM_PRODUCTS=${NUM_PRODUCTS:-7}   # the last one has no chart: it is the one mapped in step 5
SIZE=${SIZE:-768}
TRAIN_ARGS=${TRAIN_ARGS:-}   # extra tfseaice.train flags, e.g. "--epochs=30"
start=$(date +%s)
STEPS=${STEPS:-1 2 3 4 5}
want() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo; echo "=== [$(( $(date +%s) - start )) s] $*"; }

if want 1; then
  step "1/5 sample Sentinel-1 products (SAFE / zip) and their SIGRID-3 charts (shp, zipped shp, gpkg)"
  $PY -m data_prep.make_sample_products --out_dir="$OUT/samples" --num_products="$NUM_PRODUCTS" --size="$SIZE" \
      --seed=1 --chartless=1 --overwrite
fi

if want 2; then
  step "2/5 products + charts -> scenes in the AI4Arctic raw layout (Apache Beam, DirectRunner)"
  $PY -m data_prep.sentinel1_to_scenes --safe_glob="$OUT/samples/products/S1*" --chart_glob="$OUT/samples/charts/*" \
      --output_dir="$OUT/scenes" --max_chart_offset_hours=24 --overwrite
fi

if want 3; then
  step "3/5 scenes -> TFRecord shards (the AI4Arctic converter, unchanged)"
  $PY -m data_prep.ai4arctic_to_tfrecord --input_glob="$OUT/scenes/*.nc" --output_dir="$OUT/records" \
      --patch_size=128 --stride=128 --downsample=2 --val_fraction=0.2 --seed=1 --overwrite
fi

if want 4; then
  step "4/5 train the regional-loss U-Net on the chart polygons (short)"
  $PY -m tfseaice.train --flagfile=configs/quickstart_sic.flags --task=sic_regional --epochs=12 \
      --data_dir="$OUT/records" --model_dir="$OUT/models/sic_regional" --overwrite $TRAIN_ARGS
fi

if want 5; then
  step "5/5 map a chart-less product straight from its .zip (netCDF + GeoTIFF + panel PNG)"
  product=$(ls -d "$OUT"/samples/unseen/S1*.zip | head -n 1)
  $PY -m tfseaice.predict --model_dir="$OUT/models/sic_regional" --scene="$product" \
      --out="$OUT/map.nc" --format=netcdf,geotiff --overwrite
fi
echo
echo "Done in $(( $(date +%s) - start )) s. Outputs in $OUT/:"
echo "  samples/products, charts, unseen   sample products (SAFE / zip) and SIGRID-3 charts"
echo "  scenes/                            AI4Arctic raw-layout scenes, scenes.json, failed_scenes.json"
echo "  records/                           TFRecord shards + dataset_info.json"
echo "  models/sic_regional/               checkpoints, history.csv, TensorBoard logs"
echo "  map.nc, map_*.tif, map.png         SIC and ice/water of the chart-less product"
