"""`fashionlab predict --explain DIR`: one overlay PNG per image, named after it; there and in --show-input DIR,
existing files are replaced only with --force, input images never; every refusal is one line and writes
nothing."""

import json

import pytest
from PIL import Image

from fashionlab.cli import main


@pytest.fixture
def photo_dir(tmp_path, photos):
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for i, data in enumerate(photos(range(3))):
        (folder / f"item{i}.jpg").write_bytes(data)
    (folder / "more" / "item0.jpg").write_bytes(photos([3])[0])  # the same name in another folder
    return folder


def _predict(served_run, *args):
    root, name = served_run
    return main(["predict", *args, "--run", name, "--runs-dir", str(root)])


def _contents(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_one_overlay_per_image(served_run, photo_dir, tmp_path, capsys):
    out = tmp_path / "why"
    assert _predict(served_run, str(photo_dir), "--explain", str(out), "--format", "json") == 0
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    assert sorted(p.name for p in out.iterdir()) == ["item0.png", "item0_.png", "item1.png", "item2.png"]
    assert f"4 attribution overlay(s) in {out}" in captured.err
    for path in out.iterdir():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 250
    assert len(results) == 4 and all(r["error"] is None for r in results)


@pytest.mark.parametrize("option", ["--explain", "--show-input"])
def test_existing_files_need_force_and_input_images_are_never_replaced(served_run, photo_dir, tmp_path, capsys,
                                                                       option):
    out = tmp_path / "why"
    out.mkdir()
    (out / "item1.png").write_bytes(b"the user's own file")
    (out / "notes.txt").write_text("keep me")
    assert _predict(served_run, str(photo_dir), option, str(out)) == 2
    err = capsys.readouterr().err
    assert f"{option} {out}: " in err and "item1.png already exists" in err and "--force" in err
    assert err.count("\n") == 1
    assert _contents(out) == {"item1.png": b"the user's own file", "notes.txt": b"keep me"}  # nothing written

    assert _predict(served_run, str(photo_dir), option, str(out), "--force") == 0
    capsys.readouterr()
    assert (out / "item1.png").read_bytes().startswith(b"\x89PNG") and (out / "notes.txt").read_text() == "keep me"
    assert _predict(served_run, str(photo_dir), option, str(out)) == 2
    assert "4 of its files already exist" in capsys.readouterr().err

    # an overlay named like an input image in the same folder would replace the photo: refused even with --force
    (photo_dir / "item2.png").write_bytes(b"a photo")
    before = _contents(photo_dir)
    assert _predict(served_run, str(photo_dir / "item2.png"), option, str(photo_dir), "--force") == 2
    err = capsys.readouterr().err
    assert "would replace the input image" in err and err.count("\n") == 1
    assert _contents(photo_dir) == before


@pytest.mark.parametrize("case", ["onnx", "force alone", "a file as folder"])
def test_bad_usage_is_one_line(served_run, photo_dir, tmp_path, capsys, case):
    (tmp_path / "file.txt").write_text("x")
    args, message = {
        "onnx": (["--onnx", str(tmp_path / "m.onnx"), "--explain", str(tmp_path / "why")], "instead of --onnx"),
        "force alone": (["--force"], "give one of them too"),
        "a file as folder": (["--explain", str(tmp_path / "file.txt")], "is a file, not a folder"),
    }[case]
    root, name = served_run
    run = [] if case == "onnx" else ["--run", name, "--runs-dir", str(root)]
    assert main(["predict", str(photo_dir), *run, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "why").exists()


def test_a_bad_image_gets_no_overlay_and_the_others_do(served_run, photo_dir, tmp_path, capsys):
    (photo_dir / "broken.jpg").write_bytes(b"not a photo")
    out = tmp_path / "why"
    assert _predict(served_run, str(photo_dir), "--explain", str(out)) == 1
    assert "broken.jpg is not a PNG" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["item0.png", "item0_.png", "item1.png", "item2.png"]
