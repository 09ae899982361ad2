"""The CUDA path: every model, the augmentations, whole runs, resume and divergence on a GPU.

Skipped where torch sees no GPU (CI and the 2-core CPU machines); run on a lent GPU machine with
`python -m pytest tests/test_cuda.py` (docs/RESULTS.md records when and where).
"""

import pytest
import torch

from fashionlab.data import apply_augment, parse_augment
from fashionlab.errors import TrainingDiverged
from fashionlab.evaluation import evaluate_run
from fashionlab.models import MODELS, create_model
from fashionlab.runs import open_run
from fashionlab.training.checkpoint import load_checkpoint
from fashionlab.training.loop import GPU_SYNC_EVERY, Interrupted, train
from fashionlab.training.optim import create_optimizer
from fashionlab.training.precision import autocast, choose_precision, prepare_input, prepare_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_takes_bf16_steps_on_cuda_with_the_fused_optimizer(name, tiny_config):
    torch.manual_seed(0)
    model = prepare_model(create_model(name), CUDA)
    opt = create_optimizer(model.parameters(), tiny_config(optimizer="sgd", lr=0.05, momentum=0.9))
    x, y = torch.randn(32, 1, 28, 28, device=CUDA), torch.arange(32, device=CUDA) % 10
    losses = []
    for _ in range(6):
        with autocast(CUDA, "bf16"):
            logits = model(prepare_input(x, model))
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert logits.shape == (32, 10) and logits.device.type == "cuda"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("spec", ["flip", "crop", "affine", "erase", "flip,crop,affine,erase"])
def test_augmentations_run_on_the_gpu(spec):
    torch.cuda.manual_seed(0)
    x = torch.randn(64, 1, 28, 28, device=CUDA)
    out = apply_augment(x, parse_augment(spec), None)
    assert out.device.type == "cuda" and out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)  # p=0.5 per image over 64 images: something changed


def test_auto_precision_is_bf16_on_a_gpu():
    model = prepare_model(create_model("cnn"), CUDA)
    assert choose_precision("auto", model, CUDA, 64) == "bf16"


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])  # muon: the fast and standard recipes' optimizer
def test_a_gpu_run_finishes_and_its_weights_evaluate_the_same_on_the_cpu(tmp_path, fmnist, tiny_config, optimizer):
    run = train(tiny_config(model="fastnet_small", device="cuda", precision="auto", optimizer=optimizer, lr=0.05,
                            momentum=0.9, augment="flip"), root=tmp_path, data=fmnist, show_progress=False)
    metrics = run.metrics()
    assert run.finished and metrics["device"].startswith("cuda")
    assert metrics["precision"] == "bf16" and metrics["accuracy"] > 0.6
    assert all(v.device.type == "cpu" for v in load_checkpoint(run.model_path)["model"].values())
    on_gpu = evaluate_run(run.path, root=tmp_path, device="cuda")  # all 10,000 test images, as on_cpu
    on_cpu = evaluate_run(run.path, root=tmp_path, device="cpu")
    assert abs(on_cpu["accuracy"] - on_gpu["accuracy"]) <= 0.003  # bf16 kernels differ: a few images may flip


@pytest.mark.parametrize("prune", [0, 0.7])  # 0.7: stopped inside a pruned epoch, its scores on the GPU
def test_a_gpu_run_resumes_after_ctrl_c(tmp_path, fmnist, tiny_config, ctrl_c_at, prune):
    settings = dict(model="ann_bn", device="cuda", precision="fp32", epochs=2, augment="flip,erase",
                    optimizer="adamw", scheduler="onecycle", prune=prune)
    straight = train(tiny_config(name="straight", **settings), root=tmp_path, data=fmnist, show_progress=False)
    ctrl_c_at(1, 5)
    with pytest.raises(Interrupted, match="--resume"):
        train(tiny_config(name="broken", **settings), root=tmp_path, data=fmnist, show_progress=False)
    broken = open_run("broken", tmp_path)
    assert broken.state == "interrupted"
    resumed = train(None, root=tmp_path, resume=broken.path, data=fmnist, show_progress=False)
    a, b = load_checkpoint(straight.model_path)["model"], load_checkpoint(resumed.model_path)["model"]
    # cuBLAS may sum in another order across launches: equal to float rounding, not bit for bit
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-5) for k in a)
    assert [r["train_loss"] for r in resumed.history()] == pytest.approx(
        [r["train_loss"] for r in straight.history()], rel=1e-5)


def test_a_diverged_gpu_run_is_caught_before_its_checkpoint(tmp_path, fmnist, tiny_config, nan_weights_at):
    """The GPU reads the loss back every GPU_SYNC_EVERY steps, not each step; a NaN is still caught before the
    epoch's checkpoint and reported with the first unread step it may have started at."""
    assert GPU_SYNC_EVERY > 20  # so the poisoned step is read back at the epoch's end, not at once
    nan_weights_at(1, 3)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, batch 1 \(or one of the 19 after"):
        train(tiny_config(epochs=3, device="cuda"), root=tmp_path, data=fmnist, show_progress=False)
    run = open_run("tiny", tmp_path)
    assert run.state == "failed"
    last = load_checkpoint(run.last_checkpoint)
    assert last["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())
