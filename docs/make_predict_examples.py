"""Make the examples of docs/PREDICT.md and the page screenshot docs/serve-page.png.

    python docs/make_predict_examples.py --run RUN [--runs-dir DIR] [--photos N]

Prints the accuracy on N test images rendered as product photos (JPEG) next to the accuracy on the
original 28x28 images; writes docs/predict/*.jpg (photos) and docs/predict/*-seen.png (the 28x28 model
input, enlarged 4x without smoothing) and prints the Markdown table for PREDICT.md; then starts
`fashionlab serve`, uploads four of the photos in headless Chromium and saves the screenshot once their
predictions and attribution overlays are shown.
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashionlab.data import CLASSES, load_fashion_mnist
from fashionlab.serving.predict import load_torch_predictor
from fashionlab.serving.preprocess import prepare_file

DOCS = Path(__file__).parent
OUT = DOCS / "predict"


def product_photo(pixels: np.ndarray, scale: int, margins: tuple, tint: tuple) -> Image.Image:
    """A test image as a shop photo: light background, enlarged, coloured, off-centre."""
    grey = Image.fromarray(255 - pixels, "L").resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    item = Image.merge("RGB", [grey.point(lambda v, c=c: 255 - (255 - v) * c // 255) for c in tint])
    left, top, right, bottom = margins
    canvas = Image.new("RGB", (28 * scale + left + right, 28 * scale + top + bottom), (255, 255, 255))
    canvas.paste(item, (left, top))
    return canvas


def drawn_tshirt() -> Image.Image:
    """A drawn red T-shirt with a soft shadow on an off-white background: not from the data set at all."""
    image = Image.new("RGB", (320, 300), (246, 244, 240))
    outline = [(95, 40), (135, 30), (160, 50), (185, 30), (225, 40), (290, 95), (255, 135), (230, 115),
               (230, 270), (90, 270), (90, 115), (65, 135), (30, 95)]
    shadow = Image.new("L", image.size, 0)
    ImageDraw.Draw(shadow).polygon([(x + 6, y + 8) for x, y in outline], fill=70)
    image.paste((200, 198, 194), mask=shadow.filter(ImageFilter.GaussianBlur(6)))
    ImageDraw.Draw(image).polygon(outline, fill=(190, 30, 40))
    return image


def examples() -> list[tuple[str, Image.Image, str]]:
    data = load_fashion_mnist()
    rng = np.random.default_rng(7)
    chosen = [0, 2, 1, 13, 6, 8, 9, 18]  # test images: boot, trouser, pullover, dress, coat, sandal, sneaker, bag
    out = []
    for i in chosen:
        tint = tuple(int(v) for v in rng.integers(60, 256, 3))
        margins = tuple(int(v) for v in rng.integers(10, 60, 4))
        photo = product_photo(data.test_images[i], 8, margins, tint)
        out.append((f"test{i}", photo, CLASSES[data.test_labels[i]]))
    out.append(("drawn-tshirt", drawn_tshirt(), "T-Shirt"))
    return out


def write_examples(predictor) -> list[Path]:
    OUT.mkdir(exist_ok=True)
    rows = ["| photo | what the model saw | true class | prediction (top 3) |", "|---|---|---|---|"]
    paths = []
    for name, photo, truth in examples():
        path = OUT / f"{name}.jpg"
        photo.save(path, quality=88)
        paths.append(path)
        prepared = prepare_file(path)
        Image.fromarray(prepared.pixels, "L").resize((112, 112), Image.Resampling.NEAREST).save(
            OUT / f"{name}-seen.png")
        top = predictor.top(predictor.probabilities([prepared])[0], 3)
        guess = ", ".join(f"{'**' if k == 0 else ''}{t['label']}{'**' if k == 0 else ''} {t['probability']:.0%}"
                          for k, t in enumerate(top))
        rows.append(f"| <img src=\"predict/{name}.jpg\" height=\"112\"> | ![](predict/{name}-seen.png) | "
                    f"{truth} | {guess} |")
    print("\n".join(rows))
    return paths


def photo_accuracy(predictor, n: int) -> None:
    """The model on the original test images and on the same images as JPEG shop photos (as the tests render)."""
    from fashionlab.serving.preprocess import Prepared

    data = load_fashion_mnist()
    rng = np.random.default_rng(0)
    images, labels = data.test_images[:n], data.test_labels[:n]
    original = predictor.probabilities([Prepared(a, (28, 28), False) for a in images]).argmax(1)
    prepared = []
    for a in images:
        scale = int(rng.integers(4, 13))
        margins = tuple(int(v) for v in rng.integers(10, 100, 4))
        buf = io.BytesIO()
        product_photo(a, scale, margins, (255, 255, 255)).save(buf, "JPEG", quality=90)
        prepared.append(prepare_file(buf.getvalue()))
    photos = predictor.probabilities(prepared).argmax(1)
    acc_o, acc_p = (original == labels).mean(), (photos == labels).mean()
    print(f"{n} test images: accuracy {acc_o:.4f} on the originals, {acc_p:.4f} on them as JPEG product photos "
          f"({acc_p / acc_o:.1%} kept)")


def screenshot(run: str, runs_dir: str | None, photos: list[Path]) -> None:
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "fashionlab", "serve", "--run", run, "--port", str(port)]
    server = subprocess.Popen(cmd + (["--runs-dir", runs_dir] if runs_dir else []))
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#files", [str(p) for p in photos])
            # selectors and functions, not wait_for_function's strings: the page's CSP forbids evaluating strings
            page.locator(".result img.overlay").nth(len(photos) - 1).wait_for()
            page.eval_on_selector_all(".result img", "imgs => Promise.all(imgs.map(i => i.decode()))")
            page.screenshot(path=str(DOCS / "serve-page.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--runs-dir")
    parser.add_argument("--photos", type=int, default=10_000, help="test images for the accuracy comparison")
    args = parser.parse_args()
    predictor = load_torch_predictor(args.run, args.runs_dir)
    photo_accuracy(predictor, args.photos)
    paths = write_examples(predictor)
    screenshot(args.run, args.runs_dir, [paths[0], paths[3], paths[-1], paths[6]])


if __name__ == "__main__":
    main()
