import signal

import pytest
import torch

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


@pytest.fixture
def ctrl_c_at(monkeypatch):
    """`ctrl_c_at(epoch, step)`: the next training run gets one Ctrl-C (SIGINT) as that step begins, so it stops
    after that step, as a user's Ctrl-C would stop it."""
    from fashionlab.training import loop

    def arm(epoch: int, step: int) -> None:
        real = loop.derive_seed

        def once(seed, e, s):
            if (e, s) == (epoch, step):
                monkeypatch.setattr(loop, "derive_seed", real)
                signal.raise_signal(signal.SIGINT)
            return real(seed, e, s)

        monkeypatch.setattr(loop, "derive_seed", once)
    return arm


@pytest.fixture
def nan_weights_at(monkeypatch):
    """`nan_weights_at(epoch, step)`: the next training run's model gets a NaN weight as that step begins, so its
    loss diverges there."""
    from fashionlab.training import loop

    def arm(epoch: int, step: int) -> None:
        real, models = loop.derive_seed, []
        create = loop.create_model
        monkeypatch.setattr(loop, "create_model", lambda name: models.append(create(name)) or models[-1])

        def poison(seed, e, s):
            if (e, s) == (epoch, step):
                with torch.no_grad():
                    next(models[-1].parameters()).fill_(float("nan"))  # the model being trained
            return real(seed, e, s)

        monkeypatch.setattr(loop, "derive_seed", poison)
    return arm


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (`make test` installs both; never `playwright install`)."""
    import os

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: 'make test' installs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and failed requests in `page.problems`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console: {msg.text}"))
    page.on("pageerror", lambda err: page.problems.append(f"page error: {err}"))
    yield page
    context.close()
