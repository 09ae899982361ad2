"""DDP under torchrun: 2 CPU processes (gloo) train one run; replicas stay identical, rank 0 alone writes."""

import json
import os
import subprocess
import sys

import pytest
import torch

# Trains with a model registered here, so each process can save the weights it actually held afterwards.
WORKER = """
import sys
import torch
from fashionlab.config import RunConfig
from fashionlab.models import register
from fashionlab.models.mlp import ann
from fashionlab.training import distributed
from fashionlab.training.loop import train

made, trained_on = [], []


def count(module, inputs, output):
    if module.training:
        trained_on.append(len(inputs[0]))


@register("probe_ann", "the paper's ANN, remembering the instance it made and the training images it saw")
def probe_ann():
    made.append(ann())
    made[-1].register_forward_hook(count)
    return made[-1]

out, root, prune = sys.argv[1], sys.argv[2], float(sys.argv[3])
config = RunConfig.from_dict(dict(model="probe_ann", epochs=2, batch_size=100, train_limit=600, test_limit=200,
                                  optimizer="sgd", lr=0.05, precision="fp32", threads=1, name="ddp", prune=prune))
train(config, root=root, show_progress=False)
torch.save({"weights": made[-1].state_dict(), "images": sum(trained_on)}, f"{out}/rank{distributed.rank()}.pt")
distributed.shutdown()
"""


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize("prune", [0.0, 0.5])
def test_two_process_torchrun_keeps_replicas_identical_and_writes_one_run(tmp_path, fmnist, prune):
    """With `prune` (training/pruning.py) the ranks pool their images' losses, so they skip the same images as
    one process would."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    (tmp_path / "ddp").mkdir()
    (tmp_path / "single").mkdir()
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
          str(tmp_path / "ddp"), str(tmp_path / "ddp" / "runs"), str(prune)], tmp_path)
    _run([sys.executable, str(script), str(tmp_path / "single"), str(tmp_path / "single" / "runs"), str(prune)],
         tmp_path)

    rank0, rank1, single = (torch.load(tmp_path / path) for path in ("ddp/rank0.pt", "ddp/rank1.pt",
                                                                       "single/rank0.pt"))
    # each process trained on half of every batch: 2 epochs x 600 images, split in two
    assert (rank0["images"], rank1["images"], single["images"]) == (600, 600, 1200)
    rank0, rank1, single = rank0["weights"], rank1["weights"], single["weights"]
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # the two processes held the same weights
    # SGD on equal shards with averaged gradients is the single-process step on the whole batch
    assert all(torch.allclose(rank0[k], single[k], atol=1e-5) for k in rank0)

    # exactly one run directory, written by rank 0 only, and it is a complete finished run
    runs = tmp_path / "ddp" / "runs"
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    run = runs / "ddp"
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    saved = torch.load(run / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)
    # the epoch's training accuracy counts both ranks' shards: same as the single-process run's, to noise
    ddp_rows = (run / "history.csv").read_text().splitlines()
    single_rows = (tmp_path / "single" / "runs" / "ddp" / "history.csv").read_text().splitlines()
    assert len(ddp_rows) == len(single_rows)
    assert len(ddp_rows) == 3 if not prune else len(ddp_rows) > 3  # pruned epochs are shorter, so more of them
    for a, b in zip(ddp_rows[1:], single_rows[1:]):
        ddp_loss, single_loss = float(a.split(",")[1]), float(b.split(",")[1])
        assert abs(ddp_loss - single_loss) < 1e-4
