"""The study's MLPs trained side by side, each a `fashionlab train` process: the same run as in-process training,
a run that starts from another waits for it, a failure names its log, and Ctrl-C leaves every run resumable."""

import pytest
import torch

from fashionlab.artifacts import load_weights
from fashionlab.errors import RunError
from fashionlab.runs import open_run
from fashionlab.study.plan import Experiment, experiment_config
from fashionlab.study.runner import run_experiment
from fashionlab.study.side_by_side import Job, train_side_by_side
from fashionlab.training.loop import Interrupted

TINY = {"model": "ann", "epochs": 2, "train_limit": 400, "val_size": 200, "batch_size": 50, "test_limit": 200,
        "precision": "fp32", "threads": 1}


def job(key: str, root, **settings) -> Job:
    exp = Experiment(key, key, "table1", {**TINY, **settings})
    source = settings.get("init_from", "")
    return Job(key, key, experiment_config(exp, 0, root=root), after=source[1:] + "-s0" if source[:1] == "@" else None)


def test_side_by_side_runs_are_the_runs_trained_in_process(tmp_path, fmnist):
    done = []
    runs = train_side_by_side([job("a", tmp_path / "beside"), job("b", tmp_path / "beside", model="ann_bn"),
                               job("b_tuned", tmp_path / "beside", model="ann_bn", init_from="@b", epochs=1)],
                              tmp_path / "beside", tmp_path / "logs", 2, lambda j, run: done.append(j.name))
    assert sorted(runs) == ["a-s0", "b-s0", "b_tuned-s0"] and all(r.finished for r in runs.values())
    assert done.index("b-s0") < done.index("b_tuned-s0")  # the fine-tuned run started from the finished one
    assert (tmp_path / "logs" / "a-s0.log").read_text().count("epoch=") == 2
    alone = run_experiment(Experiment("a", "a", "table1", TINY), 0, tmp_path / "alone", fmnist, show_progress=False)
    beside, in_process = load_weights(runs["a-s0"].path), load_weights(alone.path)
    assert beside.keys() == in_process.keys()
    assert all(torch.equal(beside[k], in_process[k]) for k in beside)
    assert runs["a-s0"].metrics()["accuracy"] == alone.metrics()["accuracy"]


def test_a_failed_run_names_its_log_and_stops_the_rest(tmp_path):
    jobs = [job("bad", tmp_path, init_from=str(tmp_path / "no-such-run")), job("endless", tmp_path, epochs=10_000)]
    with pytest.raises(RunError) as err:
        train_side_by_side(jobs, tmp_path, tmp_path / "logs", 2, lambda j, run: None)
    message = str(err.value)
    assert message.startswith("bad-s0 failed (exit ") and message.endswith(f"its log: {tmp_path / 'logs'}/bad-s0.log")
    assert "\n" not in message and "no-such-run" in message
    assert all(j.process.poll() is not None for j in jobs)  # the other run was stopped, not left training
    endless = tmp_path / "endless-s0"
    assert not endless.exists() or not open_run(endless).finished


def test_ctrl_c_stops_every_run_resumably(tmp_path):
    def ctrl_c(j, run):
        raise KeyboardInterrupt  # as the first run ends, the second still training

    jobs = [job("quick", tmp_path, epochs=1), job("long", tmp_path, epochs=300)]
    with pytest.raises(Interrupted, match="Run the same command again to continue"):
        train_side_by_side(jobs, tmp_path, tmp_path / "logs", 2, ctrl_c)
    long = open_run("long-s0", tmp_path)
    assert not long.finished and long.last_checkpoint.is_file()
    again = job("long", tmp_path, epochs=300)
    again.resume = long.path
    runs = train_side_by_side([again], tmp_path, tmp_path / "logs", 2, lambda j, run: None)
    assert runs["long-s0"].finished and [r["epoch"] for r in runs["long-s0"].history()] == list(range(1, 301))
