"""How much of a model's accuracy survives product photos taken under studio conditions, one condition at a time.

    python benchmarks/photo_conditions.py [--run RUN] [--runs-dir out/photo-runs] [--split test|val]
                                          [--images 1000] [--seeds 0] [--conditions NAME,...]
                                          [--sheet out/photo-conditions.png] [--threads 1]

Each sampled image of the data set becomes a product photo: negated (a garment is dark on a light backdrop in a
photo), enlarged with bicubic interpolation, composited on a backdrop through its silhouette, and saved as PNG
(JPEG where a condition says so). The reference photo (`clean`) is white, centred, 224 pixels a side for the
garment, sharp, noise-free and lossless; every other condition changes one thing about it (the functions below,
one per condition), and `combined` changes all of them at once (the backdrop is tinted off-white or grey, at
random). The encoded bytes then go through `prepare_file`, the path `fashionlab predict` and `fashionlab serve`
take, and the run's model classifies the result.

Printed per condition: the accuracy on the photos, the share of the model's accuracy on the raw 28x28 images that
it keeps, and the CPU time `prepare_file` took per photo (CPU time, not wall time: other processes on a shared
machine slow it less, but a busy cache still does). With one seed, ± is the binomial standard error over the
images; with several seeds (each a new sample of images and new renders), the mean ± sample standard deviation
over the seeds.

`--split val` renders validation images: the preprocessing's parameters are chosen there, with a run that never
trained on them (its own seeded validation split); `--split test` reports.
Without `--run`, the benchmark uses (training it when missing, about 2 minutes on 2 cores) `fast-photo`, the
`fast` recipe on all 60,000 training images, for `--split test`, and `fast-photo-val`, the same recipe with the
usual 10,000 validation images held out, for `--split val`.

`--sheet PNG` saves a contact sheet: for one image, each condition's photo beside the 28x28 input the model saw.
"""

from __future__ import annotations

import argparse
import colorsys
import io
import math
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashionlab.data import CLASSES, load_fashion_mnist, split_indices
from fashionlab.runs import open_run
from fashionlab.serving.predict import load_torch_predictor
from fashionlab.serving.preprocess import Prepared, prepare_file
from fashionlab.tables import format_table

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_features, describe  # noqa: E402


@dataclass(frozen=True)
class Scene:
    """How one photo is taken; each condition changes some of these fields."""
    object_px: int = 224                          # the data set's 28x28 square, enlarged to this many pixels
    margins: tuple = (0.2, 0.2, 0.2, 0.2)         # left, top, right, bottom, as fractions of object_px
    backdrop: tuple = (255.0, 255.0, 255.0)       # RGB
    garment: tuple = (255.0, 255.0, 255.0)        # the colour of the garment's lightest parts
    rotation: float = 0.0                         # degrees, counter-clockwise
    shadow: tuple | None = None                   # (angle in degrees, distance, blur, strength); lengths / object_px
    lighting: tuple | None = None                 # (falloff across the photo, its direction in degrees, vignette)
    blur: float = 0.0                             # Gaussian radius / object_px
    noise: float = 0.0                            # sensor noise, standard deviation in grey levels per channel
    jpeg: int | None = None                       # JPEG quality; None saves a PNG


# The conditions: each takes the scene and a random generator and returns the changed scene.

def tinted_backdrop(scene: Scene, rng: np.random.Generator) -> Scene:
    """An off-white backdrop with a cast (cream, bluish, pinkish): each channel about 215..250."""
    level = rng.uniform(228, 246)
    return replace(scene, backdrop=tuple(float(c) for c in np.clip(level + rng.uniform(-14, 5, 3), 0, 255)))


def grey_backdrop(scene: Scene, rng: np.random.Generator) -> Scene:
    """A light-to-mid grey backdrop (150..215): the garment's lightest parts are brighter than it."""
    level = rng.uniform(150, 215)
    return replace(scene, backdrop=tuple(float(c) for c in np.clip(level + rng.uniform(-4, 4, 3), 0, 255)))


def off_centre(scene: Scene, rng: np.random.Generator) -> Scene:
    """Each margin drawn on its own, 2..60% of the garment's size: off-centre, tight or roomy framing."""
    return replace(scene, margins=tuple(float(m) for m in rng.uniform(0.02, 0.6, 4)))


def varied_size(scene: Scene, rng: np.random.Generator) -> Scene:
    """The garment 48..1,600 pixels across (log-uniform): thumbnails to camera photos."""
    return replace(scene, object_px=int(round(math.exp(rng.uniform(math.log(48), math.log(1600))))))


def sensor_noise(scene: Scene, rng: np.random.Generator) -> Scene:
    """Gaussian noise on every channel of every pixel, standard deviation 2..8 grey levels."""
    return replace(scene, noise=float(rng.uniform(2, 8)))


def slight_blur(scene: Scene, rng: np.random.Generator) -> Scene:
    """Out of focus: a Gaussian blur of radius 0.3..1% of the garment's size (0.7..2.2 pixels at 224)."""
    return replace(scene, blur=float(rng.uniform(0.003, 0.01)))


def jpeg_artefacts(scene: Scene, rng: np.random.Generator) -> Scene:
    """Saved as JPEG at quality 25..70 (4:2:0 colour): blocks and ringing around the garment."""
    return replace(scene, jpeg=int(rng.integers(25, 71)))


def coloured_garment(scene: Scene, rng: np.random.Generator) -> Scene:
    """A coloured garment (any hue, saturation 0.3..1, value 0.55..1): darker and flatter once in grey."""
    rgb = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 1), rng.uniform(0.55, 1))
    return replace(scene, garment=tuple(255.0 * c for c in rgb))


def soft_shadow(scene: Scene, rng: np.random.Generator) -> Scene:
    """A soft drop shadow below the garment: 2..6% away, blurred over 2..6%, darkening the backdrop 12..35%."""
    return replace(scene, shadow=(float(rng.uniform(30, 150)), float(rng.uniform(0.02, 0.06)),
                                  float(rng.uniform(0.02, 0.06)), float(rng.uniform(0.12, 0.35))))


def small_rotation(scene: Scene, rng: np.random.Generator) -> Scene:
    """The garment turned by up to 10 degrees either way."""
    return replace(scene, rotation=float(rng.uniform(-10, 10)))


def uneven_lighting(scene: Scene, rng: np.random.Generator) -> Scene:
    """Light falling off by 10..30% across the photo in any direction, and corners 0..15% darker."""
    return replace(scene, lighting=(float(rng.uniform(0.1, 0.3)), float(rng.uniform(0, 360)),
                                    float(rng.uniform(0, 0.15))))


def any_backdrop(scene: Scene, rng: np.random.Generator) -> Scene:
    """Tinted off-white or grey, at random."""
    return (tinted_backdrop if rng.random() < 0.5 else grey_backdrop)(scene, rng)


CONDITIONS = {
    "clean": (),
    "tinted backdrop": (tinted_backdrop,),
    "grey backdrop": (grey_backdrop,),
    "off-centre": (off_centre,),
    "varied size": (varied_size,),
    "sensor noise": (sensor_noise,),
    "slight blur": (slight_blur,),
    "JPEG artefacts": (jpeg_artefacts,),
    "coloured garment": (coloured_garment,),
    "soft shadow": (soft_shadow,),
    "small rotation": (small_rotation,),
    "uneven lighting": (uneven_lighting,),
    "combined": (any_backdrop, off_centre, varied_size, sensor_noise, slight_blur, jpeg_artefacts,
                 coloured_garment, soft_shadow, small_rotation, uneven_lighting),
}


# Taking the photo.

DRAWN_PX = 448  # larger garments are drawn at this size and the photo enlarged: a 28x28 image has no finer detail


def _max_nearby(values: np.ndarray) -> np.ndarray:
    """Each pixel's largest value among itself and its 8 neighbours."""
    padded = np.pad(values, 1)
    h, w = values.shape
    return np.max([padded[y:y + h, x:x + w] for y in range(3) for x in range(3)], axis=0)


def _garment_layers(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opacity, darkness), both 0..1 at 28x28, such that opacity * darkness is the image.

    The data set's edge pixels blend the garment with the white backdrop it was photographed on: a pixel lighter
    than half its darkest neighbour is taken as that blend (partly transparent, with the neighbour's darkness),
    so on another backdrop the garment's edge meets the backdrop instead of a white rim. The data set's own
    faint specks (a few grey levels) stay nearly transparent.
    """
    v = pixels.astype(np.float32) / 255
    opacity = np.clip(v / np.maximum(0.5 * _max_nearby(v), 16 / 255), 0, 1)
    darkness = np.where(opacity > 0, v / np.maximum(opacity, 1e-6), 0)
    return opacity, np.clip(darkness, 0, 1)


def _enlarged(layer: np.ndarray, size: int, rotation: float) -> np.ndarray:
    """A 0..1 layer at 28x28 enlarged (bicubic) to size x size and turned, 0 where it was not."""
    image = Image.fromarray((layer * 255).round().astype(np.uint8), "L").resize((size, size),
                                                                             Image.Resampling.BICUBIC)
    if rotation:
        image = image.rotate(rotation, Image.Resampling.BICUBIC, expand=True)
    return np.asarray(image, dtype=np.float32) / 255


def _shadow(opacity: np.ndarray, scene: Scene, size: int) -> np.ndarray:
    """How much each pixel of the backdrop is darkened (0..strength): the silhouette moved and blurred."""
    angle, distance, blur, strength = scene.shadow
    dx = round(math.cos(math.radians(angle)) * distance * size)
    dy = round(math.sin(math.radians(angle)) * distance * size)  # image rows grow downwards
    moved = Image.fromarray((opacity * 255).astype(np.uint8), "L").transform(
        opacity.shape[::-1], Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
    soft = moved.filter(ImageFilter.GaussianBlur(blur * size))
    return np.asarray(soft, dtype=np.float32) / 255 * strength


def _light(shape: tuple, scene: Scene) -> np.ndarray:
    """The light falling on each pixel, 1 at the brightest: a linear falloff and a vignette."""
    falloff, direction, vignette = scene.lighting
    y, x = np.ogrid[0:shape[0], 0:shape[1]]
    x, y = x.astype(np.float32) / max(shape[1] - 1, 1) - 0.5, y.astype(np.float32) / max(shape[0] - 1, 1) - 0.5
    along = x * math.cos(math.radians(direction)) + y * math.sin(math.radians(direction))
    light = (1 - falloff * (along - along.min()) / max(float(along.max() - along.min()), 1e-6)) \
        * (1 - vignette * 2 * (x**2 + y**2))
    return light / light.max()


def _draw(pixels: np.ndarray, scene: Scene, size: int) -> Image.Image:
    """The scene drawn with the garment `size` pixels across, before blur, noise and encoding."""
    opacity, darkness = (_enlarged(layer, size, scene.rotation) for layer in _garment_layers(pixels))
    left, top, right, bottom = (round(m * size) for m in scene.margins)
    height, width = opacity.shape[0] + top + bottom, opacity.shape[1] + left + right
    place = (slice(top, top + opacity.shape[0]), slice(left, left + opacity.shape[1]))
    alpha, dark = np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
    alpha[place], dark[place] = opacity, darkness
    backdrop = np.broadcast_to(np.array(scene.backdrop, np.float32), (height, width, 3))
    if scene.shadow:
        backdrop = backdrop * (1 - _shadow(alpha, scene, size))[..., None]
    garment = (1 - dark)[..., None] * np.array(scene.garment, np.float32)
    photo = alpha[..., None] * garment + (1 - alpha[..., None]) * backdrop
    if scene.lighting:
        photo = photo * _light((height, width), scene)[..., None]
    image = Image.fromarray(np.clip(photo, 0, 255).round().astype(np.uint8), "RGB")
    if scene.blur:
        image = image.filter(ImageFilter.GaussianBlur(scene.blur * size))
    return image


def photograph(pixels: np.ndarray, scene: Scene, rng: np.random.Generator) -> bytes:
    """The 28x28 image (white garment on black) as an encoded photo taken as the scene says."""
    drawn = min(scene.object_px, DRAWN_PX)
    image = _draw(pixels, scene, drawn)
    if drawn < scene.object_px:
        factor = scene.object_px / drawn
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
    if scene.noise:
        noisy = rng.standard_normal((image.height, image.width, 3), dtype=np.float32)
        noisy *= scene.noise
        noisy += np.asarray(image, np.float32)
        image = Image.fromarray(np.rint(np.clip(noisy, 0, 255, out=noisy), out=noisy).astype(np.uint8))
    buf = io.BytesIO()
    if scene.jpeg:
        image.save(buf, "JPEG", quality=scene.jpeg)
    else:
        image.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def render(pixels: np.ndarray, condition: str, rng: np.random.Generator) -> bytes:
    scene = Scene()
    for change in CONDITIONS[condition]:
        scene = change(scene, rng)
    return photograph(pixels, scene, rng)


# Measuring.

def default_run(split: str, runs_dir: Path, threads: int) -> str:
    """The `fast` recipe's run for this split, trained when it is not there yet."""
    name, extra = ("fast-photo-val", ["--val-size", "10000"]) if split == "val" else ("fast-photo", [])
    if not (runs_dir / name / "metrics.json").exists():
        print(f"training {name} (the fast recipe{', 10,000 validation images held out' if extra else ''})",
              flush=True)
        subprocess.run([sys.executable, "-m", "fashionlab", "train", "--recipe", "fast", "--name", name,
                        "--runs-dir", str(runs_dir), "--threads", str(threads), "--no-progress", "--overwrite",
                        *extra], check=True)
    return name


def image_pool(data, split: str, run) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) to sample from: the test set, or the run's own validation images."""
    if split == "test":
        return data.test_images, np.asarray(data.test_labels)
    config = run.config()
    if not config.val_size:
        raise SystemExit(f"run {run.name} trained on every training image: it has no validation images to render")
    _, val = split_indices(len(data.train_labels), config.val_size, config.split_seed)
    return data.train_images[val], np.asarray(data.train_labels)[val]


def accuracy(predictor, prepared: list, labels: np.ndarray) -> np.ndarray:
    """1 where the model is right, 0 where it is wrong, per image."""
    return (predictor.probabilities(prepared).argmax(1) == labels).astype(np.float64)


def _rng(seed: int, condition: str, index: int) -> np.random.Generator:
    """The same photo of an image under a condition, whichever other conditions are measured with it."""
    return np.random.default_rng((seed, list(CONDITIONS).index(condition), int(index)))


def measure(predictor, images, labels, conditions, seed: int, count: int) -> tuple[dict, dict]:
    """({'raw': per-image hits, condition: per-image hits}, {condition: CPU ms per photo of decoding and
    preparing}) on a seeded sample of `count` images."""
    chosen = np.sort(np.random.default_rng(seed).choice(len(labels), size=min(count, len(labels)), replace=False))
    truth = labels[chosen]
    hits = {"raw": accuracy(predictor, [Prepared(images[i], (28, 28), False) for i in chosen], truth)}
    cpu_ms = {}
    for condition in conditions:
        photos = [render(images[i], condition, _rng(seed, condition, i)) for i in chosen]
        start = time.process_time()
        prepared = [prepare_file(p) for p in photos]
        cpu_ms[condition] = (time.process_time() - start) * 1000 / len(photos)
        hits[condition] = accuracy(predictor, prepared, truth)
    return hits, cpu_ms


def contact_sheet(images, labels, conditions, path: Path, index: int = 0, seed: int = 0) -> None:
    """A grid, 4 conditions a row: each photo (shrunk to 160 pixels) beside the 28x28 input the model saw (x4)."""
    cell, seen_px, text_px, columns = 160, 112, 30, 4
    width, height = cell + seen_px + 12, cell + text_px
    rows = math.ceil(len(conditions) / columns)
    sheet = Image.new("RGB", (columns * width, rows * height), (96, 96, 96))
    draw = ImageDraw.Draw(sheet)
    for k, condition in enumerate(conditions):
        photo = render(images[index], condition, _rng(seed, condition, index))
        shown = Image.open(io.BytesIO(photo)).convert("RGB")
        size = shown.size
        shown.thumbnail((cell, cell))
        seen = Image.fromarray(prepare_file(photo).pixels, "L").resize((seen_px, seen_px), Image.Resampling.NEAREST)
        x, y = (k % columns) * width, (k // columns) * height
        sheet.paste(shown, (x + (cell - shown.width) // 2, y + (cell - shown.height) // 2))
        sheet.paste(seen.convert("RGB"), (x + cell + 4, y + (cell - seen_px) // 2))
        draw.text((x + 4, y + cell + 4), f"{condition}, {size[0]}x{size[1]} px ({CLASSES[labels[index]]})",
                  fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    print(f"contact sheet: {path}")


def summary(per_seed: list[dict], condition: str) -> tuple[str, str]:
    """('accuracy ± spread', 'kept ± spread') over the seeds, or with the binomial standard error for one."""
    acc = np.array([hits[condition].mean() for hits in per_seed])
    kept = acc / np.array([hits["raw"].mean() for hits in per_seed])
    if len(per_seed) > 1:
        return f"{acc.mean():.2%} ± {acc.std(ddof=1):.2%}", f"{kept.mean():.1%} ± {kept.std(ddof=1):.1%}"
    n = len(per_seed[0][condition])
    se = math.sqrt(acc[0] * (1 - acc[0]) / n)
    return f"{acc[0]:.2%} ± {se:.2%}", f"{kept[0]:.1%} ± {se / per_seed[0]['raw'].mean():.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="run to classify with (default: fast-photo / fast-photo-val)")
    parser.add_argument("--runs-dir", default="out/photo-runs")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--images", type=int, default=1000, help="images sampled per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated, of: " +
                        ", ".join(CONDITIONS))
    parser.add_argument("--sheet", default=None, metavar="PNG", help="save a contact sheet of one image")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if unknown := [c for c in conditions if c not in CONDITIONS]:
        parser.error(f"unknown conditions {unknown}; choose from {', '.join(CONDITIONS)}")
    runs_dir = Path(args.runs_dir)
    name = args.run or default_run(args.split, runs_dir, args.threads)
    predictor = load_torch_predictor(name, runs_dir, threads=args.threads)
    data = load_fashion_mnist()
    images, labels = image_pool(data, args.split, open_run(name, runs_dir))
    if args.sheet:
        contact_sheet(images, labels, conditions, Path(args.sheet))
    start = time.perf_counter()
    measured = [measure(predictor, images, labels, conditions, seed, args.images) for seed in args.seeds]
    per_seed = [hits for hits, _ in measured]
    print(f"\n{describe()}\nCPU features: {cpu_features()}")
    spread = ("± binomial standard error over the images" if len(args.seeds) == 1
              else f"mean ± std over seeds {args.seeds}")
    print(f"run {name} ({predictor.info['model']}); {args.split} images, {len(per_seed[0]['raw'])} per seed, "
          f"seeds {args.seeds}; {spread}; {time.perf_counter() - start:.0f} s\n")
    rows = [["raw 28x28 images", summary(per_seed, "raw")[0], "100%", "-"]]
    rows += [[condition, *summary(per_seed, condition),
              f"{np.mean([cpu_ms[condition] for _, cpu_ms in measured]):.1f}"] for condition in conditions]
    print(format_table(["condition", "accuracy", "kept of raw", "decode + prepare, CPU ms/photo"], rows, "lrrr"))


if __name__ == "__main__":
    main()
