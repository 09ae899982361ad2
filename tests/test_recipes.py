"""Every recipe resolves to a valid config, flags and TOML override it, and no recipe looks at the test set."""

import pytest

from fashionlab.cli import build_parser, config_from_args
from fashionlab.errors import ConfigError
from fashionlab.recipes import RECIPES, TARGETS, recipe_settings


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_resolves(name):
    config = config_from_args(build_parser().parse_args(["train", "--recipe", name]))
    assert config.recipe == name and config.model == RECIPES[name]["model"]
    assert config.val_size == 0  # recipes train on all 60,000 training images once chosen
    assert name in TARGETS
    # a CPU without bf16 products trains in fp32: its time target is never the tighter one
    assert TARGETS[name].time_target(bf16=False) >= TARGETS[name].time_target(bf16=True)


def test_flags_and_toml_override_a_recipe(tmp_path):
    toml = tmp_path / "r.toml"
    toml.write_text('recipe = "fast"\nepochs = 7\n')
    config = config_from_args(build_parser().parse_args(["train", "-c", str(toml), "--lr", "0.05"]))
    assert (config.model, config.epochs, config.lr) == (RECIPES["fast"]["model"], 7, 0.05)


def test_mlp_recipe_has_no_convolutions():
    from fashionlab.models import create_model, is_convolutional

    assert not is_convolutional(create_model(RECIPES["mlp"]["model"]))


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="unknown recipe 'turbo'; choose from fast, standard, best, mlp"):
        recipe_settings("turbo")
