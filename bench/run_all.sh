#!/usr/bin/env bash
# `make bench`: every benchmark of bench/, results in bench/results/*.json.
# About 10 minutes on 2 cores (plus ~2 minutes the first time, to make and cache
# the 10000^2 sample scene under /tmp/tfseaice_bench). Each script prints a
# table and ends with one `key=value ...` line; this script repeats those lines
# at the end.
#
# Environment:
#   PY                   python to use (default .venv/bin/python, else python3)
#   BENCH_QUIET_LOAD     wait before each benchmark until the 1-minute load average
#   BENCH_QUIET_WAIT_S   is below BENCH_QUIET_LOAD (default 1.2), at most
#                        BENCH_QUIET_WAIT_S seconds (default 20; 0 = never wait).
#                        Other jobs on the cores inflate every timing: the load is
#                        recorded with each result.
#   BENCH_RESULTS_DIR    where the JSON goes (default bench/results)
#   BENCH_ONLY           space-separated subset, e.g. "regional_loss train_step"
#   TFSEAICE_TORCH_PYTHON  python with torch for the PyTorch reference
#                        (default /tmp/torchvenv/bin/python if it exists)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
QUIET_LOAD=${BENCH_QUIET_LOAD:-1.2}
QUIET_WAIT=${BENCH_QUIET_WAIT_S:-20}
RESULTS=${BENCH_RESULTS_DIR:-bench/results}
ONLY=${BENCH_ONLY:-"regional_loss ragged_vs_padded train_step train_step_profile input_pipeline scene_inference data_prep"}
LOGDIR=$(mktemp -d /tmp/tfseaice-bench-logs.XXXXXX)
mkdir -p "$RESULTS"

wait_quiet() {
  "$PY" -c "
from bench.lib.timing import wait_for_quiet
print('load', wait_for_quiet($QUIET_LOAD, $QUIET_WAIT), flush=True)"
}

args_for() {
  case "$1" in
    regional_loss)   echo "--repeats=3" ;;
    ragged_vs_padded) echo "--repeats=4" ;;
    train_step)      echo "--suite" ;;
    input_pipeline)  echo "--batches=60 --train_steps=4" ;;
    scene_inference) echo "--sizes=2500x2600,5000x5200 --precisions=fp32,bf16 --variants=${BENCH_SCENE_VARIANTS:-512:4:fp32:0:0,1024:1:fp32:0}" ;;
    data_prep)       echo "--breakdown" ;;
  esac
}

start=$(date +%s)
failed=()
for name in $ONLY; do
  echo
  echo "=== python -m bench.$name  ($(date +%H:%M:%S), $(( $(date +%s) - start )) s so far) ==="
  wait_quiet
  t0=$(date +%s)
  # shellcheck disable=SC2046
  if "$PY" -m "bench.$name" $(args_for "$name") --results_dir="$RESULTS" 2>&1 \
      | grep --line-buffered -v -E "^(WARNING: All log messages|I0000|E0000|W0000)|cuda_|rebuild TensorFlow|oneDNN custom operations" \
      | tee "$LOGDIR/$name.log"; then
    echo "--- $name: $(( $(date +%s) - t0 )) s"
  else
    echo "--- $name FAILED after $(( $(date +%s) - t0 )) s (log: $LOGDIR/$name.log)"
    failed+=("$name")
  fi
done

echo
echo "=== summary ($(( $(date +%s) - start )) s in all; results in $RESULTS/) ==="
for name in $ONLY; do
  printf '%-16s %s\n' "$name" "$(grep -E '^[a-z_0-9]+=' "$LOGDIR/$name.log" 2>/dev/null | tail -1)"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
