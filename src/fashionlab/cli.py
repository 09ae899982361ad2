"""The `fashionlab` command: parse, validate, call the library. Errors are one line, never a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from .config import RunConfig, load_toml
from .errors import ConfigError, FashionlabError
from .malloc import keep_freed_memory


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field, with its help; default None so that only given flags override the TOML file.
    Types and ranges are checked by RunConfig.from_dict, the same check a TOML file gets."""
    for f in dataclasses.fields(RunConfig):
        if not f.metadata["flag"]:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type).replace(" | None", "")
        help_text = f.metadata["help"].replace("%", "%%")
        if f.metadata["choices"]:
            help_text += f" ({', '.join(f.metadata['choices'])})"
        if kind == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, type={"int": int, "float": float}.get(kind, str), default=None, help=help_text,
                                metavar=f.name.upper())


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Defaults <- recipe (--recipe, or `recipe` in the TOML file) <- TOML file (-c) <- flags. A budget replaces the
    epochs (a recipe's included): both given is a usage error."""
    from .recipes import recipe_settings

    values = {}
    if getattr(args, "config", None):
        values.update(load_toml(args.config))
    for f in dataclasses.fields(RunConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    if values.get("budget") is not None and values.get("epochs") is not None:
        raise ConfigError("--budget replaces --epochs (the run trains the epochs that fit in it); give one of them")
    if values.get("recipe"):
        values = {**recipe_settings(values["recipe"]), **values}
    return RunConfig.from_dict(values)


def cmd_train(args) -> int:
    from .streams import closed_pipes_ignored
    from .training import distributed
    from .training.loop import train

    with closed_pipes_ignored():  # `fashionlab train ... | head`: the run goes on after its reader leaves
        if args.resume:
            if args.overwrite:
                raise ConfigError("--resume continues a run and --overwrite replaces one; give one of them")
            # every setting given again goes to train(), which refuses those a resume cannot change
            changes = load_toml(args.config) if args.config else {}
            changes.update({f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig)
                            if getattr(args, f.name, None) is not None})
            run = train(RunConfig(), root=args.runs_dir, resume=args.resume, show_progress=args.progress,
                        changes=changes)
        else:
            config = config_from_args(args)
            run = train(config, root=args.runs_dir, overwrite=args.overwrite, show_progress=args.progress)
        if distributed.is_main():  # under torchrun: one line, from rank 0
            print(f"finished {run.path}")
    distributed.shutdown()
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate_run
    from .tables import per_class_table

    metrics = evaluate_run(args.run, split=args.split, root=args.runs_dir, data_dir=args.data_dir)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        print(f"{args.run} on {args.split} ({metrics['n']} images): accuracy {metrics['accuracy']:.4f}, "
              f"precision {metrics['precision_mean']:.4f}, recall {metrics['recall_mean']:.4f}, "
              f"F1 {metrics['f1_mean']:.4f}")
        print(per_class_table(metrics))
    return 0


def cmd_runs(args) -> int:
    from .tables import runs_table

    print(runs_table(args.runs_dir))
    return 0


def cmd_models(args) -> int:
    from .tables import models_table

    print(models_table())
    return 0


def cmd_settings(args) -> int:
    from .config import settings_markdown

    print(settings_markdown(), end="")
    return 0


def cmd_study(args) -> int:
    from .parsing import parse_duration
    from .study.runner import run_study

    report = run_study(preset=args.preset, out=args.out, seeds=args.seeds, data_dir=args.data_dir,
                       show_progress=args.progress, command=" ".join(["fashionlab", *sys.argv[1:]]),
                       budget_seconds=None if args.budget is None else parse_duration(args.budget))
    print(f"report: {report.resolve()}")
    return 0


def cmd_report(args) -> int:
    from .report import build_runs_report

    report = build_runs_report(args.runs, args.out, root=args.runs_dir, data_dir=args.data_dir,
                               command=" ".join(["fashionlab", *sys.argv[1:]]))
    print(f"report: {report.resolve()}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep.search import run_sweep

    study = run_sweep(args.name, trials=args.trials, storage=args.storage, space=args.space, root=args.runs_dir,
                      show_progress=args.progress, timeout=args.timeout)
    if any(t.value is not None for t in study.get_trials(deepcopy=False)):
        print(f"sweep {args.name}: best trial {study.best_trial.number}, val accuracy {study.best_value:.4f}, "
              f"{study.best_params}")
    return 0


def cmd_sweep_report(args) -> int:
    from .sweep.report import write_report
    from .sweep.search import open_study, retrain_best, sweeps_dir

    if not args.storage and not (sweeps_dir(args.runs_dir) / f"{args.name}.db").is_file():
        raise ConfigError(f"no sweep '{args.name}' under {sweeps_dir(args.runs_dir)}; pass --storage if it is "
                          "elsewhere")
    study = open_study(args.name, args.storage, args.runs_dir, create=False)
    if args.retrain_best:
        run = retrain_best(study, root=args.runs_dir, show_progress=args.progress)
        print(f"re-trained best trial: {run.path}, test accuracy {run.metrics()['accuracy']:.4f}")
    print(f"wrote {write_report(study, args.out, args.runs_dir, args.top)}")
    return 0


def cmd_predict(args) -> int:
    from .serving.predict import format_results, load_onnx_predictor, load_torch_predictor, predict_files

    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    if args.explain and args.onnx:
        raise ConfigError("--explain needs the run's PyTorch model for its attribution maps; use --run RUN instead "
                          "of --onnx")
    if args.force and not (args.explain or args.show_input):
        raise ConfigError("--force replaces existing files in the --explain or --show-input folder; give one of them "
                          "too")
    predictor = (load_onnx_predictor(args.onnx, calibration=args.calibration) if args.onnx
                 else load_torch_predictor(args.run, args.runs_dir, calibration=args.calibration))
    # each file that cannot be used gets its own line as it happens; the others are still predicted
    results = predict_files(predictor, args.images, args.top_k, args.show_input,
                            on_error=lambda err: print(f"fashionlab: error: {err}", file=sys.stderr, flush=True),
                            explain=args.explain, force=args.force)
    if not results:
        raise FashionlabError("no images found (PNG, JPEG, WebP, BMP or GIF) in " + " ".join(args.images))
    print(format_results(results, args.format))
    if args.explain:
        drawn = sum(not r["error"] for r in results)
        print(f"fashionlab: {drawn} attribution overlay(s) in {args.explain}", file=sys.stderr)
    return 1 if any(r["error"] for r in results) else 0


def cmd_export(args) -> int:
    from .serving.export import export_onnx

    out, temperature = export_onnx(args.run, args.out, args.runs_dir, force=args.force, calibration=args.calibration)
    print(f"wrote {out}" + (f" (calibrated probabilities: temperature {temperature:.3f} in the graph)"
                            if temperature else ""))
    return 0


def cmd_serve(args) -> int:
    from .serving.app import serve

    serve(args.run, args.runs_dir, args.host, args.port, onnx=args.onnx, calibration=args.calibration)
    return 0


def cmd_explain(args) -> int:
    from .explain.page import explain_run

    if args.thumbnails < 0 or args.sample < 10:
        raise ConfigError("--thumbnails must be at least 0 and --sample at least 10")
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    log = (lambda msg: print(f"explain: {msg}", file=sys.stderr)) if args.progress else None
    report = explain_run(args.run, args.out, root=args.runs_dir, images=args.images, thumbnails=args.thumbnails,
                         sample=args.sample, data_dir=args.data_dir, log=log)
    print(f"report: {report.resolve()}")
    return 0


def cmd_labels(args) -> int:
    from .explain.label_issues import label_issues_report

    if args.folds < 2 or args.top < 1 or (args.limit is not None and args.limit < 2 * args.folds):
        raise ConfigError("--folds must be at least 2, --top at least 1, --limit at least 2 images per fold")
    page, csv_path, issues = label_issues_report(
        args.out, args.recipe, args.folds, args.seed, args.threads, args.limit, args.top, data_dir=args.data_dir,
        reuse=args.reuse, show_progress=bool(args.progress),
        log=lambda msg: print(f"labels: {msg}", file=sys.stderr),
        command=" ".join(["fashionlab", *sys.argv[1:]]))
    print(f"{int(issues.flagged.sum())} labels flagged; csv: {csv_path.resolve()}; report: {page.resolve()}")
    return 0


def _add_calibration_flag(parser: argparse.ArgumentParser,
                          what: str = "report calibrated probabilities, softmax(logits / T), where the run has a "
                                      "temperature T saved by 'fashionlab explain' or the ONNX file has one in its "
                                      "graph") -> None:
    parser.add_argument("--calibration", action=argparse.BooleanOptionalAction, default=True,
                        help=f"{what}; --no-calibration: the model's own probabilities (default: on)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that says where to look, not the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fashionlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a model into runs/NAME")
    p.add_argument("-c", "--config", help="TOML file of settings (flags override it)")
    _add_config_flags(p)
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run exactly where it stopped; only "
                   "--epochs (more, with --scheduler none, no --prune and no --budget), --threads, --device and "
                   "--data-dir may change")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a finished run's model on the test (or validation) split")
    p.add_argument("run", help="run name or directory")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", action="store_true", help="print all metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("runs", help="list runs: model, epochs, accuracy, mean F1, time")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("models", help="list the models with parameter counts and FLOPs")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("settings", help="list every training setting: type, default, allowed values (Markdown)")
    p.add_argument("--markdown", action="store_true", help="the table as docs/SETTINGS.md has it (the default)")
    p.set_defaults(func=cmd_settings)

    p = sub.add_parser("study", help="reproduce the original study and write OUT/report.html")
    p.add_argument("--preset", default="quick",
                   help="quick (default: every finding of the paper tested in under 30 min on 2 cores) or paper "
                        "(the paper's own epochs); 'test' is a tiny preset for the test suite only")
    p.add_argument("--budget", default=None, metavar="DURATION",
                   help="size the CNN rows so that the study's runs take about this long on this machine: a "
                        "duration with its unit, e.g. 45m or 1h30m (quick's own: 27m without bf16 products, 17m "
                        "with them)")
    p.add_argument("--seeds", type=int, default=1, help="repeat each experiment with this many seeds")
    p.add_argument("--out", default="out/study", help="folder for the study's runs and report")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("sweep", help="hyper-parameter sweep with Optuna (resumable; several workers may share it)")
    p.add_argument("--name", required=True, help="study name; re-running the same command resumes it")
    p.add_argument("--trials", type=int, default=20, help="run until the study has this many finished trials")
    p.add_argument("--storage", default=None, help="database URL, e.g. postgresql://user:pw@host/db "
                   "(default: sqlite file runs/sweeps/NAME.db)")
    p.add_argument("--space", default=None, help="TOML file with [space.PARAM] tables (default: the paper's choices)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting new trials after this many seconds")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("sweep-report", help="HTML page of a sweep: best trials and Optuna's plots")
    p.add_argument("name", help="sweep name")
    p.add_argument("--storage", default=None, help="database URL if not the default sqlite file")
    p.add_argument("--out", default=None, help="HTML file (default: runs/sweeps/NAME.html)")
    p.add_argument("--top", type=int, default=10, help="rows in the best-trials table")
    p.add_argument("--retrain-best", action="store_true",
                   help="first re-train the best trial on all 60,000 training images and evaluate it on the test set")
    p.set_defaults(func=cmd_sweep_report)

    p = sub.add_parser("predict", help="classify photos (any size, PNG/JPEG/WebP/BMP/GIF) with a trained model")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders of them")
    p.add_argument("--run", help="run to use (default: the finished run with the best VALIDATION accuracy; "
                                 "runs without a validation split are skipped, test accuracy is never used)")
    p.add_argument("--onnx", metavar="FILE", help="use this exported ONNX model with onnxruntime instead of a run")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show per image (default 3)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--show-input", metavar="DIR", help="save the 28x28 image the model saw for each photo here")
    p.add_argument("--explain", metavar="DIR", help="save one PNG per photo here: the model input beside the "
                   "attribution map of its predicted class (Integrated Gradients), with the label and probability")
    p.add_argument("--force", action="store_true", help="replace existing files in the --explain and --show-input "
                   "folders (never the input images)")
    _add_calibration_flag(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a finished run's model (ONNX, dynamic batch, preprocessing metadata)")
    p.add_argument("run", help="run name or directory")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", help="output file (default: RUN/model.onnx); never one of a run's own files")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    _add_calibration_flag(p, "divide the logits by the temperature saved with the run by 'fashionlab explain' "
                             "before the softmax, and record it in the metadata")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="web page and JSON API to classify photos (FastAPI + uvicorn)")
    p.add_argument("--run", help="run to serve (default: the finished run with the best validation accuracy)")
    p.add_argument("--onnx", metavar="FILE", help="serve this exported ONNX model instead of a run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                   "any other address is reachable from the network and prints a warning: there is no login)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 0 to 65535 (default 8000)")
    _add_calibration_flag(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("report", help="build the study's kind of HTML report for any finished runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run names or directories")
    p.add_argument("--out", default="out/report", help="folder for report.html, figures/ and tables")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("explain", help="HTML page on a finished run: where it fails, attributions, calibration "
                                       "(saves RUN/calibration.json), t-SNE of its features")
    p.add_argument("run", help="run name or directory")
    p.add_argument("--out", default=None, help="folder for report.html and figures/ (default: RUN/explain)")
    p.add_argument("--images", nargs="+", metavar="INDEX_OR_FILE", default=None,
                   help="explain these test indices or image files instead of the worst mistakes and one correct "
                        "image per class")
    p.add_argument("--thumbnails", type=int, default=0, metavar="N", help="draw N images on the t-SNE map")
    p.add_argument("--sample", type=int, default=2000, help="test images in the t-SNE map (default 2000)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = all cores)")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("labels", help="find suspected label errors in the training set (K-fold out-of-fold "
                                      "probabilities, confident learning); writes a CSV and a gallery page")
    p.add_argument("--recipe", default="fast", help="training recipe of the fold models (default fast)")
    p.add_argument("--folds", type=int, default=4, help="K: models trained, each scoring the fold it never saw")
    p.add_argument("--seed", type=int, default=0, help="seed of the folds and of the fold models")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (quick tries)")
    p.add_argument("--top", type=int, default=60, help="suspects shown in the gallery")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    p.add_argument("--out", default="out/labels", help="folder for label_issues.csv, report.html and the fold runs")
    p.add_argument("--reuse", action="store_true",
                   help="rank the out-of-fold probabilities saved in OUT by an identical earlier call again")
    p.add_argument("--data-dir", default=None)
    p.set_defaults(func=cmd_labels)

    for p in sub.choices.values():
        p.add_argument("--runs-dir", default=None, help="folder of runs (default: ./runs or $FASHIONLAB_RUNS)")
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="show progress bars (default: when on a terminal)")
    return parser


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that left shows up here, not in the interpreter's flush at exit
        return code
    except FashionlabError as err:
        print(f"fashionlab: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("fashionlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of the output left (`fashionlab runs | head`): stop quietly, as Python's documentation shows
        from .streams import silence_closed_streams

        silence_closed_streams()
        return 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ConfigError", "build_parser", "config_from_args", "main"]
