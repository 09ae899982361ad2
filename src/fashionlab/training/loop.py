"""The training loop in the shape of torchvision's reference script: `train_one_epoch`, evaluation after each
epoch (evaluation.loss_and_accuracy), and `train`, which wires them to a run directory.

Determinism and exact resume: every step re-seeds torch's RNG from (seed, epoch, step) and every epoch's
sample order is a function of (seed, epoch). So a run resumed from a checkpoint taken after any step
draws exactly the random numbers the uninterrupted run would have drawn, with nothing but counters to
save. Ctrl-C sets a flag that is checked between steps, so the checkpoint it writes is consistent.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import __version__
from ..artifacts import load_weights
from ..config import RunConfig, whole_if_integral
from ..data import (
    CLASSES,
    MEAN,
    STD,
    FashionMNIST,
    Split,
    apply_augment,
    epoch_order,
    iterate_batches,
    load_fashion_mnist,
    make_splits,
    num_batches,
)
from ..errors import ConfigError, FashionlabError, RunError, TrainingDiverged
from ..evaluation import classification_metrics, loss_and_accuracy, predict_proba
from ..models import count_parameters, create_model
from ..recipes import TARGETS
from ..runs import NewRun, Run, is_writer, open_run, record_resumed_settings, resume_config
from . import distributed
from .batchnorm import has_batchnorm, recalibrate_batchnorm
from .budget import PROBE_STEPS, PROBE_WARMUP, Deadline, Fit, Probe, StepTimer, fit
from .checkpoint import load_checkpoint, load_weights_into, model_state, save_checkpoint
from .distillation import Teacher
from .early_stopping import EarlyStopping
from .hooks import Chain, StepHooks, TrainingStart
from .optim import create_optimizer, create_scheduler, total_steps
from .precision import (
    autocast,
    bf16_supported,
    choose_precision,
    prepare_convolutions,
    prepare_input,
    prepare_model,
    resolve_device,
)
from .pruning import Pruner


class Interrupted(FashionlabError):
    exit_code = 130


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""
    epoch: int = 0            # completed epochs
    step: int = 0             # completed batches of the current epoch
    loss_sum: float = 0.0     # of the current epoch so far
    correct: int = 0
    seen: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)
    steps: int = 0            # steps taken in all (a budget's deadline may end an epoch part-way)


@dataclass
class StepContext:
    """How every step of a run is taken, besides the model and optimizer: one object, not a parameter list."""
    config: RunConfig
    precision: str
    device: torch.device
    hooks: StepHooks
    stop: _StopFlag
    pruner: Pruner | None = None
    bar: tqdm | None = None
    first_step: int = 0       # the run's step number of the epoch's first batch
    clock: Callable[[], float] = time.perf_counter  # what times training (tests give a fake one)


def derive_seed(seed: int, epoch: int, step: int) -> int:
    return ((seed * 1_000_003 + epoch) * 100_003 + step) % (2**63)


class _StopFlag:
    """Turns the first Ctrl-C into a request to stop after the current step; a second one aborts."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if hasattr(signal, "SIGINT") and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _log(message: str) -> None:
    if distributed.is_main():  # one copy of the log under torchrun
        tqdm.write(message, file=sys.stderr)


def _load_into(model: nn.Module, weights: dict, source) -> None:
    load_weights_into(model, weights, f"weights from {source} do not fit this model",
                      "--init-from needs a run of the same model")


def epoch_batches(train: Split, order: torch.Tensor, progress: Progress, batch_size: int,
                  steps: int | None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(batch number, images, labels, image indices) of the epoch from batch `progress.step` to batch `steps`."""
    batches = iterate_batches(train, batch_size, order, start=progress.step, drop_last=True, stop=steps)
    for b, (x, y) in enumerate(batches, start=progress.step):
        yield b, x, y, order[b * batch_size:(b + 1) * batch_size]


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer, scheduler, batches: Iterator,
                    progress: Progress, ctx: StepContext) -> None:
    """Train on `batches` (from `epoch_batches`), or until Ctrl-C; updates `progress` after every step."""
    model.train()
    config, device, hooks = ctx.config, ctx.device, ctx.hooks
    totals = _StepTotals(progress, every=1 if device.type == "cpu" else GPU_SYNC_EVERY)
    for b, x, y, images in batches:
        step = ctx.first_step + b
        # the default generator alone: torch.manual_seed also visits every accelerator backend (slow per step).
        # Under DDP each rank draws its own random numbers (seed + rank) and takes its shard of the batch
        step_seed = (derive_seed(config.seed, progress.epoch, b) + distributed.rank()) % 2**63
        torch.default_generator.manual_seed(step_seed)
        if device.type == "cuda":
            torch.cuda.manual_seed(step_seed)
        x, y, images = distributed.shard(x, y, images)
        if config.augment:
            x = apply_augment(x, config.augment, None)
        x, targets = hooks.batch(x, y, step)
        batch_criterion = hooks.criterion(criterion, x, step)
        loss, reported, logits = _batch_loss(model, x, targets, batch_criterion, ctx, images)
        totals.add(reported, logits, y, progress.epoch, b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        hooks.before_optimizer_step(partial(_recompute, model, x, targets, batch_criterion, ctx, images), step)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        progress.step = b + 1
        if ctx.bar is not None:
            ctx.bar.update(1)
            if totals.synced:
                ctx.bar.set_postfix(loss=f"{progress.loss_sum / progress.seen:.4f}", refresh=False)
        if ctx.stop.requested:
            break
    totals.sync()


def _batch_loss(model, x, targets, criterion, ctx: StepContext, images, remember: bool = True):
    """(loss to minimise, loss to report, logits to score) of one batch; `remember`: keep the images' losses as
    the pruner's scores."""
    with autocast(ctx.device, ctx.precision):
        logits = model(prepare_input(x, model))
    logits = logits.float()
    loss = criterion(logits, targets)
    reported = loss.detach()
    if ctx.pruner is not None:  # `criterion` gave each image's loss; the epoch's train loss is their plain mean
        reported, loss = reported.mean(), ctx.pruner.weigh(loss, images, remember)
    return loss, reported, logits


def _recompute(model, x, targets, criterion, ctx: StepContext, images) -> None:
    """The batch's forward and backward passes again (for hooks that take a second look, such as SAM)."""
    _batch_loss(model, x, targets, criterion, ctx, images, remember=False)[0].backward()


# steps between a GPU's loss reads. Each read waits for the queued kernels; the recipes' small nets are
# launch-bound and lost nothing to a read per step on an H200 (docs/EXPERIMENTS.md), but a net whose step
# keeps the GPU busier than its launches keep the CPU would idle the GPU during every read
GPU_SYNC_EVERY = 32


class _StepTotals:
    """The epoch's running loss and correct count, folded into `progress` every `every` steps.

    On a CPU every step (reading a number costs nothing, and a diverged loss stops before its update). On a
    GPU each read waits for the queued kernels, so the sums stay on the device between reads, and a
    non-finite loss is caught at the next read, before any checkpoint could save its weights."""

    def __init__(self, progress: Progress, every: int):
        self.progress, self.every = progress, every
        self.loss = self.correct = None
        self.pending = 0
        self.first = None  # (epoch, batch) of the first unread step
        self.synced = False

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, epoch: int, batch: int) -> None:
        loss_sum = loss.detach().double() * len(y)
        correct = (logits.detach().argmax(1) == y).sum()
        if self.pending:
            self.loss, self.correct = self.loss + loss_sum, self.correct + correct
        else:
            self.loss, self.correct, self.first = loss_sum, correct, (epoch, batch)
        self.pending += 1
        self.progress.seen += len(y)
        self.synced = False
        if self.pending >= self.every:
            self.sync()

    def sync(self) -> None:
        if not self.pending:
            return
        loss_sum = self.loss.item()
        if not math.isfinite(loss_sum):
            epoch, batch = self.first
            where = f"epoch {epoch + 1}, batch {batch + 1}" + (
                f" (or one of the {self.pending - 1} after it)" if self.pending > 1 else "")
            raise TrainingDiverged(f"loss became {loss_sum} at {where}; the last good checkpoint is kept; "
                                   "try a lower --lr")
        self.progress.loss_sum += loss_sum
        self.progress.correct += int(self.correct)
        self.pending, self.synced = 0, True


def _checkpoint(model, optimizer, scheduler, stopper, progress, ctx: StepContext) -> dict:
    return {
        **({"pruning": ctx.pruner.state_dict()} if ctx.pruner is not None else {}),
        "model": model_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "early_stopping": stopper.state_dict(),
        "progress": asdict(progress),
        "config": ctx.config.to_dict(),
        "precision": ctx.precision,
        "rng": torch.get_rng_state(),
    }


def train(config: RunConfig, root=None, resume: str | Path | None = None, overwrite: bool = False,
          data: FashionMNIST | None = None, show_progress: bool | None = None,
          on_epoch_end: Callable[[dict], bool | None] | None = None, hooks: StepHooks | None = None,
          changes: dict | None = None, clock: Callable[[], float] = time.perf_counter) -> Run:
    """Train `config` into a new run directory (or continue `resume`), evaluate on the test set, return the run.

    `hooks`: optional behaviour inside each step (training/hooks.py); probes under benchmarks/probes/ use it.

    `on_epoch_end(row)` gets each epoch's history row; returning True stops training after that epoch (the
    run then finishes as stopped early). Sweeps use it to report to Optuna and prune.

    `changes`: settings given again with `resume`; `runs.resume_config` says which of them a resume may change.

    `config.budget`: the run's first steps are timed on a throwaway model (`_probe`) before its folder is made, and
    the steps that fit are saved as its `epochs`, with the plan in budget.json (training/budget.py). `clock` times
    training, the probe and the budget's deadline.

    The process holds the run's lock while it trains (runs.RunLock), so a second process that would train, resume
    or overwrite the run is refused. The settings, the data and the model are checked before a new run's folder is
    made or an old one replaced (runs.NewRun), so a failure there leaves the runs folder as it was.
    """
    with contextlib.ExitStack() as held:  # this process's lock on the run, released however training ends
        held.callback(torch.set_num_threads, torch.get_num_threads())  # `threads` holds for this run only
        writer = is_writer()  # rank 0 under torchrun, known before the process group exists
        if resume:
            run = open_run(resume, root)
            if writer:
                held.enter_context(run.lock())
            if run.finished:
                raise RunError(f"run {run.path} is already finished; nothing to resume")
            config = resume_config(run, changes)
        else:
            claim = held.enter_context(NewRun(config, root, overwrite)) if writer else None
        if config.budget and distributed.launched():
            raise ConfigError("--budget trains in one process (its deadline is that process's clock); under "
                              "torchrun give --epochs")
        # DDP: under torchrun join the process group; rank 0 creates the run, the others learn its path
        distributed.setup(resolve_device(config.device))
        # what fails before training fails here, before a run folder is made or replaced
        if data is None:
            data = load_fashion_mnist(config.data_dir)
        with torch.random.fork_rng(devices=[]):  # the check draws no numbers from the run's random stream
            create_model(config.model)
        if config.init_from and not Path(config.init_from).is_file():
            open_run(config.init_from)
        if config.distill_from:
            open_run(config.distill_from).metrics()
        plan = None
        if config.budget and resume:
            plan = Fit.from_dict(run.budget_plan(), run.budget_path)
        elif config.budget:
            plan = _fit_to_budget(config, data, clock)
            config = config.replace(epochs=plan.epochs)
        if resume:
            if writer:
                record_resumed_settings(run, config)
        else:
            files = {"budget.json": plan.to_dict()} if plan is not None else {}
            run = claim.create(config, files) if writer else None
            run = Run(Path(distributed.from_main(str(run.path) if run else None)))
        try:
            return _train(config, run, bool(resume), data, show_progress, on_epoch_end, hooks=hooks, plan=plan,
                          clock=clock)
        except TrainingDiverged as err:
            run.set_status("failed", message=str(err))
            raise
        except Interrupted:
            raise
        except BaseException as err:
            run.set_status("failed", message=f"{type(err).__name__}: {err}")
            raise


def _fit_to_budget(config: RunConfig, data: FashionMNIST, clock: Callable[[], float]) -> Fit:
    """The plan of a budget run: its first steps timed here, and the number of steps that fill the budget."""
    probe = _probe(config, data, clock)
    steps_per_epoch = num_batches(config.train_size, config.batch_size, drop_last=True)
    # re-estimates after every epoch where there is a validation split, else once at the end; pruned epochs are
    # shorter (by at most the share `prune` skips), so more of them
    every = None if not config.val_size else max(1, math.floor(steps_per_epoch * (1 - config.prune)))
    return fit(config.budget, config.budget_seconds, probe, steps_per_epoch, every, config.model)


def _probe(config: RunConfig, data: FashionMNIST, clock: Callable[[], float]) -> Probe:
    """Time the run's first steps, batches and all, on a throwaway model and optimizer built as the run builds its
    own, then one batch-norm re-estimate.

    Throwaway, and before the run is made: the learning-rate schedule and pruning are laid out over the run's
    steps, which is what the probe is for, so every step of the run comes after it, on the fitted schedule. The
    random numbers are restored after it, so the run draws exactly what it would have drawn; a budget too small
    is refused before any run folder is made or replaced."""
    begin = clock()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        split = make_splits(data, config.val_size, config.split_seed, config.train_limit or None, 1).train.to(device)
        model = prepare_model(create_model(config.model), device)
        precision = choose_precision(config.precision, model, device, config.batch_size, config.winograd)
        prepare_convolutions(model, precision, device, config.winograd)
        n = PROBE_WARMUP + PROBE_STEPS
        steps_per_epoch = num_batches(len(split), config.batch_size, drop_last=True)
        epochs = math.ceil(n / steps_per_epoch)
        optimizer = create_optimizer(model.parameters(), config)
        # the first steps of the run's own one-cycle warm-up (a schedule too short for the probe is lengthened)
        scheduler = create_scheduler(optimizer, config.replace(epochs=max(config.epochs, epochs)), steps_per_epoch)
        pruner = Pruner(len(split), config.prune, config.seed, device, config.batch_size) if config.prune else None
        hooks = (Teacher(config.distill_from, config.distill_weight, config.distill_temperature, device)
                 if config.distill_from else StepHooks())
        ctx = StepContext(config, precision, device, hooks, _StopFlag(), pruner, clock=clock)
        order = torch.cat([epoch_order(len(split), config.seed, epoch) for epoch in range(epochs)])
        timer, progress = StepTimer(clock, PROBE_WARMUP), Progress()
        batches = timer.timed(epoch_batches(split, order, progress, config.batch_size, n))
        try:
            train_one_epoch(model, _criterion(config), optimizer, scheduler, batches, progress, ctx)
        except TrainingDiverged:
            raise TrainingDiverged("the loss became non-finite in the first steps, timed for --budget before the "
                                   "run is made; try a lower --lr") from None
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_seconds = timer.step_seconds(clock())
        recalibration = _recalibration_seconds(model, split, config, precision, device, clock)
    return Probe(step_seconds, recalibration, clock() - begin, precision)


def _recalibration_seconds(model, split: Split, config: RunConfig, precision: str, device: torch.device,
                           clock: Callable[[], float]) -> float:
    """One batch-norm re-estimate's seconds, from a few of its batches (0 where the run makes none)."""
    batches = min(config.bn_recalibration, num_batches(len(split), config.batch_size, drop_last=False))
    timed = min(batches, PROBE_STEPS)
    if not timed or not has_batchnorm(model):
        return 0.0
    recalibrate_batchnorm(model, split, 1, config.batch_size, precision, device)  # builds the kernels
    start = clock()
    recalibrate_batchnorm(model, split, timed, config.batch_size, precision, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (clock() - start) / timed * batches


def _criterion(config: RunConfig) -> nn.Module:
    """Cross-entropy; per image where pruning weighs each image's loss."""
    return nn.CrossEntropyLoss(label_smoothing=config.label_smoothing, reduction="none" if config.prune else "mean")


def _train(config: RunConfig, run: Run, resume: bool, data, show_progress, on_epoch_end=None,
           hooks: StepHooks | None = None, plan: Fit | None = None, clock: Callable[[], float] = time.perf_counter
           ) -> Run:
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.setup(resolve_device(config.device))
    distributed.check_batch_size(config.batch_size)
    torch.manual_seed(config.seed)
    splits = make_splits(data or load_fashion_mnist(config.data_dir), config.val_size, config.split_seed,
                         config.train_limit or None, config.test_limit or None)
    train_split = splits.train.to(device)
    val_split = splits.val.to(device) if splits.val is not None else None

    model = create_model(config.model)
    if config.init_from and not resume:
        _load_into(model, load_weights(config.init_from), config.init_from)
    model = prepare_model(model, device)
    steps_per_epoch = num_batches(len(train_split), config.batch_size, drop_last=True)
    steps = total_steps(config, steps_per_epoch)
    # the last epoch partial when `epochs` has a fraction; pruned epochs are shorter, so more of them
    n_epochs = None if config.prune else math.ceil(steps / steps_per_epoch)
    pruner = Pruner(len(train_split), config.prune, config.seed, device, config.batch_size) if config.prune else None
    optimizer = create_optimizer(model.parameters(), config)
    scheduler = create_scheduler(optimizer, config, steps_per_epoch)
    stopper = EarlyStopping(config.patience, "min" if config.monitor == "val_loss" else "max", config.min_delta)
    progress = Progress()
    if config.distill_from:  # the teacher's loss first, so that a probe's criterion can wrap it
        teacher = Teacher(config.distill_from, config.distill_weight, config.distill_temperature, device)
        hooks = teacher if hooks is None else Chain(teacher, hooks)
    hooks = hooks or StepHooks()
    criterion = _criterion(config)

    if resume and run.last_checkpoint.is_file():
        ckpt = load_checkpoint(run.last_checkpoint, map_location=device)
        _load_into(model, ckpt["model"], run.last_checkpoint)
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        stopper.load_state_dict(ckpt["early_stopping"])
        progress = Progress(**ckpt["progress"])
        if pruner is not None:
            pruner.load_state_dict(ckpt["pruning"])
        torch.set_rng_state(ckpt["rng"].cpu())
        precision = ckpt["precision"]
        _log(f"resuming {run.name} at epoch {progress.epoch + 1}, batch {progress.step + 1}")
    else:
        precision = plan.precision if plan is not None else choose_precision(
            config.precision, model, device, config.batch_size, config.winograd)
        if config.recipe in TARGETS and device.type == "cpu" and not bf16_supported(device):
            # a recipe's time differs by CPU class: say which target applies here, and why
            target = TARGETS[config.recipe]
            _log(f"this CPU has no bf16 matrix products (AVX512-BF16 or AMX), so `{config.recipe}` trains in fp32: "
                 f"its time target here is {target.seconds_fp32} s ({target.seconds} s with bf16 products; "
                 "docs/RESULTS.md has the figures per CPU)")
    prepare_convolutions(model, precision, device, config.winograd)
    run.set_status("running", precision=precision)
    precision = distributed.from_main(precision)
    train_model = distributed.wrap_model(model, device)  # DDP's wrapper for the steps, same weights as `model`
    tensorboard = None
    if config.tensorboard and distributed.is_main():
        from .tensorboard_log import TensorBoardLog  # tensorboard's import is slow; only runs that ask pay it
        tensorboard = TensorBoardLog(run.path, config)

    show = (sys.stderr.isatty() if show_progress is None else show_progress) and distributed.is_main()
    steps_done = lambda: pruner.steps_done if pruner else progress.epoch * steps_per_epoch  # noqa: E731
    deadline = Deadline(plan, clock) if plan is not None else None
    if plan is not None:
        _log(f"budget {plan.budget}: a step takes {plan.step_seconds:.3g} s here; {plan.steps} steps "
             f"({plan.epochs:.3g} epochs), predicted {plan.predicted_seconds:.1f} s of training")
    hooks.start(TrainingStart(model, optimizer, pruner, steps, steps_per_epoch, device))
    with _StopFlag() as stop:
        ctx = StepContext(config, precision, device, hooks, stop, pruner, clock=clock)
        while steps_done() < steps and not stopper.should_stop and not (deadline and deadline.reached):
            ctx.first_step = steps_done()
            order = epoch_order(len(train_split), config.seed, progress.epoch)
            if pruner is not None:
                order = pruner.start_epoch(order, progress.epoch, prune=pruner.prunes(ctx.first_step, steps))
            epoch_steps = min(len(order) // config.batch_size, steps - ctx.first_step)
            ctx.bar = tqdm(total=epoch_steps, initial=progress.step, desc=f"{run.name} epoch {progress.epoch + 1}"
                           + (f"/{n_epochs}" if n_epochs else ""), leave=False, disable=not show, file=sys.stderr)
            start, first = clock(), progress.step
            try:
                batches = epoch_batches(train_split, order, progress, config.batch_size, epoch_steps)
                if deadline is not None:
                    batches = deadline.limit(batches, progress.train_seconds, start)
                train_one_epoch(train_model, criterion, optimizer, scheduler, batches, progress, ctx)
            finally:
                ctx.bar.close()
                progress.train_seconds += clock() - start
                progress.steps += progress.step - first
            if stop.requested:
                save_checkpoint(_checkpoint(model, optimizer, scheduler, stopper, progress, ctx), run.last_checkpoint)
                run.set_status("interrupted", epoch=progress.epoch, step=progress.step)
                raise Interrupted(f"interrupted; progress saved. Continue with: fashionlab train --resume {run.path}")
            if deadline is not None and deadline.reached and progress.step == first:
                break  # the budget ran out before this epoch's first step: there is no epoch to end
            # DDP: epoch totals over all ranks' shards; rank 0's BatchNorm statistics everywhere
            progress.loss_sum, progress.correct, progress.seen = distributed.sum_counts(
                progress.loss_sum, progress.correct, progress.seen)
            distributed.sync_buffers(model)
            if pruner is not None:
                pruner.end_epoch(progress.step)
            _end_epoch(model, optimizer, scheduler, stopper, progress, ctx, run, train_split, val_split)
            row = progress.history[-1]
            if tensorboard is not None:
                tensorboard.log_epoch(row)
            if on_epoch_end is not None and on_epoch_end(dict(row)):
                break

    if distributed.replicas_differ(model) > 0:  # DDP keeps replicas identical; say so if not
        _log("warning: the processes' weights differ at the end of training")
    if not distributed.is_main():
        return run
    test_split = splits.test.to(device)
    # a deadline may end an epoch part-way; otherwise only the last epoch can be partial (2.5 for a half one)
    taken = progress.steps if deadline is not None else min(steps_done(), steps)
    _finish(model, config, precision, progress, stopper, run, test_split, device, taken / steps_per_epoch,
            stopped_early=taken < steps, calibrate_on=train_split if val_split is None else None, clock=clock,
            deadline=deadline)
    if tensorboard is not None:
        tensorboard.log_result(run, test_split)
    return run


def _end_epoch(model, optimizer, scheduler, stopper, progress, ctx: StepContext, run, train_split, val_split):
    config = ctx.config
    row = {"epoch": progress.epoch + 1,
           "train_loss": progress.loss_sum / max(1, progress.seen),
           "train_accuracy": progress.correct / max(1, progress.seen)}
    if ctx.pruner is not None:  # how many images the epoch kept
        row["images"] = progress.seen
    if val_split is not None:
        _recalibrate(model, train_split, config, ctx.precision, ctx.device, progress, ctx.clock)
        val_loss, val_acc = loss_and_accuracy(model, val_split, config.eval_batch_size, ctx.precision, ctx.device,
                                              config.tta)
        row.update(val_loss=val_loss, val_accuracy=val_acc)
        if stopper.update(val_loss if config.monitor == "val_loss" else val_acc, progress.epoch + 1):
            save_checkpoint({"model": model_state(model), "epoch": progress.epoch + 1}, run.best_checkpoint)
    row.update(lr=optimizer.param_groups[0]["lr"], seconds=round(progress.train_seconds, 3))
    progress.history.append(row)
    progress.epoch, progress.step, progress.loss_sum, progress.correct, progress.seen = progress.epoch + 1, 0, 0.0, 0, 0
    save_checkpoint(_checkpoint(model, optimizer, scheduler, stopper, progress, ctx), run.last_checkpoint)
    run.write_history(progress.history)
    _log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def _recalibrate(model, train_split: Split, config, precision, device, progress: Progress,
                 clock: Callable[[], float]) -> None:
    start = clock()
    recalibrate_batchnorm(model, train_split, config.bn_recalibration, config.batch_size, precision, device)
    progress.train_seconds += clock() - start  # part of making the model, so part of its cost


def _finish(model, config, precision, progress, stopper, run, test: Split, device, epochs_run: float,
            stopped_early: bool, calibrate_on: Split | None, clock: Callable[[], float],
            deadline: Deadline | None) -> Run:
    """Score the trained model on the test set. `calibrate_on`: the training split, where no validation split
    had batch-norm statistics re-estimated after each epoch (`_end_epoch`); the last weights get them here,
    once: epoch-end re-estimates nobody evaluates would cost 3-7% of a recipe's time."""
    best_epoch = stopper.best_epoch or progress.epoch
    if calibrate_on is not None:
        _recalibrate(model, calibrate_on, config, precision, device, progress, clock)
    if config.patience and run.best_checkpoint.is_file():
        model.load_state_dict(load_checkpoint(run.best_checkpoint, map_location=device)["model"])
    save_checkpoint({"model": model_state(model), "model_name": config.model, "config": config.to_dict(),
                     "precision": precision, "classes": list(CLASSES), "mean": MEAN, "std": STD,
                     "epoch": best_epoch if config.patience else progress.epoch}, run.model_path)
    start = time.perf_counter()
    probs = predict_proba(model, test, config.eval_batch_size, precision, device, config.tta)
    labels = test.labels.cpu().numpy()
    metrics = classification_metrics(labels, probs)
    metrics.update(
        model=config.model, epochs=round(whole_if_integral(epochs_run), 3),
        best_epoch=best_epoch,
        stopped_early=stopped_early, train_seconds=round(progress.train_seconds, 3),
        eval_seconds=round(time.perf_counter() - start, 3), precision=precision, device=str(device),
        threads=torch.get_num_threads(), parameters=count_parameters(model), torch=torch.__version__,
        processes=distributed.world_size(),  # DDP
        fashionlab=__version__,
    )
    if deadline is not None:
        metrics["budget"] = deadline.report(progress.train_seconds, progress.steps)
    np.savez_compressed(run.predictions_path, probs=probs.astype(np.float16), labels=labels.astype(np.uint8))
    run.write_json(run.metrics_path, metrics)
    run.set_status("finished")  # last: only now is the run finished
    # the image count shows when a run scored a subset (`test_limit`; validation trials score 1 test image)
    _log(f"{run.name}: test accuracy {metrics['accuracy']:.4f} on {metrics['n']:,} images, "
         f"mean F1 {metrics['f1_mean']:.4f}, {metrics['train_seconds']:.1f} s training ({precision})")
    if deadline is not None:
        _log(deadline.summary(metrics["budget"], metrics["accuracy"]))
    return run
