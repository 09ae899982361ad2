"""Every setting has one source (RunConfig's fields): flags, TOML checks and docs/SETTINGS.md come from it, and
every value is checked by type and range, the same way from a flag or a TOML file."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fashionlab.cli import build_parser, main
from fashionlab.config import RETIRED, RunConfig, settings_markdown
from fashionlab.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "SETTINGS.md"


def test_docs_settings_md_matches_the_settings_source():
    assert DOCS.read_text() == settings_markdown(), \
        "docs/SETTINGS.md is stale: run 'fashionlab settings --markdown > docs/SETTINGS.md'"


def test_every_setting_is_a_train_flag_with_its_help_and_in_the_docs():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {a.dest: a for a in train._actions}
    text = settings_markdown()
    for f in dataclasses.fields(RunConfig):
        assert f.metadata["help"], f.name
        assert flags[f.name].help.startswith(f.metadata["help"].replace("%", "%%")), f.name
        assert f"| `{f.name}` |" in text


def test_removed_options_are_gone_from_the_flags_and_the_config():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    names = {a.dest for a in train._actions}
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for gone in RETIRED:
        assert gone not in names and gone not in fields


def test_old_configs_with_retired_settings_off_still_load():
    config = RunConfig.from_dict({"model": "ann", "cutmix": 0.0, "mixup": 0.0, "low_res_size": 0,
                                  "low_res_epochs": 0, "sam_rho": 0.0, "sam_from": 0.0, "tta": True})
    assert config.tta == "flip"
    with pytest.raises(ConfigError, match="mixup is no longer offered.*benchmarks/probes"):
        RunConfig.from_dict({"mixup": 0.2})


@pytest.mark.parametrize("values, message", [
    ({"winograd": "no"}, "winograd must be true or false"),
    ({"epochs": "ten"}, "epochs must be a number"),
    ({"epochs": math.inf}, "epochs must be a finite number"),
    ({"epochs": 0}, "epochs must be greater than 0"),
    ({"batch_size": 64.5}, "batch_size must be a whole number"),
    ({"batch_size": True}, "batch_size must be a whole number"),
    ({"augment": 5}, "augment must be a string"),
    ({"augment": "crop:padding=-1"}, "crop:padding must be a number between 0 and 14"),
    ({"augment": "crop:padding=2.5"}, "crop:padding must be a whole number"),
    ({"augment": "flip:p=2"}, "flip:p must be a number between 0 and 1"),
    ({"augment": {"erase": {"area": [0.5, 0.1]}}}, "erase:area must be two numbers"),
    ({"augment": {"flip": 3}}, "augment's entries must be tables"),
    ({"lr": math.inf}, "lr must be a finite number"),
    ({"lr": math.nan}, "lr must be a finite number"),
    ({"weight_decay": math.nan}, "weight_decay must be a finite number"),
    ({"momentum": -1}, "momentum must be at least 0"),
    ({"split_seed": -1}, "split_seed must be at least 0"),
    ({"threads": 1_000_000}, "threads must be at least 0 and at most"),
    ({"name": "x" * 300}, "run name .* must be 1-100 letters"),
    ({"name": "../up"}, "run name .* must be"),
    ({"name": ".hidden"}, "run name .* must be"),
    ({"optimizer": "adamax"}, "unknown optimizer 'adamax'; choose from"),
    ({"device": "tpu"}, "device 'tpu' must be auto, cpu, cuda or cuda:N"),
    ({"model": "nonet"}, "unknown model 'nonet'"),
    ({"patience": 3, "val_size": 0}, "early stopping .* needs a validation split"),
    ({"nonsense": 1}, r"unknown setting\(s\) nonsense"),
])
def test_bad_values_are_refused_with_one_line(values, message):
    with pytest.raises(ConfigError, match=message) as err:
        RunConfig.from_dict(values)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "inf"], "epochs must be a finite number"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--threads", "1000000"], "threads must be"),
    (["--momentum", "-1"], "momentum must be at least 0"),
    (["--name", "y" * 300], "must be 1-100 letters"),
    (["--augment", "flip:p=2"], "flip:p must be"),
])
def test_flags_get_the_same_checks(flags, message, tmp_path, capsys):
    assert main(["train", *flags, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir()), "nothing may be created for settings that are refused"


def test_toml_gets_the_same_checks_and_a_folder_is_refused(tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text('winograd = "no"\n')
    assert main(["train", "-c", str(toml), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "winograd must be true or false" in capsys.readouterr().err
    assert main(["train", "-c", str(tmp_path), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_whole_float_is_an_int_and_epochs_keep_their_fraction():
    config = RunConfig.from_dict({"batch_size": 64.0, "epochs": 2.5, "eval_batch_size": 500})
    assert config.batch_size == 64 and isinstance(config.batch_size, int) and config.epochs == 2.5


def test_a_config_round_trips_through_json_values():
    config = RunConfig.from_dict({"model": "cnn", "augment": "flip,crop:padding=2,erase:p=0.5", "tta": "flip"})
    assert RunConfig.from_dict(config.to_dict()) == config


_any_value = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                       st.text(max_size=30), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from([f.name for f in dataclasses.fields(RunConfig)]), value=_any_value)
def test_any_value_of_any_setting_is_accepted_or_refused_cleanly(name, value):
    """Whatever a TOML file holds: a valid config or a one-line ConfigError, never another exception."""
    try:
        config = RunConfig.from_dict({name: value})
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    got = getattr(config, name)
    kind = str(next(f for f in dataclasses.fields(RunConfig) if f.name == name).type)
    if isinstance(got, float):
        assert math.isfinite(got)
    if kind.startswith("bool"):
        assert isinstance(got, bool)
    if kind.startswith("int"):
        assert isinstance(got, int) and not isinstance(got, bool)
