"""A small but real model, shared by the predict / export / serve tests, and "product photo" rendering."""

import io

import numpy as np
import pytest
from PIL import Image

from fashionlab.config import RunConfig
from fashionlab.serving.predict import load_torch_predictor
from fashionlab.training.loop import train


@pytest.fixture(scope="session")
def served_run(tmp_path_factory, fmnist):
    """(runs root, run name) of an ann_bn trained on 10,000 real images for 2 epochs (about 80% accuracy).

    One thread: the CPU is shared with other tests and processes, where more threads only wait on each other.
    """
    root = tmp_path_factory.mktemp("runs")
    config = RunConfig.from_dict(dict(model="ann_bn", epochs=2, batch_size=100, train_limit=10_000,
                                      test_limit=1000, threads=1, precision="fp32", name="served"))
    train(config, root=root, data=fmnist, show_progress=False)
    return root, "served"


@pytest.fixture(scope="session")
def predictor(served_run):
    """The served run's model, loaded once for the API tests."""
    root, name = served_run
    return load_torch_predictor(name, root)


def product_photo(pixels: np.ndarray, rng: np.random.Generator, fmt: str = "JPEG") -> bytes:
    """A Fashion-MNIST image as a shop photo: light background, enlarged, off-centre on a bigger canvas."""
    scale = int(rng.integers(4, 13))
    item = Image.fromarray(255 - pixels, "L").resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    left, right, top, bottom = (int(v) for v in rng.integers(10, 100, 4))
    canvas = Image.new("RGB", (28 * scale + left + right, 28 * scale + top + bottom), (255, 255, 255))
    canvas.paste(item.convert("RGB"), (left, top))
    buf = io.BytesIO()
    canvas.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture
def photos(fmnist):
    """`photos(indices)` -> list of JPEG bytes of those test images, reproducibly rendered."""
    def make(indices, seed=0, fmt="JPEG"):
        rng = np.random.default_rng(seed)
        return [product_photo(fmnist.test_images[i], rng, fmt) for i in indices]
    return make
