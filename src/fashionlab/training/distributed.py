"""Data-parallel training under `torchrun`: process group, rank, batch sharding, rank-0-only writes.

`torchrun --nproc-per-node N -m fashionlab train ...` starts N copies of the command with RANK,
LOCAL_RANK and WORLD_SIZE set. Each copy walks the same global batches (the epoch order is a function
of the seed), trains on its 1/N shard of every batch, and DistributedDataParallel averages the
gradients, so a step equals a single-process step on the whole batch (up to BatchNorm statistics
being per shard, and augmentation/dropout drawing different random numbers). Without torchrun every
function here is a no-op and training is single-process, exactly as before.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError


def launched() -> bool:
    """True when started by torchrun (or another launcher setting the env:// variables) with >1 process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Only this process writes the run directory, checkpoints, logs and prints."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun; the device this process trains on.

    NCCL on CUDA (one GPU per process, chosen by LOCAL_RANK), gloo on CPU.
    """
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timedelta(minutes=10), **kwargs)
    return device


def shutdown() -> None:
    """Leave the process group together: all ranks meet first, then tear down.

    Without the barrier rank 1 (which skips the test evaluation) tears down its gloo connections
    while rank 0 is still working, and gloo's worker threads can abort the process at exit
    ("terminate called without an active exception", seen in CI).
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def check_batch_size(batch_size: int) -> None:
    if active() and batch_size % world_size():
        raise ConfigError(f"batch_size {batch_size} must be divisible by the {world_size()} processes "
                          "(each trains on an equal shard of every batch)")


def shard(*batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """This process's contiguous 1/N slice of each tensor of a global batch (images, labels, image indices;
    equal sizes, so mean losses average exactly)."""
    if not active():
        return batch
    n = len(batch[0]) // world_size()
    sl = slice(rank() * n, (rank() + 1) * n)
    return tuple(t[sl] for t in batch)


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module to train with: DistributedDataParallel around `model` (which keeps the shared weights)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    # DDP broadcasts rank 0's weights and buffers at construction, so every replica starts identical.
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def from_main(value):
    """Rank 0's `value` on every rank (e.g. the precision `auto` chose, the run's name)."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_counts(*values: float) -> list[float]:
    """Sum numbers across ranks (per-epoch loss sums and counts of each rank's shards)."""
    if not active():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def merge_updates(values: torch.Tensor, updated: torch.Tensor) -> torch.Tensor:
    """`values` where any rank `updated` them, each taken from the rank that did (the mean, should several)."""
    if not active():
        return values
    both = torch.stack([torch.where(updated, values, 0.0).double(), updated.double()])
    if dist.get_backend() == "nccl":
        both = both.cuda()
    dist.all_reduce(both)
    both = both.to(values.device)
    return torch.where(both[1] > 0, both[0] / both[1].clamp_min(1), values.double()).to(values.dtype)


def replicas_differ(model: torch.nn.Module) -> float:
    """Largest difference of any weight between this rank and rank 0 (0.0 when in sync), on every rank."""
    if not active():
        return 0.0
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.state_dict().values()
                      if p.is_floating_point()])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    diff = (flat - reference).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def sync_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics, updated per shard) to all ranks before evaluating."""
    if not active():
        return
    for buf in model.buffers():
        dist.broadcast(buf, src=0)
