"""Describe the machine a benchmark ran on, so every table in RESULTS.md names its hardware.

Why: a throughput figure without the core count, CPU model, memory, torch build and load
is not reproducible; these helpers read them from the OS (``/proc`` on Linux) and print
one Markdown line that goes under each table.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def describe() -> dict[str, str]:
    """nproc, CPU model, RAM, torch version/threads, GPU, Python and the current load average."""
    info: dict[str, str] = {
        "nproc": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "ram_gib": str(_ram_gib()),
        "python": sys.version.split()[0],
        "load_avg_1_5_15": _load_average(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = str(torch.get_num_threads())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = str(torch.version.cuda)
        else:
            info["gpu"] = "none (torch.cuda.is_available() is False)"
    except ImportError:
        info["torch"] = "not installed"
    return info


def markdown(info: dict[str, str] | None = None) -> str:
    """One line for under a table: ``Machine: nproc=2, CPU …, RAM … GiB, torch …``."""
    d = info or describe()
    parts = [
        f"nproc={d['nproc']}",
        f"CPU {d['cpu']}",
        f"RAM {d['ram_gib']} GiB",
        f"torch {d.get('torch')} ({d.get('torch_threads', '?')} threads)",
        f"GPU {d.get('gpu', 'n/a')}",
        f"Python {d['python']}",
        f"load average at start {d['load_avg_1_5_15']}",
    ]
    return "Machine: " + ", ".join(parts)


def rss_mib() -> float:
    """Current resident set size of this process (torch allocations included), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (``getrusage`` maxrss), MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024**2


if __name__ == "__main__":
    print(markdown())
