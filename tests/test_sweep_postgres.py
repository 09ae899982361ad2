"""Two sweep workers at once against one study in a real PostgreSQL server (Debian's postgresql package)."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from test_sweep import check_trials_match_runs, space_file, sweep_cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 (run as user postgres when we are root), stopped after."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.fail("PostgreSQL is missing: 'make test' installs Debian's postgresql (apt-get install postgresql)")
    bindir = Path(initdb[-1]).parent
    as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    folder = tempfile.mkdtemp(prefix="fashionlab-pg-")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = f"{folder}/data", _free_port()

    def pg(tool, *args):
        return subprocess.run([*as_owner, str(bindir / tool), *args], check=True, capture_output=True, text=True,
                              timeout=120)

    try:
        pg("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        pg("pg_ctl", "-D", data, "-l", f"{folder}/server.log", "-w", "-o",
           f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}", "start")
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "fashionlab")
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/fashionlab"
        finally:
            pg("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_postgres_study(tmp_path, postgres_url, fmnist):
    space = space_file(tmp_path, limit=2000, epochs_low=1, epochs_high=2)
    target = 8
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(sweep_cmd(tmp_path, "shared", target, space, "--storage", postgres_url),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(2)]
    outputs = [w.communicate(timeout=400) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(deepcopy=False)
    # each worker stops once the study is full, so the two may together overshoot by one trial
    assert target <= len(trials) <= target + 1
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert len({t.user_attrs["run"] for t in trials}) == len(trials)  # no trial recorded twice
    check_trials_match_runs(study, tmp_path / "runs" / "sweeps" / "shared")
    # a worker started after the study is full runs nothing and says so
    late = subprocess.run(sweep_cmd(tmp_path, "shared", target, space, "--storage", postgres_url),
                          capture_output=True, text=True, timeout=120, env=env)
    assert late.returncode == 0 and "already has" in late.stderr, late.stderr[-2000:]
    assert len(optuna.load_study(study_name="shared", storage=postgres_url).trials) == len(trials)
