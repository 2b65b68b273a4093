"""What a benchmark ran on: date, CPU, cores, Python, NumPy and NumPy's BLAS (threadpoolctl)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np


def describe() -> dict:
    from threadpoolctl import threadpool_info

    blas = [
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
        f"({i.get('num_threads')} threads)"
        for i in threadpool_info()
        if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")
    ]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "kernels": kernel_family(),
        "coretype": os.environ.get("OPENBLAS_CORETYPE"),  # set: the family was forced
    }


def kernel_family() -> str:
    """The OpenBLAS kernel family NumPy runs ("Haswell", "SkylakeX", "Sandybridge", ...):
    picked from the CPU, or forced by ``OPENBLAS_CORETYPE``."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            return str(info.get("architecture") or "unknown")
    return "unknown"
