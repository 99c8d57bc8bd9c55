# tfseaice: the two commands a newcomer needs are `make quickstart` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
OUT    ?= quickstart_out
# Every install goes through the lock: the exact versions the test suite passed with (docs/reproducibility.md).
LOCK   ?= requirements/lock-py311.txt
UV     := uv==0.13.9
STAMP  := $(VENV)/.installed-$(shell cat setup.py $(LOCK) | cksum | cut -d' ' -f1)
COMPILE = $(VENV)/bin/uv pip compile setup.py --extra test --extra beam --python-version 3.11 \
          --python-platform x86_64-manylinux_2_28 --no-header --quiet

.PHONY: install test quickstart quickstart-glacier quickstart-icechart quickstart-sentinel1 experiment-synthetic results-sic results-glacier results-icechart bench clean beam-engines test-engines lock upgrade-deps bench-compare torch-env

$(STAMP): setup.py $(LOCK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "ERROR: $(PYTHON) not found (tfseaice needs Python 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(UV)"
	# --compile-bytecode: .pyc files for all of site-packages at install. Without them every process
	# compiles TensorFlow's sources again where PYTHONDONTWRITEBYTECODE is set (import 12 s -> 5 s).
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) --constraint $(LOCK) -e ".[test,beam]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# The whole test suite (861 tests, 13.0-14.6 min on a 2-core AMD EPYC with AVX512-BF16 since the install compiles bytecode; 21.5-23.1 min before, when every test process compiled TensorFlow's sources again; 35.9 min on a 2-core AMD EPYC with AVX2 only, fp32, before the test processes ran oneDNN; `make test-engines` adds Flink and Spark, ~8 min).
test: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n 2 --dist=loadfile --durations=25 tests

# Sample scenes -> TFRecords -> train regional + pixel baseline -> evaluate -> predict -> export.
quickstart: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 OUT=$(OUT) bash scripts/quickstart_sic.sh

# Sample glacier images -> TFRecords -> pix2pix -> evaluate -> generate.
# REALISM=1: the realism recipe (configs/pix2pix_realism.flags) instead of the paper's variant.
REALISM ?= 0
quickstart-glacier: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 OUT=$(OUT)/glacier REALISM=$(REALISM) bash scripts/quickstart_glacier.sh

# Ice types: sample scenes -> TFRecords -> SIC + SOD + FLOE U-Net (regional) and the pixel baseline -> evaluate -> products.
quickstart-icechart: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 OUT=$(OUT)/icechart bash scripts/quickstart_icechart.sh

# Bring your own scenes: sample Sentinel-1 products + SIGRID-3 charts -> scenes (Beam) -> TFRecords -> train (short)
# -> map a chart-less product straight from its .zip (GeoTIFF + panel). docs/sentinel1_pipeline.md.
quickstart-sentinel1: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 OUT=$(OUT)/sentinel1 bash scripts/quickstart_sentinel1.sh

# Does synthetic SAR help segmentation and the front? pix2pix (paper's and realism recipe) -> synthetic pairs ->
# zone U-Net to convergence with and without them (5 seeds, 100/25/10 % of the real images) -> CaFFe metrics
# -> $(OUT)/synthetic/synthetic_gain.{md,json,png}. BUDGET=smoke|small|full (scripts/synthetic_gain.sh).
BUDGET ?= full
experiment-synthetic: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 PY=$(PY) OUT=$(OUT)/synthetic BUDGET=$(BUDGET) bash scripts/synthetic_gain.sh

# A README results table rerun over seeds (training seed, data fixed) at the quickstart budget: writes
# results/<table>_<precision>.json and the README block between <!-- results:<table> --> markers.
# SEEDS=1,2,3, JOBS=seeds at once; TRAIN_ARGS=--precision=fp32 with WORK=results_out/<table>_fp32 on a bf16 CPU.
# LOSSES=xent,sse,pll_focal (results-icechart): the --composition_loss options side by side on the same data and
# seeds, beside the pixel baseline -> results/icechart_losses_<precision>.json (scripts/results_losses.py).
SEEDS  ?= 1,2,3
JOBS   ?= 1
LOSSES ?=
results-sic results-glacier results-icechart: results-%: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 $(PY) scripts/results.py --table=$* --seeds=$(SEEDS) --jobs=$(JOBS) --py=$(PY) $(if $(WORK),--work_dir=$(WORK)) $(if $(LOSSES),--losses=$(LOSSES))

# Every benchmark of bench/ (about 10 minutes on 2 cores); results in bench/results/*.json.
bench: $(STAMP)
	PY=$(PY) bash bench/run_all.sh

# tfseaice against PyTorch, pair by pair (inference, training, regional loss), interleaved with repeats, on this
# CPU kind: bench/results/compare_<kind>.json and the bench:compare block of docs/performance.md (~15 min).
# PyTorch: TORCH_PY=/path/to/python with torch, else a pinned environment built in $(TORCH_VENV) (5 GB, once).
TORCH_VENV ?= .cache/torchvenv
TORCH_PY   ?=
torch-env: $(TORCH_VENV)/.installed-$(shell cksum < bench/torch-requirements.txt | cut -d' ' -f1)
$(TORCH_VENV)/.installed-%: bench/torch-requirements.txt | $(STAMP)
	test -x $(TORCH_VENV)/bin/python || $(VENV)/bin/uv venv --quiet --python $(PYTHON) $(TORCH_VENV)
	$(VENV)/bin/uv pip install --quiet --python $(TORCH_VENV)/bin/python -r bench/torch-requirements.txt
	rm -f $(TORCH_VENV)/.installed-* && touch $@

bench-compare: $(STAMP)
	@if [ -z "$(TORCH_PY)" ]; then $(MAKE) --no-print-directory torch-env; fi
	TF_CPP_MIN_LOG_LEVEL=2 TFSEAICE_TORCH_PYTHON=$${TORCH_PY:-$(TORCH_VENV)/bin/python} $(PY) -m bench.compare $(COMPARE_ARGS)
	$(PY) scripts/results_docs.py --write

# Beam's Flink and Spark job servers, fetched with Maven into $(ENGINES) (Java 17 + Maven needed).
ENGINES ?= .cache/beam-engines
beam-engines:
	$(PYTHON) scripts/beam_engines.py --cache=$(ENGINES)

# The converters on FlinkRunner and SparkRunner (local clusters) against the in-process runner.
test-engines: $(STAMP) beam-engines
	TF_CPP_MIN_LOG_LEVEL=2 TFSEAICE_ENGINES=$(ENGINES) $(PY) -m pytest -q tests_engines

# The lock again from setup.py, keeping every version it can (after a change of setup.py's ranges).
lock: $(STAMP)
	$(COMPILE) -o $(LOCK)

# New releases on purpose: the newest versions setup.py allows, installed and tested. Record the upgrade in
# CHANGELOG.md; `git checkout $(LOCK)` goes back if the suite fails.
upgrade-deps: $(STAMP)
	$(COMPILE) --upgrade -o $(LOCK)
	git --no-pager diff --stat -- $(LOCK) || true
	$(MAKE) test

clean:
	rm -rf $(OUT) .pytest_cache
