"""The paper's findings, each checked against the study's runs by one small function.

Every function takes the study's runs by experiment key (each a list of runs, one per seed; a run has `history()`
and `metrics()`) and returns a `Finding`: the claim, the evidence measured, and a verdict — reproduced, not
reproduced (by how much, and whether beyond the spread over seeds), or not testable at this budget (why, and the
command that tests it). The rules are here, next to the claims, so a reader can see what "reproduced" means.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable at this budget"

# a validation loss that ends this share above its own minimum has risen: overfitting
RISE = 0.05
# a validation loss within this share of its minimum at the end has not risen: no overfitting
FLAT = 0.02
# the epochs over which "early" overfitting is compared (the paper's Fig 2b)
EARLY_EPOCHS = 10
PAPER_COMMAND = "fashionlab study --preset paper"


@dataclass
class Finding:
    claim: str        # the letter, a-h
    statement: str    # what the paper says
    source: str       # where the paper says it
    verdict: str
    evidence: str     # the numbers measured
    note: str = ""    # why the verdict, by how much; where not testable, what would test it


def _val_rows(run) -> list[dict]:
    return [r for r in run.history() if isinstance(r.get("val_loss"), float)]


def _mean(values) -> float:
    return statistics.fmean(values)


def _spread(values) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _fmt(values, fmt="{:.4f}") -> str:
    text = fmt.format(_mean(values))
    sd = _spread(values)
    return f"{text} ± {fmt.format(sd)}" if sd is not None else text


def beyond_spread(a: list[float], b: list[float]) -> str:
    """Whether mean(a) - mean(b) exceeds the seeds' spread (the sum of both standard deviations)."""
    sa, sb = _spread(a), _spread(b)
    if sa is None or sb is None:
        return "one seed, so the spread over seeds is not measured"
    return ("beyond the spread over seeds" if abs(_mean(a) - _mean(b)) > sa + sb
            else "within the spread over seeds")


def rise(run) -> float:
    """How far the validation loss ends above its own minimum, as a share of that minimum."""
    losses = [r["val_loss"] for r in _val_rows(run)]
    return losses[-1] / min(losses) - 1


def early_gap(run, epochs: int = EARLY_EPOCHS) -> float:
    """Mean of (validation loss - train loss) over the first `epochs` epochs: how early overfitting shows."""
    rows = _val_rows(run)[:epochs]
    return _mean([r["val_loss"] - r["train_loss"] for r in rows])


def _epochs(runs) -> int:
    return min(len(_val_rows(r)) for r in runs)


def _missing(runs: dict, *keys) -> list[str]:
    return [k for k in keys if not runs.get(k) or any(not _val_rows(r) for r in runs[k])]


def _not_testable(claim, statement, source, why, command=PAPER_COMMAND) -> Finding:
    return Finding(claim, statement, source, NOT_TESTABLE, "-", f"{why}; tested by: {command}")


def overfits(runs: dict) -> Finding:
    """a. The plain ANN's validation loss rises above its train loss and above its own minimum within 30 epochs."""
    claim = ("a", "The plain ANN overfits within 30 epochs: its validation loss rises above its training loss",
             "Fig 2a")
    if _missing(runs, "ann"):
        return _not_testable(*claim, "the study has no plain ANN run with a validation split")
    ann = runs["ann"]
    rises = [rise(r) for r in ann]
    above = [_val_rows(r)[-1]["val_loss"] - _val_rows(r)[-1]["train_loss"] for r in ann]
    evidence = (f"after {_epochs(ann)} epochs: validation loss {_fmt(rises, '{:+.1%}')} from its minimum, "
                f"{_fmt(above, '{:+.3f}')} above the training loss")
    if all(r > RISE for r in rises) and all(a > 0 for a in above):
        return Finding(*claim, REPRODUCED, evidence, f"rule: the validation loss ends more than {RISE:.0%} above its "
                       "minimum and above the training loss, in every seed")
    if _epochs(ann) < 30:
        return _not_testable(*claim, f"the ANN trained {_epochs(ann)} epochs, fewer than the paper's 30, and had not "
                             "overfit yet")
    return Finding(*claim, NOT_REPRODUCED, evidence, f"the validation loss did not rise {RISE:.0%} above its minimum "
                   "while staying above the training loss in every seed")


def regularisers_help(runs: dict) -> Finding:
    """b. Dropout alone and batch norm alone each shrink the ANN's early validation-train loss gap."""
    claim = ("b", "Dropout and batch normalisation each reduce the ANN's overfitting in the early epochs", "Fig 2b")
    missing = _missing(runs, "ann", "ann_dropout", "ann_batchnorm")
    if missing:
        return _not_testable(*claim, f"the study has no {', '.join(missing)} run")
    base = [early_gap(r) for r in runs["ann"]]
    parts, holds = [f"ANN {_fmt(base, '{:+.3f}')}"], True
    notes = []
    for key, name in (("ann_dropout", "dropout"), ("ann_batchnorm", "batch norm")):
        gaps = [early_gap(r) for r in runs[key]]
        parts.append(f"with {name} {_fmt(gaps, '{:+.3f}')}")
        if _mean(gaps) >= _mean(base):
            holds = False
            notes.append(f"{name} did not shrink the gap ({beyond_spread(gaps, base)})")
        else:
            notes.append(f"{name} shrank it by {_mean(base) - _mean(gaps):.3f} ({beyond_spread(gaps, base)})")
    evidence = (f"mean validation minus training loss over the first {min(EARLY_EPOCHS, _epochs(runs['ann']))} "
                "epochs: " + ", ".join(parts))
    return Finding(*claim, REPRODUCED if holds else NOT_REPRODUCED, evidence, "; ".join(notes))


OPTIMIZER_KEYS = {"ann": "Adam", "ann_rmsprop": "RMSprop", "ann_sgd": "SGD", "ann_adagrad": "Adagrad"}


def _epochs_to(run, accuracy: float) -> int | None:
    return next((r["epoch"] for r in _val_rows(run) if r["val_accuracy"] >= accuracy), None)


def adam_best(runs: dict) -> Finding:
    """c. Adam ends with the best validation accuracy; an optimizer that ends better counts as 'slower' when it
    needs more epochs than Adam to reach the accuracy Adam has after 3 epochs."""
    claim = ("c", "Adam performs best; RMSprop, SGD and Adagrad do worse or converge more slowly", "Fig 3")
    missing = _missing(runs, *OPTIMIZER_KEYS)
    if missing:
        return _not_testable(*claim, f"the study has no {', '.join(missing)} run")
    final = {k: [_val_rows(r)[-1]["val_accuracy"] for r in runs[k]] for k in OPTIMIZER_KEYS}
    evidence = "final validation accuracy: " + ", ".join(f"{OPTIMIZER_KEYS[k]} {_fmt(v, '{:.2%}')}"
                                                         for k, v in final.items())
    adam_mark = _mean([_val_rows(r)[min(2, len(_val_rows(r)) - 1)]["val_accuracy"] for r in runs["ann"]])
    adam_epochs = max(_epochs_to(r, adam_mark) or 0 for r in runs["ann"])
    fails, notes = [], []
    for key, name in list(OPTIMIZER_KEYS.items())[1:]:
        if _mean(final[key]) < _mean(final["ann"]):
            notes.append(f"{name} worse by {_mean(final['ann']) - _mean(final[key]):.2%}")
            continue
        reach = [_epochs_to(r, adam_mark) for r in runs[key]]
        if all(e is None or e > adam_epochs for e in reach):
            notes.append(f"{name} ends {_mean(final[key]) - _mean(final['ann']):.2%} better but is slower "
                         f"(reaches Adam's {adam_mark:.2%} of epoch {adam_epochs} later)")
        else:
            fails.append(name)
            notes.append(f"{name} ends {_mean(final[key]) - _mean(final['ann']):.2%} better than Adam "
                         f"({beyond_spread(final[key], final['ann'])}) and is not slower")
    return Finding(*claim, NOT_REPRODUCED if fails else REPRODUCED, evidence, "; ".join(notes))


def augmentation_tradeoff(runs: dict) -> Finding:
    """d. With augmentation: lower test accuracy than without, and a validation loss that does not rise."""
    claim = ("d", "Data augmentation lowers test accuracy but removes overfitting, even over 60 epochs",
             "Fig 4b; Table 1 rows 3 and 5")
    pairs = [(a, b) for a, b in (("ann_bn", "ann_bn_aug"), ("cnn", "cnn_aug")) if not _missing(runs, a, b)]
    if not pairs:
        return _not_testable(*claim, "the study has no pair of runs without and with augmentation")
    evidence, notes, holds = [], [], True
    for plain, aug in pairs:
        acc_p = [r.metrics()["accuracy"] for r in runs[plain]]
        acc_a = [r.metrics()["accuracy"] for r in runs[aug]]
        rise_p, rise_a = [rise(r) for r in runs[plain]], [rise(r) for r in runs[aug]]
        evidence.append(f"{plain} vs {aug}: test accuracy {_fmt(acc_p, '{:.2%}')} vs {_fmt(acc_a, '{:.2%}')}, "
                        f"validation loss at the end {_fmt(rise_p, '{:+.1%}')} vs {_fmt(rise_a, '{:+.1%}')} from "
                        f"its minimum ({_epochs(runs[plain])} vs {_epochs(runs[aug])} epochs)")
        lower = _mean(acc_a) < _mean(acc_p)
        flat = all(r <= FLAT for r in rise_a)
        if not lower:
            notes.append(f"{aug} scored {_mean(acc_a) - _mean(acc_p):+.2%} against {plain} "
                         f"({beyond_spread(acc_a, acc_p)}): augmentation did not lower accuracy")
        if not flat:
            notes.append(f"{aug}'s validation loss rose {_mean(rise_a):.1%} above its minimum "
                         f"(the rule allows {FLAT:.0%})")
        holds = holds and lower and flat
    if holds:
        notes.append(f"rule: lower test accuracy, and the augmented run's validation loss ends within {FLAT:.0%} of "
                     "its minimum")
    return Finding(*claim, REPRODUCED if holds else NOT_REPRODUCED, "; ".join(evidence), "; ".join(notes))


def modified_beats_plain(runs: dict) -> Finding:
    """e. The modified ANN (batch norm and dropout) scores higher on the test set than the plain ANN."""
    claim = ("e", "The modified ANN (batch norm and dropout) beats the plain ANN", "Table 1")
    if not runs.get("ann") or not runs.get("ann_bn"):
        return _not_testable(*claim, "the study has no ANN or modified ANN run")
    plain = [r.metrics()["accuracy"] for r in runs["ann"]]
    modified = [r.metrics()["accuracy"] for r in runs["ann_bn"]]
    diff = _mean(modified) - _mean(plain)
    evidence = f"test accuracy {_fmt(modified, '{:.2%}')} vs {_fmt(plain, '{:.2%}')}"
    return Finding(*claim, REPRODUCED if diff > 0 else NOT_REPRODUCED, evidence,
                   f"{diff:+.2%} ({beyond_spread(modified, plain)})")


ANN_KEYS = ("ann", "ann_bn", "ann_bn_aug")
METRICS = (("accuracy", "accuracy"), ("precision_mean", "precision"), ("recall_mean", "recall"), ("f1_mean", "F1"))
# "All my CNNs produced more precise models with better accuracy, recall and F1-score across all prediction
# categories when compared to an ANN with equivalent configuration" (the paper's Evaluation): each CNN row against
# the ANN row trained the same way (batch norm and dropout, with or without augmentation)
EQUIVALENT_ANN = {"cnn": "ann_bn", "cnn_aug": "ann_bn_aug"}
CLASS_METRICS = ("precision", "recall", "f1")


def cnn_beats_anns(runs: dict) -> Finding:
    """f. Each CNN row beats every ANN row on accuracy and mean precision, recall and F1 (Table 1), and the ANN of
    equivalent configuration on precision, recall and F1 in every class (the Evaluation's words)."""
    claim = ("f", "The CNN beats every ANN on accuracy and mean precision, recall and F1, and the ANN of equivalent "
             "configuration on precision, recall and F1 in every class", "Table 1, Fig 6, Evaluation")
    cnns = [k for k in ("cnn", "cnn_aug") if runs.get(k)]
    anns = [k for k in ANN_KEYS if runs.get(k)]
    if not cnns or not anns:
        return _not_testable(*claim, "the study has no CNN or no ANN run")
    mean_of = lambda key, metric: _mean([r.metrics()[metric] for r in runs[key]])  # noqa: E731
    fails = []
    for cnn in cnns:
        for ann in anns:
            metrics = [name for metric, name in METRICS if mean_of(cnn, metric) <= mean_of(ann, metric)]
            if metrics:
                fails.append(f"{cnn} not above {ann} on mean {', '.join(metrics)}")
        twin = EQUIVALENT_ANN[cnn]
        if runs.get(twin):
            worse = _classes_not_above(runs[cnn], runs[twin])
            if worse:
                fails.append(f"{cnn} not above {twin} on " + (", ".join(worse) if len(worse) <= 4 else
                                                                f"{len(worse)} of the 30 class scores"))
    best_ann = max(anns, key=lambda k: mean_of(k, "accuracy"))
    evidence = ", ".join(f"{k} {mean_of(k, 'accuracy'):.2%}" for k in cnns) + \
        f" test accuracy against the best ANN ({best_ann}) {mean_of(best_ann, 'accuracy'):.2%}"
    if fails:
        return Finding(*claim, NOT_REPRODUCED, evidence, "; ".join(fails))
    pairs = ", ".join(f"{c} over {EQUIVALENT_ANN[c]}" for c in cnns if runs.get(EQUIVALENT_ANN[c]))
    return Finding(*claim, REPRODUCED, evidence, f"every CNN row above all {len(anns)} ANN rows on the four means; "
                   f"precision, recall and F1 higher in each of the 10 classes ({pairs})")


def _classes_not_above(cnn_runs, ann_runs) -> list[str]:
    """'Shirt recall'-style names of the class scores where the CNN runs' mean is not above the ANN runs'."""
    score = lambda runs, c, m: _mean([r.metrics()["per_class"][c][m] for r in runs])  # noqa: E731
    return [f"{c} {m}" for c in cnn_runs[0].metrics()["per_class"] for m in CLASS_METRICS
            if score(cnn_runs, c, m) <= score(ann_runs, c, m)]


def _seconds_per_epoch_image(run) -> float:
    m, config = run.metrics(), run.config()
    return m["train_seconds"] / (float(m["epochs"]) * config.train_size)


def cnn_costs_more(runs: dict) -> Finding:
    """g. A CNN epoch costs more training time per image than an ANN epoch (the paper: 9 against 4.5 minutes for the
    same 30 epochs; here the rows may train different epochs, so time is compared per epoch and image)."""
    claim = ("g", "The CNN costs more training time than the ANNs", "Table 1")
    cnns = [k for k in ("cnn", "cnn_aug") if runs.get(k)]
    anns = [k for k in ANN_KEYS if runs.get(k)]
    if not cnns or not anns:
        return _not_testable(*claim, "the study has no CNN or no ANN run")
    cost = {k: _mean([_seconds_per_epoch_image(r) for r in runs[k]]) for k in cnns + anns}
    evidence = "training time per epoch and 1,000 images: " + ", ".join(f"{k} {cost[k] * 1000:.3f} s" for k in cost)
    slowest_ann = max(anns, key=cost.get)
    ratio = min(cost[c] for c in cnns) / cost[slowest_ann]
    return Finding(*claim, REPRODUCED if ratio > 1 else NOT_REPRODUCED, evidence,
                   f"the cheaper CNN row costs {ratio:.1f}x the dearest ANN row ({slowest_ann})")


def early_stopping_works(runs: dict) -> Finding:
    """h1. With patience, training stops before the last epoch and keeps the weights of the best validation loss."""
    claim = ("h", "Evaluation: early stopping (patience) stops before overfitting and keeps the best weights",
             "Evaluation")
    if _missing(runs, "ann_early_stop"):
        return _not_testable(*claim, "the study has no early-stopping run")
    notes, holds = [], True
    for run in runs["ann_early_stop"]:
        m, rows = run.metrics(), _val_rows(run)
        best = min(rows, key=lambda r: r["val_loss"])["epoch"]
        stopped = m["stopped_early"]
        holds = holds and stopped and m["best_epoch"] == best
        notes.append(f"stopped after {m['epochs']} of {run.config().epochs} epochs" if stopped
                     else f"never stopped ({m['epochs']} epochs)")
        notes[-1] += f", kept epoch {m['best_epoch']} (lowest validation loss: epoch {best})"
    accuracy = [r.metrics()["accuracy"] for r in runs["ann_early_stop"]]
    evidence = f"{'; '.join(notes)}; test accuracy {_fmt(accuracy, '{:.2%}')}"
    if runs.get("ann"):
        plain = [r.metrics()["accuracy"] for r in runs["ann"]]
        evidence += f" (the plain ANN after all its epochs: {_fmt(plain, '{:.2%}')})"
    return Finding(*claim, REPRODUCED if holds else NOT_REPRODUCED, evidence,
                   "rule: it stops early and keeps the epoch of the lowest validation loss, in every seed")


ARCHITECTURES = {"resnet20": "ResNet", "googlenet": "GoogLeNet", "vit": "ViT"}


def architectures_beat_cnn(runs: dict) -> Finding:
    """h2. ResNet, GoogLeNet and ViT-style networks score higher on the test set than the paper's CNN."""
    claim = ("h", "Evaluation: ResNet / GoogLeNet / ViT-style networks would beat the CNN given the compute",
             "Evaluation")
    present = [k for k in ARCHITECTURES if runs.get(k)]
    if not present or not runs.get("cnn"):
        return _not_testable(*claim, "the study trains none of these networks")
    cnn = [r.metrics()["accuracy"] for r in runs["cnn"]]
    acc = {k: [r.metrics()["accuracy"] for r in runs[k]] for k in present}
    evidence = ", ".join(f"{ARCHITECTURES[k]} {_fmt(v, '{:.2%}')}" for k, v in acc.items()) + \
        f" against the CNN's {_fmt(cnn, '{:.2%}')}"
    losers = [ARCHITECTURES[k] for k in present if _mean(acc[k]) <= _mean(cnn)]
    epochs = ", ".join(f"{ARCHITECTURES[k]} {runs[k][0].metrics()['epochs']}" for k in present)
    note = f"epochs trained: {epochs}, CNN {runs['cnn'][0].metrics()['epochs']}"
    if losers:
        return Finding(*claim, NOT_REPRODUCED, evidence, f"{', '.join(losers)} did not beat it; {note}")
    return Finding(*claim, REPRODUCED, evidence, note)


def fine_tuning(runs: dict) -> Finding:
    """h3. A network started from trained weights (the modified ANN's, trained without augmentation) reaches the
    validation accuracy that the same network trained from scratch with augmentation ends with, in fewer epochs."""
    claim = ("h", "Evaluation: starting from trained weights (fine-tuning) saves training time", "Evaluation")
    if _missing(runs, "ann_bn_aug_tuned", "ann_bn_aug"):
        return _not_testable(*claim, "the study fine-tunes no network",
                             "fashionlab train --model ann_bn --augment ... --init-from RUN (a finished ann_bn run)")
    notes, holds = [], True
    for tuned, scratch in zip(runs["ann_bn_aug_tuned"], runs["ann_bn_aug"]):
        target = _val_rows(scratch)[-1]["val_accuracy"]
        reached = _epochs_to(tuned, target)
        holds = holds and reached is not None and reached < len(_val_rows(scratch))
        notes.append(f"from scratch {target:.2%} after {len(_val_rows(scratch))} epochs; fine-tuned "
                     + (f"reaches it at epoch {reached}" if reached else
                        f"ends at {_val_rows(tuned)[-1]['val_accuracy']:.2%} after {len(_val_rows(tuned))} epochs"))
    return Finding(*claim, REPRODUCED if holds else NOT_REPRODUCED, "; ".join(notes),
                   "rule: the fine-tuned run reaches the from-scratch run's final validation accuracy in fewer epochs")


CLAIMS = (overfits, regularisers_help, adam_best, augmentation_tradeoff, modified_beats_plain, cnn_beats_anns,
          cnn_costs_more, early_stopping_works, architectures_beat_cnn, fine_tuning)


def check_findings(runs: dict) -> list[Finding]:
    """Every claim's finding, in the paper's order."""
    return [claim(runs) for claim in CLAIMS]
