"""The machine a benchmark ran on: CPU model, cores, ISA flags, clock, peak FLOP/s, memory.

Every result JSON carries `machine_info()`: timings mean little without the
machine and the load average they were taken under.
"""

import datetime
import os
import platform
import resource
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)

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
    """The ISA flags of the first CPU (tfseaice.precision's reading of /proc/cpuinfo)."""
    # Imported here so that a torch-only interpreter (torch_unet_reference.py) can
    # import this module without tfseaice on its path.
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
    isa = isa or ("avx2, no AVX-512" if "avx2" in info["isa_flags"] else "no AVX-512")
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


def image_peak_rss_mb():
    """Peak RSS of this process since its exec (VmHWM), MB; NaN where /proc is missing.

    Unlike ru_maxrss, which Linux carries over exec from the forking parent's
    peak, this is the child's own: what a per-configuration child must report.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def current_rss_mb():
    """Resident set size of this process now, MB (NaN where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")
