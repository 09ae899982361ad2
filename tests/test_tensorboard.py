"""--tensorboard: the run directory holds an event file with the curves, confusion matrix and examples."""

import io

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashionlab.training.loop import train


def test_tensorboard_event_file_has_scalars_and_images(tmp_path, fmnist, tiny_config):
    run = train(tiny_config(tensorboard=True, train_limit=1000), root=tmp_path, data=fmnist, show_progress=False)
    events = EventAccumulator(str(run.path), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "learning_rate",
            "test/accuracy", "test/f1_mean"} <= set(tags["scalars"])
    history = run.history()
    train_loss = events.Scalars("loss/train")
    assert [e.step for e in train_loss] == [row["epoch"] for row in history]
    assert [round(e.value, 4) for e in train_loss] == [round(row["train_loss"], 4) for row in history]
    assert abs(events.Scalars("test/accuracy")[0].value - run.metrics()["accuracy"]) < 1e-6

    assert {"test/confusion_matrix", "test/examples"} <= set(tags["images"])
    for tag in ("test/confusion_matrix", "test/examples"):
        image = Image.open(io.BytesIO(events.Images(tag)[0].encoded_image_string))
        assert image.width > 400 and image.height > 200
        assert len(np.unique(np.asarray(image.convert("L")))) > 20  # a drawn figure, not a blank canvas


def test_no_event_file_without_the_flag(tmp_path, fmnist, tiny_config):
    run = train(tiny_config(epochs=1, train_limit=500), root=tmp_path, data=fmnist, show_progress=False)
    assert not list(run.path.glob("events.out.tfevents.*"))
