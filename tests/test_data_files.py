"""IDX parsing, checksum verification and the errors users see for bad files."""

import gzip
import struct

import numpy as np
import pytest

from fashionlab.data import dataset
from fashionlab.data.dataset import FILES, find_data_dir, load_fashion_mnist, parse_idx
from fashionlab.errors import DataError


def idx_images(n, h=28, w=28, fill=7):
    return struct.pack(">IIII", 0x803, n, h, w) + bytes([fill]) * (n * h * w)


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def test_parse_images_and_labels():
    images = parse_idx(idx_images(3, 4, 5))
    assert images.shape == (3, 4, 5) and images.dtype == np.uint8 and (images == 7).all()
    labels = parse_idx(idx_labels([0, 9, 3]))
    assert labels.tolist() == [0, 9, 3]


@pytest.mark.parametrize("raw, message", [
    (b"\x00\x00", "shorter than an IDX header"),
    (struct.pack(">II", 0x1234, 1) + b"x", "not an IDX file"),
    (idx_images(3)[:-10], "truncated"),
    (idx_images(3) + b"extra", "longer than its header says"),
])
def test_parse_rejects_bad_files(raw, message):
    with pytest.raises(DataError, match=message):
        parse_idx(raw, "somefile")


def fake_folder(tmp_path):
    """A folder with the four file names; contents are small, so checksums cannot match."""
    for name in FILES:
        raw = idx_images(2) if "images" in name else idx_labels([1, 2])
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(raw))
    return tmp_path


def test_checksum_mismatch_names_the_file(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is corrupted or truncated.*apt-get install"):
        load_fashion_mnist(fake_folder(tmp_path), use_cache=False)


def real_folder_with(tmp_path, fmnist, name, transform):
    """Links to the real files, but `name` replaced by transform(its .gz bytes)."""
    for other in FILES:
        source = dataset._file_in(fmnist.source, other)
        target = tmp_path / source.name
        if other == name:
            target.write_bytes(transform(source.read_bytes()))
        else:
            target.symlink_to(source)
    return tmp_path


@pytest.mark.parametrize("transform, message", [
    (lambda gz: gz[: len(gz) // 2], "t10k-labels-idx1-ubyte.gz is not a readable gzip file"),
    (lambda gz: gzip.compress(gzip.decompress(gz)[:-100]), "t10k-labels-idx1-ubyte.gz is corrupted or truncated"),
    (lambda gz: gzip.compress(gzip.decompress(gz)[:-1] + b"\x03"), "t10k-labels-idx1-ubyte.gz is corrupted"),
])
def test_damaged_real_file_is_named(tmp_path, fmnist, transform, message):
    folder = real_folder_with(tmp_path, fmnist, "t10k-labels-idx1-ubyte", transform)
    with pytest.raises(DataError, match=message):
        load_fashion_mnist(folder, use_cache=False)


def test_missing_files_are_listed(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(DataError, match="lacks train-labels-idx1-ubyte, t10k-images"):
        find_data_dir(tmp_path)


def test_search_order_prefers_env_over_package(tmp_path, monkeypatch):
    folder = fake_folder(tmp_path)
    monkeypatch.setenv("FASHIONLAB_DATA", str(folder))
    assert find_data_dir() == folder
    monkeypatch.setenv("FASHIONLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="FASHIONLAB_DATA"):
        find_data_dir()


def test_download_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FASHIONLAB_DATA", raising=False)
    monkeypatch.setattr(dataset, "DEBIAN_DIR", tmp_path / "no-package")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dataset, "DOWNLOAD_URL", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(DataError, match="could not download train-images"):
        find_data_dir()
    assert not list((tmp_path / "cache").rglob("*.gz"))  # no half-downloaded file left as if good


def test_real_data_set(fmnist):
    assert fmnist.train_images.shape == (60000, 28, 28)
    assert fmnist.test_images.shape == (10000, 28, 28)
    assert np.bincount(fmnist.train_labels).tolist() == [6000] * 10
    assert np.bincount(fmnist.test_labels).tolist() == [1000] * 10
    assert abs(fmnist.train_images.mean() / 255 - 0.2860) < 1e-3


def test_cache_is_rebuilt_when_broken(fmnist, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_fashion_mnist(fmnist.source)
    (cached,) = (tmp_path / "fashionlab").glob("decoded-*.npz")
    cached.write_bytes(b"garbage")
    again = load_fashion_mnist(fmnist.source)
    assert (again.test_labels == first.test_labels).all()
