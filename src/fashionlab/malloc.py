"""glibc's malloc settings for training: freed memory is kept for the next step, not returned to the OS.

torch frees and allocates the same large buffers (activations, Winograd tiles) every step. glibc serves blocks
above its mmap threshold with fresh mmap()s and unmaps them when freed, so each step faults its buffers in again,
page by page: 10-20% of a training step, and an evaluation pass of the paper's CNN ~1.5x slower
(docs/EXPERIMENTS.md). The Makefile sets this through GLIBC_TUNABLES; `fashionlab` sets it at its start through
mallopt(3), so that the command run directly gets it too. Where GLIBC_TUNABLES already sets malloc, it is left as is.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's <malloc.h>
NEVER_TRIM = 2**31 - 1  # mallopt takes an int: 2 GiB of free memory at the heap's top before any is returned


def keep_freed_memory() -> bool:
    """No mmap for large blocks and no trimming of the heap in this process; False where that is not glibc's to
    give (another OS or C library) or GLIBC_TUNABLES already says how malloc behaves."""
    if not sys.platform.startswith("linux") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
