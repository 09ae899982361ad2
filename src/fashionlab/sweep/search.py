"""Hyper-parameter sweeps: an Optuna study whose trials are ordinary training runs.

Storage is Optuna's relational storage: a SQLite file under the runs folder by default (nothing to
start), or any SQLAlchemy URL such as postgresql://user@host/db, which lets workers on several
machines share one study. Running the same sweep command again loads the study and carries on until
it holds the requested number of finished trials. Trials are chosen by validation accuracy only; the
test set is touched once, by `retrain_best`, after the sweep.

Trial runs live in `<runs>/sweeps/<name>/tNNNN/` (so `fashionlab runs --runs-dir runs/sweeps/NAME`
lists them) and the default storage is `<runs>/sweeps/<name>.db`.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import warnings
from pathlib import Path

from ..config import RunConfig, load_toml
from ..errors import ConfigError, FashionlabError, TrainingDiverged
from ..runs import Run, open_run, runs_root

# The paper's choices (its Figs 2-4 and Table 1): the four MLP variants (dropout and/or batch norm), its
# four optimisers, its augmentation or none, and short-to-medium training; lr, weight decay and batch
# size around the paper's defaults. Values are what `fashionlab train` takes.
DEFAULT_SPACE = {
    "model": {"choices": ["ann", "ann_dropout", "ann_batchnorm", "ann_bn"]},
    "optimizer": {"choices": ["adam", "adamw", "rmsprop", "sgd", "adagrad"]},
    "lr": {"low": 1e-4, "high": 3e-2, "log": True},
    "weight_decay": {"choices": [0.0, 1e-5, 1e-4]},
    "batch_size": {"choices": [64, 128, 256]},
    "augment": {"choices": ["", "flip", "affine:degrees=10:scale=0.1:translate=0.1,flip"]},
    "epochs": {"low": 2, "high": 10},
}
DEFAULT_FIXED = {"monitor": "val_accuracy"}
DEFAULT_TRIALS = 20


def sweeps_dir(root=None) -> Path:
    return runs_root(root) / "sweeps"


def default_storage(name: str, root=None) -> str:
    path = sweeps_dir(root) / f"{name}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith("."):
        raise ConfigError(f"sweep name '{name}' must be a plain name (no '/', not starting with '.')")


# ---------------------------------------------------------------- the search space

def load_space(path: str | Path | None) -> dict:
    """{"space": {param: spec}, "fixed": {setting: value}, "sampler_seed": int|None, "pruner": str}.

    A TOML file has `[space.PARAM]` tables (`choices = [...]`, or `low`/`high` with optional `log`/`step`),
    an optional `[fixed]` table of RunConfig settings shared by every trial, and an optional `[sweep]`
    table with `seed` (sampler seed) and `pruner` ("median" or "none").
    """
    if path is None:
        spec = {"space": DEFAULT_SPACE, "fixed": DEFAULT_FIXED}
    else:
        spec = load_toml(path)
        unknown = sorted(set(spec) - {"space", "fixed", "sweep"})
        if unknown:
            raise ConfigError(f"{path}: unknown table(s) {', '.join(unknown)}; use [space.NAME], [fixed], [sweep]")
        if not spec.get("space"):
            raise ConfigError(f"{path} defines no [space.NAME] table; nothing to search")
    space, fixed = dict(spec["space"]), {**DEFAULT_FIXED, **spec.get("fixed", {})}
    settings = spec.get("sweep", {})
    known = set(RunConfig.__dataclass_fields__) - {"name"}
    for param, dist in space.items():
        if param not in known:
            raise ConfigError(f"search space parameter '{param}' is not a run setting; valid: "
                              f"{', '.join(sorted(known))}")
        if not isinstance(dist, dict) or not ("choices" in dist or {"low", "high"} <= dist.keys()):
            raise ConfigError(f"search space parameter '{param}' needs choices = [...] or low and high")
    pruner = settings.get("pruner", "median")
    if pruner not in ("median", "none"):
        raise ConfigError(f"unknown pruner '{pruner}'; choose median or none")
    RunConfig.from_dict({**fixed, **{p: _example(d) for p, d in space.items()}})  # reject bad fixed settings now
    return {"space": space, "fixed": fixed, "sampler_seed": settings.get("seed"), "pruner": pruner}


def _example(dist: dict):
    return dist["choices"][0] if "choices" in dist else dist["low"]


def suggest(trial, space: dict) -> dict:
    """One value per parameter from the trial (categorical, int or float, log-scaled where asked)."""
    params = {}
    for name, dist in space.items():
        if "choices" in dist:
            params[name] = trial.suggest_categorical(name, list(dist["choices"]))
        elif all(isinstance(dist[k], int) for k in ("low", "high")) and not dist.get("log"):
            params[name] = trial.suggest_int(name, dist["low"], dist["high"], step=dist.get("step", 1))
        else:
            params[name] = trial.suggest_float(name, float(dist["low"]), float(dist["high"]),
                                               log=bool(dist.get("log")), step=dist.get("step"))
    return params


# ---------------------------------------------------------------- the study

def open_study(name: str, storage: str | None = None, root=None, sampler_seed=None, pruner: str = "median",
               create: bool = True):
    """Create or load the study; several workers may call this at once against one database."""
    import optuna
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    _check_name(name)
    url = storage or default_storage(name, root)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=5)
    pruner_obj = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if pruner == "median"
                  else optuna.pruners.NopPruner())
    for attempt in range(5):
        try:
            storage = _storage(url)
            if not create:
                return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner_obj)
            return optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler,
                                       pruner=pruner_obj, load_if_exists=True)
        except KeyError:
            raise FashionlabError(f"no sweep '{name}' in {_hide_password(url)}; run 'fashionlab sweep --name {name}' "
                                  "(with the same --storage) first") from None
        except (ArgumentError, ValueError, ImportError) as err:  # a malformed URL, unknown dialect, missing driver
            raise ConfigError(f"cannot use storage '{_hide_password(url)}': {_first_line(err)}") from None
        except SQLAlchemyError as err:
            # two workers creating the tables or the study at the same moment: the loser retries and loads it
            if attempt == 4:
                raise FashionlabError(f"cannot open sweep storage {_hide_password(url)}: {_first_line(err)}") from None
            time.sleep(0.5 + attempt)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show it as given (it holds no parsable password)
        return url


def _storage(url: str):
    """Relational storage with heartbeats: a trial whose worker died (killed, machine lost) is marked failed
    after the grace period and re-queued once, so no trial is silently lost."""
    import optuna
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # heartbeats are stable in use, "experimental" in name
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=30, grace_period=120,
                                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(1))


def objective_value(run: Run) -> float:
    """Validation accuracy of the weights the run kept (the best epoch with early stopping, else the last)."""
    history = run.history()
    config = run.config()
    if config.patience:
        epoch = run.metrics()["best_epoch"]
        return next(row["val_accuracy"] for row in history if row["epoch"] == epoch)
    return history[-1]["val_accuracy"]


def make_objective(sweep: str, spec: dict, root, data, show_progress):
    import optuna

    from ..training.loop import Interrupted, train

    trial_root = sweeps_dir(root) / sweep

    def objective(trial) -> float:
        params = suggest(trial, spec["space"])
        config = RunConfig.from_dict({**spec["fixed"], **params, "name": f"t{trial.number:04d}"})
        if not config.val_size:
            raise ConfigError("a sweep needs a validation split (val_size > 0): trials are chosen on it")
        trial.set_user_attr("run", str((trial_root / config.name).resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

        pruned = []

        def report(row: dict) -> bool:  # train's on_epoch_end: True stops the run after this epoch
            trial.report(row["val_accuracy"], row["epoch"])
            if trial.should_prune():
                pruned.append(row["epoch"])
            return bool(pruned)

        try:
            run = train(config, root=trial_root, data=data, show_progress=show_progress, on_epoch_end=report,
                        overwrite=True)
        except Interrupted:
            # Ctrl-C: this trial is marked failed; queue its parameters so the resumed sweep runs it first
            trial.study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            trial.set_user_attr("interrupted", True)
            raise Interrupted(f"sweep {sweep} interrupted during trial {trial.number}; run the same command again to "
                              "resume (the interrupted trial's settings run first)") from None
        trial.set_user_attr("epochs_run", len(run.history()))
        trial.set_user_attr("train_seconds", run.metrics()["train_seconds"])
        if pruned:
            raise optuna.TrialPruned(f"pruned after epoch {pruned[0]}")
        return objective_value(run)

    return objective


def run_sweep(name: str, trials: int = DEFAULT_TRIALS, storage: str | None = None, space: str | Path | None = None,
              root=None, data=None, show_progress: bool | None = None, timeout: float | None = None):
    """Run trials until the study holds `trials` finished (complete or pruned) ones; returns the study.

    Several workers (processes, machines) may run this at once against one storage; each stops once the
    study is full, so the total can overshoot by at most one trial per extra worker.
    """
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from ..data import load_fashion_mnist

    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    spec = load_space(space)
    study = open_study(name, storage, root, spec["sampler_seed"], spec["pruner"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done >= trials:
        _say(f"sweep {name} already has {done} finished trials (asked for {trials}); raise --trials to add more")
        return study
    data = data or load_fashion_mnist(spec["fixed"].get("data_dir"))
    _say(f"sweep {name}: {done} finished trials so far, running up to {trials}")
    study.optimize(make_objective(name, spec, root, data, show_progress), timeout=timeout,
                   callbacks=[MaxTrialsCallback(trials, states=finished), _progress], catch=(TrainingDiverged,),
                   gc_after_trial=False)
    return study


def _progress(study, trial) -> None:
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    best = f"{study.best_value:.4f}" if any(t.value is not None for t in study.get_trials(deepcopy=False)) else "-"
    _say(f"trial {trial.number}: {trial.state.name.lower()} val_accuracy={value} (best {best}) {trial.params}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- after the sweep

def best_trials(study, top: int = 10) -> list:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(complete, key=lambda t: t.value, reverse=True)[:top]


def retrain_best(study, root=None, data=None, show_progress=None, **overrides) -> Run:
    """Train the best trial's settings on all 60,000 training images (no validation split) and test it.

    This is the one place a sweep touches the test set, after every choice has been made.
    """
    from ..training.loop import train

    ranked = best_trials(study, 1)
    if not ranked:
        raise FashionlabError(f"sweep {study.study_name} has no completed trial yet; nothing to re-train")
    best = ranked[0]
    config = open_run(best.user_attrs["run"]).config()
    config = config.replace(**{"name": f"{study.study_name}-best", "val_size": 0, "train_limit": 0,
                               "test_limit": 0, "patience": 0, **overrides})
    _say(f"re-training trial {best.number} (val_accuracy {best.value:.4f}) on all training images as {config.name}")
    return train(config, root=root, data=data, show_progress=show_progress, overwrite=True)
