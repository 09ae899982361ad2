import pytest

from fashionlab.config import RunConfig
from fashionlab.data import load_fashion_mnist


@pytest.fixture(scope="session")
def fmnist():
    """The real data set (verified, then cached decoded by fashionlab)."""
    return load_fashion_mnist()


@pytest.fixture
def tiny_config():
    """A run small enough for a test: 2,000 training images, 500 validation, 1,000 test."""
    def make(**changes):
        base = dict(model="ann", epochs=2, batch_size=100, train_limit=2000, test_limit=1000, threads=2,
                    precision="fp32", name="tiny")
        return RunConfig.from_dict({**base, **changes})
    return make
