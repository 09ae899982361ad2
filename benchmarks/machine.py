"""One line that says what hardware a benchmark ran on, so figures from different machines can be told apart.

The same 2-core VM type comes with different CPUs (fastnet_small's training step takes ~24 ms per 128 images on
one and ~46 ms on another): the CPU's family/model/clock and a reference matmul speed, printed with every
benchmark, make the machines comparable.
"""

from __future__ import annotations

import os
import platform
import time

import torch

from fashionlab.malloc import keep_freed_memory
from fashionlab.training.precision import bf16_supported

# every benchmark imports this module: its figures are taken with the malloc settings `fashionlab` runs with
keep_freed_memory()


def cpu_name() -> str:
    """'AMD EPYC (family 25, model 17, 2596 MHz)' from /proc/cpuinfo, or the platform's word for it."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    mhz = fields.get("cpu MHz", "?").split(".")[0]
    return (f"{fields.get('model name', platform.machine())} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')}, {mhz} MHz)")


# The instruction-set extensions that decide how fast NumPy, Pillow, zlib, libjpeg and torch run on a CPU.
FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16",
            "sha_ni", "vaes")


def cpu_features() -> str:
    """'avx2 fma avx512f ...': which of FEATURES the CPU has (/proc/cpuinfo flags), or '?' where unknown."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is None:
        return "?"
    return " ".join(f for f in FEATURES if f in flags) or "none of " + " ".join(FEATURES)


def matmul_gflops(dtype: torch.dtype = torch.bfloat16, n: int = 1024, repeats: int = 20) -> float:
    """Best-of-3 speed of an n x n matrix product on torch's current threads: the machine's yardstick."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * repeats / best / 1e9


def gpu_name() -> str:
    """'; GPU: NVIDIA H200 (CUDA 13.0)' where torch sees one, else nothing."""
    if not torch.cuda.is_available():
        return ""
    return f"; GPU: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"


def cpu_precision() -> str:
    """What the recipes' `auto` precision trains in on this CPU, as far as the hardware decides it: bf16
    products need AVX512-BF16 or AMX; without them oneDNN falls back to a scalar path (~1 GFLOP/s on Zen 3)."""
    return "bf16" if bf16_supported(torch.device("cpu")) else "fp32"


def bf16_speed() -> str:
    if cpu_precision() == "fp32":
        return "no bf16 support (AVX512-BF16 or AMX)"  # timing the fallback would take 40 s and say nothing
    return f"bf16 matmul {matmul_gflops():.0f} GFLOP/s"


def describe() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"{bf16_speed()}, fp32 {matmul_gflops(torch.float32):.0f} GFLOP/s{gpu_name()}; "
            f"load average {load:.1f}; {time.strftime('%Y-%m-%d %H:%M')}")
