"""The CLI keeps freed memory for the next step (malloc.py): a large buffer comes from the heap, not from an mmap of
its own that is unmapped when freed, and freeing it does not shrink the heap."""

import os
import subprocess
import sys

import pytest

ALLOCATE = """
import ctypes, sys
import torch
from fashionlab.malloc import keep_freed_memory
print(keep_freed_memory() if sys.argv[1] == "keep" else "untouched")
sbrk = ctypes.CDLL(None).sbrk
sbrk.restype, sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(a, 16) for a in line.split()[0].split("-"))
            return low, high
    return 0, 0
x = torch.empty(64 << 18)  # 64 MiB of float32, far above glibc's mmap threshold
x.fill_(1.0)
low, high = heap()
print(low <= x.data_ptr() < high)
end = sbrk(0)
del x
print(sbrk(0) == end)
"""


def _allocate(keep: bool, tunables: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if tunables:
        env["GLIBC_TUNABLES"] = tunables
    args = [sys.executable, "-c", ALLOCATE, "keep" if keep else "leave"]
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_large_buffer_comes_from_the_heap_and_the_heap_keeps_it_when_freed():
    applied, in_heap, kept = _allocate(keep=True)
    if applied != "True":
        pytest.skip("this C library has no mallopt")
    assert (in_heap, kept) == ("True", "True")
    assert _allocate(keep=False)[:2] == ["untouched", "False"]  # glibc's default: an mmap of its own


def test_the_users_own_glibc_tunables_are_left_alone():
    assert _allocate(keep=True, tunables="glibc.malloc.trim_threshold=0")[0] == "False"
