"""Find, verify, parse and cache the Fashion-MNIST files, and split off the validation set.

The four IDX files are looked for, in order, in: the `data_dir` argument, `$FASHIONLAB_DATA`, the
Debian package `dataset-fashion-mnist`, the user cache. Failing all, they are downloaded into the cache.
Every file is checked against the SHA-256 of its *decompressed* content (the Debian package recompresses
the .gz files, so their own hashes differ), then decoded once into a .npz cache for fast reloads.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import stat
import struct
import sys
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

CLASSES = ("T-Shirt", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle Boot")
MEAN, STD = 0.2860, 0.3530  # train-set pixel statistics on the 0-1 scale

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# name -> (SHA-256 of the decompressed file, its size in bytes)
FILES = {
    "train-images-idx3-ubyte": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47_040_016),
    "train-labels-idx1-ubyte": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60_008),
    "t10k-images-idx3-ubyte": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7_840_016),
    "t10k-labels-idx1-ubyte": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10_008),
}
HOW_TO_FIX = ("install it with 'apt-get install dataset-fashion-mnist', or point --data-dir / "
              "$FASHIONLAB_DATA at a folder with the four original files")

IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801  # magic numbers: uint8 data, 3 or 1 dimensions


@dataclass
class FashionMNIST:
    """The decoded data set: uint8 images (N, 28, 28) and int64 labels (N,)."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fashionlab"


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode one IDX file (uint8 payload) into an array, checking its header against its length."""
    if len(raw) < 8:
        raise DataError(f"{name} is truncated: {len(raw)} bytes is shorter than an IDX header")
    magic, count = struct.unpack(">II", raw[:8])
    if magic not in (IDX_IMAGES, IDX_LABELS):
        raise DataError(f"{name} is not an IDX file of uint8 data (magic number 0x{magic:08x})")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{name} is {what}: {len(raw)} bytes, header {dims} needs {expected}")
    del count
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _read_decompressed(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(_unreadable(path, err)) from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(f"{path} is not a readable gzip file ({err}); {HOW_TO_FIX}") from None
    return data


def _unreadable(path, err: OSError) -> str:
    """One line for a data file the OS will not let us read: the file, the reason, its mode and owner."""
    if not isinstance(err, PermissionError):
        return f"cannot read {path}: {err.strerror or err}; {HOW_TO_FIX}"
    try:
        st = os.stat(path)
        mode = f" (mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid}, this process uid {os.getuid()})"
    except (OSError, AttributeError):
        mode = ""
    return (f"cannot read {path}: permission denied{mode}; make it readable (chmod a+r) or point --data-dir / "
            "$FASHIONLAB_DATA at a readable copy")


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_all(folder: Path) -> bool:
    return all(_file_in(folder, name) for name in FILES)


def find_data_dir(data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The first folder that holds all four files, in the documented order of places."""
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not _has_all(folder):
            missing = [n for n in FILES if not _file_in(folder, n)]
            raise DataError(f"--data-dir {folder} lacks {', '.join(missing)} (.gz or not); {HOW_TO_FIX}")
        return folder
    env = os.environ.get("FASHIONLAB_DATA")
    if env:
        folder = Path(env).expanduser()
        if not _has_all(folder):
            raise DataError(f"$FASHIONLAB_DATA={folder} does not hold the four Fashion-MNIST files; {HOW_TO_FIX}")
        return folder
    for folder in (DEBIAN_DIR, cache_dir() / "fashion-mnist"):
        if _has_all(folder):
            return folder
    if not download:
        raise DataError(f"Fashion-MNIST not found; {HOW_TO_FIX}")
    return _download(cache_dir() / "fashion-mnist")


def _download(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = folder / f"{name}.gz"
        if target.exists():
            continue
        partial = target.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(DOWNLOAD_URL + target.name, timeout=60) as response:
                partial.write_bytes(response.read())
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise DataError(f"could not download {target.name} ({err}); {HOW_TO_FIX}") from None
        partial.rename(target)
    return folder


def _verified(folder: Path, name: str) -> np.ndarray:
    path = _file_in(folder, name)
    raw = _read_decompressed(path)
    sha, size = FILES[name]
    if len(raw) != size or hashlib.sha256(raw).hexdigest() != sha:
        raise DataError(f"{path} is corrupted or truncated ({len(raw)} bytes decompressed, expected {size} "
                        f"with SHA-256 {sha[:12]}...); delete it and {HOW_TO_FIX}")
    return parse_idx(raw, str(path))


def _source_key(folder: Path) -> dict:
    """What the decoded cache was made from; a changed file invalidates it."""
    key = {}
    for name in FILES:
        st = _file_in(folder, name).stat()
        key[name] = [str(_file_in(folder, name).resolve()), st.st_size, st.st_mtime_ns]
    return key


def load_fashion_mnist(data_dir: str | Path | None = None, use_cache: bool = True) -> FashionMNIST:
    """Load the verified data set, from the decoded cache when its source files are unchanged."""
    try:
        folder = find_data_dir(data_dir)
        key = _source_key(folder)
    except PermissionError as err:  # a folder that cannot be searched
        raise DataError(_unreadable(err.filename or data_dir, err)) from None
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cached = cache_dir() / f"decoded-{digest}.npz"
    if use_cache:
        try:
            return _read_cache(cached, folder)
        except FileNotFoundError:
            pass  # the first load from these files
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as err:
            # a broken cache is rebuilt from the verified files, never trusted, and never fatal
            reason = " ".join(str(err).split()) or type(err).__name__
            print(f"fashionlab: the decoded-data cache {cached} is damaged ({reason}); rebuilding it from {folder}",
                  file=sys.stderr)
            with contextlib.suppress(OSError):
                cached.unlink(missing_ok=True)
    arrays = {name: _verified(folder, name) for name in FILES}
    data = FashionMNIST(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"].astype(np.int64),
                        arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
                        folder)
    if use_cache:
        _write_cache(cached, data)
    return data


# what the decoded cache must hold: name -> shape; all uint8
CACHE_SHAPES = {"train_images": (60_000, 28, 28), "train_labels": (60_000,),
                "test_images": (10_000, 28, 28), "test_labels": (10_000,)}


def _read_cache(path: Path, folder: Path) -> FashionMNIST:
    """The decoded arrays from the .npz cache; ValueError (or what numpy and zipfile raise) when it is damaged."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in CACHE_SHAPES}  # reading a member checks its CRC
    for name, shape in CACHE_SHAPES.items():
        if arrays[name].shape != shape or arrays[name].dtype != np.uint8:
            raise ValueError(f"{name} is {arrays[name].dtype}{list(arrays[name].shape)}, not uint8{list(shape)}")
    return FashionMNIST(arrays["train_images"], arrays["train_labels"].astype(np.int64),
                        arrays["test_images"], arrays["test_labels"].astype(np.int64), folder)


def _write_cache(path: Path, data: FashionMNIST) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, train_images=data.train_images, train_labels=data.train_labels.astype(np.uint8),
                     test_images=data.test_images, test_labels=data.test_labels.astype(np.uint8))
        tmp.replace(path)  # atomic: a reader never sees half a cache
    except OSError:
        pass  # the cache is an optimisation; a read-only home must not stop training


def split_indices(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split of range(n), as in the paper (10,000 for validation)."""
    if not 0 <= val_size < n:
        raise DataError(f"validation size {val_size} must be between 0 and {n - 1}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])
