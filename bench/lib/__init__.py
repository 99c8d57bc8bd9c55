"""Shared pieces of the benchmark scripts in bench/ (run as `python -m bench.NAME`).

machine: CPU, cores, peak FLOP/s, memory; results: tables, JSON, the summary line;
timing: contention, step timers; data: synthetic batches and cached sample data;
models: the benchmark models and their FLOPs; step / suite: the train-step
benchmark; regional: the regional-loss comparison; scene: whole-scene inference;
children: running configurations in their own processes.

Nothing here imports TensorFlow at import time: bench/torch_unet_reference.py
runs under an interpreter with torch only and imports bench.lib.data / timing.
"""

import os

# Quiet TF's C++ logs in every benchmark process; must be set before TF is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
