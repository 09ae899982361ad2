"""winograd_transforms.c, compiled with the machine's C compiler at first use and run on torch's threads.

A plain shared library called through ctypes, not a torch extension: it needs no torch headers, no ninja and
no Python headers, compiles in about a second, and is cached per source, compiler and CPU under
~/.cache/fashionlab (-march=native: the library is built on the machine that runs it). Without a compiler,
or with FASHIONLAB_NATIVE=0, `library()` is None and winograd.py does its transforms with torch operations.
ctypes releases the GIL for the call, so splitting the images over a thread pool uses every core torch does.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("winograd_transforms.c")
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
_SIGNATURES = {  # name: pointer arguments, then n, h, w, channels, first and last image
    "input_transform": 2, "output_transform": 3, "output_grad_transform": 2, "input_grad_transform": 2,
}
log = logging.getLogger(__name__)


def _cpu() -> str:
    """The lines of /proc/cpuinfo that decide what -march=native produces."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return "\n".join(next((line for line in lines if line.startswith(key)), "") for key in ("model name", "flags"))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fashionlab"


def _compile(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename: a concurrent process (torchrun) never loads a half-written library
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
    os.close(fd)
    try:
        subprocess.run([compiler, *FLAGS, "-o", partial, str(SOURCE)], check=True, capture_output=True, timeout=300)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled transforms, or None (logged once) where they cannot be had."""
    if os.environ.get("FASHIONLAB_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.warning("no C compiler (cc, gcc or $CC): Winograd transforms run as torch operations, 10-20%% slower "
                    "steps; install gcc to speed fp32 training up")
        return None
    return load(compiler, _cache_dir())


def load(compiler: str, cache_dir: Path) -> ctypes.CDLL | None:
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, compiler, _cpu()]).encode()).hexdigest()[:16]
    target = cache_dir / f"winograd_transforms-{key}.so"
    try:
        if not target.exists():
            _compile(compiler, target)
        lib = ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        log.warning("compiling %s failed (%s%s): Winograd transforms run as torch operations (slower steps)",
                    SOURCE.name, error, ": " + detail.decode(errors="replace")[:300] if detail else "")
        return None
    for name, pointers in _SIGNATURES.items():
        getattr(lib, name).argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int] * 6
        getattr(lib, name).restype = None
    return lib


@functools.cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per process: a forked child (a sweep's worker) has none of its parent's threads."""
    return ThreadPoolExecutor(workers, thread_name_prefix="fashionlab-native")


def run(name: str, tensors: list[torch.Tensor | None], n: int, h: int, w: int, channels: int) -> None:
    """Call one transform over images 0..n, split into one contiguous range per torch thread."""
    lib = library()
    assert lib is not None, "native.run needs native.library()"
    function = getattr(lib, name)
    pointers = [None if t is None else t.data_ptr() for t in tensors]
    workers = max(1, min(torch.get_num_threads(), n))
    bounds = [n * i // workers for i in range(workers + 1)]
    futures = [_pool(workers, os.getpid()).submit(function, *pointers, n, h, w, channels, bounds[i], bounds[i + 1])
               for i in range(1, workers)]
    function(*pointers, n, h, w, channels, bounds[0], bounds[1])
    for future in futures:
        future.result()
