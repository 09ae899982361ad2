"""Knowledge distillation: the matching term, and a student that learns what its teacher says."""

import pytest
import torch
from torch import nn

from fashionlab.errors import ConfigError
from fashionlab.evaluation import evaluate_run
from fashionlab.training.checkpoint import load_checkpoint, save_checkpoint
from fashionlab.training.distillation import Teacher
from fashionlab.training.loop import train


@pytest.fixture
def teacher_run(tmp_path, fmnist, tiny_config):
    return train(tiny_config(name="teacher"), root=tmp_path, data=fmnist, show_progress=False)


def test_matching_term_vanishes_only_where_the_student_says_what_the_teacher_says(teacher_run, fmnist):
    teacher = Teacher(str(teacher_run.path), weight=1.0, temperature=4.0, device=torch.device("cpu"))
    x = torch.from_numpy(fmnist.train_images[:64]).float().div(255).sub(0.286).div(0.353).unsqueeze(1)
    with torch.no_grad():
        same = teacher.model(x)
    loss = teacher.criterion(nn.CrossEntropyLoss(reduction="none"), x)
    labels = torch.zeros(64, dtype=torch.long)
    assert loss(same, labels).shape == (64,)
    assert loss(same, labels).abs().max() < 1e-4  # weight 1: the labels play no part
    assert loss(same.roll(1, dims=1), labels).min() > 1e-3
    half = Teacher(str(teacher_run.path), weight=0.5, temperature=4.0, device=torch.device("cpu"))
    mean_loss = half.criterion(nn.CrossEntropyLoss(), x)(same, labels)
    assert mean_loss.dim() == 0
    assert mean_loss == pytest.approx(0.5 * nn.functional.cross_entropy(same, labels).item(), rel=1e-3)


def test_a_student_learns_its_teachers_answers_not_the_labels(tmp_path, fmnist, tiny_config, teacher_run):
    """The teacher's T-shirt and Trouser outputs swapped: a student matching it alone (weight 1) swaps them too."""
    record = load_checkpoint(teacher_run.model_path)
    [last_weight, last_bias] = [k for k, v in record["model"].items() if v.shape[:1] == (10,)][-2:]
    for key in (last_weight, last_bias):
        record["model"][key] = record["model"][key][[1, 0, *range(2, 10)]]
    save_checkpoint(record, teacher_run.model_path)
    student = train(tiny_config(name="student", distill_from=str(teacher_run.path), distill_weight=1.0,
                                distill_temperature=1.0), root=tmp_path, data=fmnist, show_progress=False)
    confusion = evaluate_run(str(student.path))["confusion_matrix"]  # rows: true class, columns: predicted
    trousers = confusion[1]
    assert trousers[0] > 0.8 * sum(trousers) > 0  # told "T-shirt" for every trouser
    plain = evaluate_run(str(train(tiny_config(name="plain"), root=tmp_path, data=fmnist,
                                   show_progress=False).path))["confusion_matrix"]
    assert plain[1][1] > 0.8 * sum(plain[1])


@pytest.mark.parametrize("change, message", [(dict(distill_weight=0), "distill_weight"),
                                             (dict(distill_weight=1.5), "distill_weight"),
                                             (dict(distill_temperature=0), "distill_temperature")])
def test_distillation_settings_are_checked(tiny_config, change, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(distill_from="somewhere", **change)
