"""Print an OpenBLAS kernel family other than the one this CPU uses, for a second test pass.

OpenBLAS picks its kernels by CPU, and the last bits of every sum depend on them. ``make
test`` runs the number-sensitive tests (``-m kernels``) once more with
``OPENBLAS_CORETYPE`` set to what this prints, so a number that holds only on one kind
of CPU cannot pass. Prints nothing where no other family can run (then the pass is
skipped with a message).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np  # noqa: F401  (loads OpenBLAS, so threadpoolctl can see it)
from threadpoolctl import threadpool_info


def native() -> str:
    """The kernel family OpenBLAS chose on this machine ("" if not OpenBLAS)."""
    for lib in threadpool_info():
        if lib.get("internal_api") == "openblas":
            return str(lib.get("architecture") or "")
    return ""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def other() -> str:
    """A family this CPU can run that differs from the native one."""
    arch = native()
    if not arch:
        return ""
    if platform.machine() in ("x86_64", "AMD64"):
        flags = cpu_flags()
        for family, needs in (("Sandybridge", "avx"), ("Haswell", "avx2"), ("Prescott", "sse3")):
            if family.lower() != arch.lower() and (needs in flags or needs == "sse3"):
                return family
        return ""
    if platform.machine() in ("aarch64", "arm64"):
        return "ARMV8" if arch.upper() != "ARMV8" else ""
    return ""


if __name__ == "__main__":
    print(other())
