"""A study killed part-way and run again, and the report it writes: every figure and table present,
images load in a browser; `fashionlab report` for chosen runs; extra sections can be added."""

import base64
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from fashionlab.cli import main
from fashionlab.runs import open_run


def _study(out, log, **kw):
    cmd = [sys.executable, "-m", "fashionlab", "study", "--preset", "test", "--out", str(out), "--no-progress"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            **kw)


@pytest.fixture(scope="module")
def killed_study(tmp_path_factory):
    """The tiny study, SIGKILLed once its first run has finished, then run again to the end."""
    out = tmp_path_factory.mktemp("study")
    first_status = out / "runs" / "ann-s0" / "status.json"
    with open(out / "first.log", "w") as log:
        proc = _study(out, log)
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            if first_status.is_file() and '"finished"' in first_status.read_text():
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the study ended before it could be killed"
    finished_before = {p.parent.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*/metrics.json")}
    with open(out / "second.log", "w") as log:
        assert _study(out, log).wait(timeout=300) == 0, (out / "second.log").read_text()[-3000:]
    return out, finished_before, (out / "second.log").read_text()


def test_killed_study_reuses_finished_runs(killed_study):
    out, finished_before, log = killed_study
    assert "ann-s0" in finished_before
    for name, mtime in finished_before.items():
        assert f"[study] {name}: finished earlier, reused" in log
        assert f"[study] {name}: training" not in log
        assert (out / "runs" / name / "metrics.json").stat().st_mtime_ns == mtime
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 12 + 4  # the paper's experiments (fine-tuning too), the fast recipe, three architectures
    for name in runs:
        assert json.loads((out / "runs" / name / "status.json").read_text())["state"] == "finished"
    assert f"report: {(out / 'report.html').resolve()}" in log


STUDY_FIGURES = ["fig1_architectures", "fig2_loss_curves", "fig3_optimizers", "fig4a_augmentation_grid",
                 "fig4b_augmentation_curves", "fig5_metric_comparison", "fig6_confusion_matrices",
                 "fig7_example_predictions", "fig8_rolling_val_accuracy", "fig9_filters_and_feature_maps",
                 "cnn_attributions_correct", "cnn_attributions_errors", "beyond_the_paper_time_to_accuracy",
                 "beyond_the_paper_loss_curves"]
TABLE1_ROWS = ["ANN", "ANN (modified)", "ANN (modified+data aug)", "CNN", "CNN (data aug)", "ANN (early stopping)"]


def test_study_report_has_every_figure_and_table(killed_study):
    out = killed_study[0]
    html = (out / "report.html").read_text()
    for name in STUDY_FIGURES:
        png = out / "figures" / f"{name}.png"
        with Image.open(png) as im:
            assert im.width > 300 and im.height > 150, name
        assert f'<figure id="{name}">' in html
        # the embedded image is the saved PNG, so report.html stands alone
        assert "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode() in html
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) == len(STUDY_FIGURES)
    with open(out / "table1.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["Model", "Training time", "Accuracy"] and [r[0] for r in rows[1:]] == TABLE1_ROWS
    assert rows[1][-3:] == ["88.43%", "0.888", "4.5 minutes (30)"]  # the paper's own ANN numbers beside ours
    assert "| ANN (modified+data aug)" in (out / "table1.md").read_text()
    # per-class table of each Table 1 model, class names from fashionlab.data.CLASSES
    assert html.count("<th>Class</th>") == len(TABLE1_ROWS)
    assert "<td>Ankle Boot</td>" in html and "<td>T-Shirt</td>" in html
    # what the test preset changes relative to paper, and the environment of every run
    assert "How preset &#39;test&#39; differs from &#39;paper&#39;" in html
    assert html.count(": config.json</summary>") == 12 + 4
    # beyond the paper: a Table-1-style table of the recipe and the Evaluation's architectures
    beyond = (out / "beyond_the_paper_table.md").read_text()
    assert all(f"| {label}" in beyond for label in ("recipe fast", "resnet20", "googlenet", "vit"))
    assert "Paper: accuracy" not in beyond  # runs the paper never had get no empty paper columns
    # the paper's claims come first, each with a verdict
    assert html.index('<section id="findings">') < html.index('<section id="table-1-key-metrics">')
    with open(out / "findings.csv", newline="") as fh:
        findings = list(csv.reader(fh))[1:]
    assert [f[0] for f in findings] == list("abcdefg") + ["h"] * 3
    assert {f[3] for f in findings} <= {"reproduced", "not reproduced", "not testable at this budget"}
    assert "fashionlab train --name cnn-s0 --model cnn --epochs 1" in html
    # what the Table 1 CNN looks at: its attribution maps, after its filters
    section = html[html.index('<section id="what-the-cnn-looks-at">'):]
    section = section[:section.index("</section>")]
    assert html.index('<section id="fig-9-filters-and-feature-maps">') < html.index(section)
    assert "Attribution maps of CNN (cnn-s0): Grad-CAM and Integrated Gradients" in section
    assert re.search(r"This section \(\d+ maps and their figures\) took [\d.]+ s here", section)
    assert '<figure id="cnn_attributions_correct">' in section and '<figure id="cnn_attributions_errors">' in section
    assert "by: fashionlab study --preset test --out" in html


def test_report_opens_in_chromium_with_every_image_loaded(killed_study, page):
    page.goto((killed_study[0] / "report.html").as_uri())
    page.wait_for_load_state("load")
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == len(STUDY_FIGURES) and all(w > 0 for w in widths)
    assert page.inner_text("h1").startswith("fashionlab")
    assert page.problems == []


def test_report_command_for_chosen_runs(killed_study, tmp_path, capsys):
    runs = killed_study[0] / "runs"
    out = tmp_path / "mine"
    assert main(["report", str(runs / "ann-s0"), str(runs / "cnn_aug-s0"), "--out", str(out)]) == 0
    assert f"report: {(out / 'report.html').resolve()}" in capsys.readouterr().out
    figures = {p.stem for p in (out / "figures").glob("*.png")}
    assert {"fig1_architectures", "fig2_loss_curves", "fig4a_augmentation_grid", "fig5_metric_comparison",
            "fig6_confusion_matrices", "fig7_example_predictions", "fig8_rolling_val_accuracy",
            "fig9_filters_and_feature_maps", "fig_time_to_accuracy"} <= figures
    assert [r[0] for r in csv.reader(open(out / "table1.csv"))][1:] == ["ann-s0", "cnn_aug-s0"]


def test_report_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert main(["report", "nope", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no run 'nope'" in err and err.count("\n") == 1


def test_extra_section_of_other_runs(killed_study, tmp_path):
    from fashionlab.report import Entry, Report, add_runs_section

    runs = killed_study[0] / "runs"
    report = Report(tmp_path, "t")
    add_runs_section(report, "Beyond the paper", [Entry(n, [open_run(runs / n)]) for n in ("ann-s0", "cnn-s0")],
                     text="extra architectures")
    html = report.write().read_text()
    assert '<section id="beyond-the-paper">' in html and "extra architectures" in html
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"beyond_the_paper_time_to_accuracy.png",
                                                                    "beyond_the_paper_loss_curves.png"}
    assert (tmp_path / "beyond_the_paper_table.csv").is_file()
