"""Benchmark configurations in their own processes: `python -m bench.NAME` children.

Process-wide state (the mixed-precision policy, XLA, thread pools, peak RSS)
makes one configuration per process the honest way to measure. Children find
the bench package through PYTHONPATH, whatever the caller's working directory.
"""

import os
import subprocess
import sys
import time

from bench.lib.machine import REPO_DIR


def child_env():
    """os.environ with TF's C++ logs quiet and this repository first on PYTHONPATH."""
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                PYTHONPATH=REPO_DIR + (os.pathsep + path if path else ""))


def module_argv(name, python=None):
    """[python, "-m", "bench.NAME"]: the command line of a bench script."""
    return [python or sys.executable, "-m", f"bench.{name}"]


def torch_python():
    """An interpreter with torch ($TFSEAICE_TORCH_PYTHON, .cache/torchvenv as `make bench-compare` builds
    it, or /tmp/torchvenv), or None."""
    for cand in (os.environ.get("TFSEAICE_TORCH_PYTHON"), os.path.join(REPO_DIR, ".cache", "torchvenv", "bin", "python"),
                 "/tmp/torchvenv/bin/python"):
        if cand and os.path.exists(cand):
            ok = subprocess.run([cand, "-c", "import torch"], capture_output=True).returncode == 0
            if ok:
                return cand
    return None


def run_child(argv, timeout):
    """Run a command, echo its progress lines, return (returncode, stdout)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=child_env())
    out = []
    t0 = time.time()
    for line in proc.stdout:
        out.append(line)
        if line.startswith("[") or "Error" in line or "error" in line:
            print("    " + line.rstrip(), flush=True)
        if time.time() - t0 > timeout:
            proc.kill()
            break
    proc.wait()
    return proc.returncode, "".join(out)
