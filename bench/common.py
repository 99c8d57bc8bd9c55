"""Shared helpers of the benchmark scripts: machine description, peak FLOP/s,
tables, JSON results and the one-line summary.

Every bench script prints a table, writes ``bench/results/NAME.json`` (or
``--results_dir``) holding ``machine_info()`` next to its numbers, and ends
with one line ``key=value key=value ...``.
"""

import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
CACHE_DIR = os.environ.get("TFSEAICE_BENCH_CACHE", "/tmp/tfseaice_bench")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if REPO_DIR not in sys.path:  # `python bench/x.py` from anywhere
    sys.path.insert(0, REPO_DIR)

# ISA flags that decide which kernels oneDNN / XLA can use.
ISA_FLAGS = ("sse4_2", "fma", "avx", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def loadavg():
    """(1, 5, 15)-minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" not in line:
                    if info:
                        break  # first processor block only
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_flags():
    from tfseaice.precision import cpu_flags as first_cpu_flags

    return first_cpu_flags()


def cpu_mhz():
    """Nominal clock in MHz: cpufreq's max if exposed, else /proc/cpuinfo's `cpu MHz`."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read()) / 1000.0
    except (OSError, ValueError):
        pass
    try:
        return float(_cpuinfo().get("cpu MHz", "nan"))
    except ValueError:
        return float("nan")


def num_cores():
    """Cores this process may run on (affinity), which is what TF's thread pools use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def peak_flops():
    """Peak FLOP/s of the cores we may use, per precision, with the derivation.

    FLOPs per cycle per core (multiply and add counted separately):
      * fp32, AVX-512 (two 512-bit FMA ports on Xeon Scalable): 2 ports x 16 lanes x 2 = 64;
        AVX2 only: 2 x 8 x 2 = 32.
      * bf16, AMX (TDPBF16PS: a 16x32 by 32x16 bf16 tile product, 8192 multiply-adds,
        one every 16 cycles): 8192 x 2 / 16 = 1024 (Intel: "1024 BF16 ops/cycle/core").
        Without AMX, AVX512_BF16 (VDPBF16PS, 2 ports x 16 lanes x 2 products x 2) = 128.
    Peak = cores x clock x FLOPs/cycle. The clock is the nominal (TSC) one the
    kernel reports; AVX-512/AMX licence clocks can be lower, so the peak is an
    upper bound. On a VM, the vCPUs may be hyper-threads sharing one physical
    core's ports: then the true peak is half of this.
    """
    flags = cpu_flags()
    cores = num_cores()
    ghz = cpu_mhz() / 1000.0
    if "avx512f" in flags:
        fp32_cycle, fp32_how = 64, "AVX-512: 2 FMA ports x 16 fp32 lanes x 2 FLOPs"
    elif "avx2" in flags and "fma" in flags:
        fp32_cycle, fp32_how = 32, "AVX2: 2 FMA ports x 8 fp32 lanes x 2 FLOPs"
    else:
        fp32_cycle, fp32_how = 8, "SSE: 4 fp32 lanes x 2 FLOPs (assumed)"
    if "amx_bf16" in flags:
        bf16_cycle, bf16_how = 1024, "AMX TDPBF16PS: 16x16x32 bf16 MACs (8192) x 2 FLOPs / 16 cycles"
    elif "avx512_bf16" in flags:
        bf16_cycle, bf16_how = 128, "AVX512_BF16 VDPBF16PS: 2 ports x 16 lanes x 2 products x 2 FLOPs"
    else:
        bf16_cycle, bf16_how = fp32_cycle, "no bf16 hardware: bf16 runs at the fp32 rate at best"
    out = {}
    for name, per_cycle, how in (("fp32", fp32_cycle, fp32_how), ("bf16", bf16_cycle, bf16_how)):
        gflops = cores * ghz * per_cycle
        out[name] = {
            "gflops": round(gflops, 1),
            "flops_per_cycle_per_core": per_cycle,
            "derivation": f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({how}) = {gflops:.0f} GFLOP/s",
        }
    out["note"] = ("upper bound: nominal clock (AVX-512/AMX licence clocks may be lower); "
                   "if the VM's vCPUs are hyper-thread siblings, halve it")
    return out


def machine_info():
    """CPU, cores, ISA flags, software versions and the load average right now."""
    cpu = _cpuinfo()
    flags = cpu_flags()
    info = {
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_family_model_stepping": "/".join(cpu.get(k, "?") for k in ("cpu family", "model", "stepping")),
        "cpu_mhz": cpu_mhz(),
        "cores": num_cores(),
        "logical_cpus": os.cpu_count(),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "hypervisor": "hypervisor" in flags,
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1_5_15": loadavg(),
        "time_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": _git_commit(),
    }
    for mod in ("tensorflow", "keras", "numpy"):
        m = sys.modules.get(mod)
        version = getattr(m, "__version__", None) if m is not None else None
        if version is None:  # not imported here (e.g. a suite parent): ask the installed metadata
            try:
                from importlib import metadata

                version = metadata.version(mod)
            except Exception:  # noqa: BLE001
                version = None
        info[f"{mod}_version"] = version
    return info


def machine_line(info=None):
    """One line describing the machine, for tables and the README."""
    info = info or machine_info()
    isa = ",".join(f for f in info["isa_flags"] if f.startswith(("avx512f", "avx512_bf16", "amx")))
    tf_v = info.get("tensorflow_version", "?")
    return (f"{info['cpu_model']} ({info['cores']} cores, {info['cpu_mhz']:.0f} MHz, {isa}), "
            f"{info['memory_gb']:.0f} GB, TF {tf_v}, Python {info['python']}, load {info['loadavg_1_5_15']}")


def _memory_gb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return float("nan")


def _git_commit():
    try:
        return subprocess.run(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def peak_rss_mb():
    """Peak resident set size of this process so far, MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def cpu_pressure_us():
    """Cumulative microseconds during which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.split("total=")[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class Contention:
    """Measures, over a block of code, how much CPU this process got and how contended the CPUs were.

    cpu_share: process CPU time / (wall x cores). stall: fraction of the wall time during
    which some runnable task (ours or anyone's) waited for a CPU (/proc/pressure/cpu).
    On a quiet machine a 2-thread TF step shows stall ~0; another busy job pushes it to ~1.
    """

    def __enter__(self):
        self.cpu0, self.wall0, self.psi0 = time.process_time(), time.perf_counter(), cpu_pressure_us()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall0
        self.cpu_share = (time.process_time() - self.cpu0) / (wall * num_cores())
        psi1 = cpu_pressure_us()
        self.stall = None if psi1 is None or self.psi0 is None else (psi1 - self.psi0) / 1e6 / wall
        return False


def wait_for_quiet(max_load=1.2, timeout_s=0, poll_s=10, log=print):
    """Wait (at most timeout_s) until the 1-minute load average is below max_load.

    Returns the load average seen last. Other people's jobs share the cores:
    timings taken under load are inflated, so we record the load with every result.
    """
    t0 = time.time()
    while os.getloadavg()[0] >= max_load and time.time() - t0 < timeout_s:
        log(f"  waiting for the 1-min load average ({os.getloadavg()[0]:.2f}) to fall below {max_load} ...")
        time.sleep(poll_s)
    return loadavg()


# ----------------------------------------------------------------- output

def format_table(rows, columns, floatfmt="{:.3g}"):
    """Plain-text table of `rows` (dicts) over `columns` (keys or (key, header))."""
    cols = [(c, c) if isinstance(c, str) else c for c in columns]

    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return "" if v is None else str(v)

    cells = [[h for _, h in cols]] + [[fmt(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(rows, columns, title=None, floatfmt="{:.3g}"):
    if title:
        print(title)
    print(format_table(rows, columns, floatfmt), flush=True)


def write_result(name, payload, results_dir=None):
    """Write `payload` + machine info to RESULTS_DIR/NAME.json (atomically); returns the path."""
    results_dir = results_dir or RESULTS_DIR
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, f"{name}.json")
    doc = {"benchmark": name, "machine": machine_info(), "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
    doc.update(payload)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def summary_line(values):
    """The closing `key=value ...` line (floats with 4 significant digits)."""
    parts = []
    for k, v in values.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        elif isinstance(v, bool):
            v = str(v).lower()
        parts.append(f"{k}={v}")
    line = " ".join(parts)
    print(line, flush=True)
    return line


def parse_summary(text):
    """dict of the last `key=value ...` line of `text` (for run_all and tests)."""
    for line in reversed(text.strip().splitlines()):
        if "=" in line and all("=" in p for p in line.split()):
            return dict(p.split("=", 1) for p in line.split())
    return {}


def progress(msg):
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", flush=True)


def set_threads(threads):
    """Pin TF's intra/inter-op pools (0 = TF's default). Call before TF runs anything."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(threads))))


# ------------------------------------------------------------- sample data

def cached_raw_scene(size, seed=7, cache_dir=None):
    """Path of a synthetic raw AI4Arctic scene (size x size, 40 m) cached on disk.

    Made once with tfseaice.simulate.scenes (a 10000^2 scene takes ~80 s and
    ~2.7 GB of memory) and kept under CACHE_DIR, never in the repository.
    """
    from tfseaice.simulate.scenes import make_scene, raw_file_name
    from tfseaice.simulate.writers import write_scene

    folder = os.path.join(cache_dir or CACHE_DIR, f"raw_{size}_seed{seed}")
    done = os.path.join(folder, "DONE")
    if os.path.exists(done):
        with open(done) as f:
            path = f.read().strip()
        if os.path.exists(path):
            return path
    os.makedirs(folder, exist_ok=True)
    progress(f"making a {size}x{size} sample scene (seed {seed}) into {folder} (cached for later runs)")
    ds = make_scene(seed=seed, size=size)
    path = os.path.join(folder, raw_file_name(ds))
    write_scene(ds, path)
    del ds
    with open(done, "w") as f:
        f.write(path)
    return path
