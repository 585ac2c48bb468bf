"""AdaptOptions: one validated definition of adapt()'s options, shared by the CLI, the recipe and config files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from tlzoo.errors import ConfigurationError
from tlzoo.options import AdaptOptions, add_arguments, cli_fields, flag_names, options_from_namespace

DOCS = Path(__file__).resolve().parents[1] / "docs"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_round_trip_through_to_dict_and_from_dict():
    options = AdaptOptions(strategy="lp_ft", epochs=3, metrics=["accuracy"], head={"name": "mlp", "hidden_size": 8})
    again = AdaptOptions.from_dict(options.to_dict())
    assert again == options
    assert json.loads(json.dumps(options.to_dict())) == options.to_dict()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"strategy": "lp-ft"}, "lp_ft"),
        ({"task": "regresion"}, "regression"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
        ({"test_size": 1.5}, "test_size must be a fraction"),
        ({"mixed_precision": "fp32"}, "mixed_precision must be one of"),
        ({"layer_decay": 0}, "layer_decay must be a number in (0, 1]"),
        ({"lora_rank": 0}, "lora_rank must be a positive integer"),
        ({"class_weights": "even"}, "class_weights must be 'balanced'"),
        ({"head": 3}, "head must be a name"),
        ({"save_strategy": "steps"}, "save_strategy must be 'epoch' or 'no'"),
    ],
)
def test_bad_values_name_the_option_and_what_it_accepts(changes, words):
    with pytest.raises(ConfigurationError) as info:
        AdaptOptions(**changes)
    assert words in str(info.value)


def test_unknown_option_names_close_matches():
    with pytest.raises(ConfigurationError, match=r"Unknown option 'learning_rat'\. Did you mean 'learning_rate'"):
        AdaptOptions.from_dict({"learning_rat": 1e-3})


def test_counts_are_accepted_as_held_out_sizes():
    assert AdaptOptions(test_size=20, validation_size=0).test_size == 20
    assert parse("--test-size", "20").test_size == 20
    assert parse("--test-size", "0.25").test_size == 0.25


def test_every_cli_option_has_a_flag_and_parses_back():
    """Each option reachable from Python is reachable from `tlzoo adapt` (progress is the CLI's --quiet/--json)."""
    names = {f.name for f in dataclasses.fields(AdaptOptions)}
    assert names - {f.name for f in cli_fields()} == {"progress"}
    args = parse("--trainable-layers", "3", "--metric-for-best-model", "f1_weighted", "--weight-decay", "0.1",
                 "--registry", "zoo.yaml", "--no-greater-is-better", "--head-options", '{"hidden_size": 16}',
                 "--lora-target-modules", "query,value", "--resume", "--private", "-o", "out",
                 "--class-weights", "1,2", "--report-to", "tensorboard", "--no-use-feature-cache")
    options = options_from_namespace(args)
    assert options.trainable_layers == 3 and options.metric_for_best_model == "f1_weighted"
    assert options.weight_decay == 0.1 and options.registry == "zoo.yaml" and options.greater_is_better is False
    assert options.head_spec == {"name": "linear", "hidden_size": 16}
    assert options.lora_target_modules == ["query", "value"]
    assert options.resume_from is True and options.hub_private is True and options.output_dir == "out"
    assert options.class_weights == [1.0, 2.0] and options.report_to == ["tensorboard"]
    assert options.use_feature_cache is False


def test_flags_that_are_not_given_keep_the_config_files_values(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("strategy: full\nepochs: 4\nlearning_rate: 0.001\n")
    options = options_from_namespace(parse("--epochs", "2"), config=config)
    assert (options.strategy, options.epochs, options.learning_rate) == ("full", 2, 0.001)


def test_a_saved_models_recipe_replays_as_a_config(tmp_path):
    saved = {"format": "tlzoo", "recipe": {"options": AdaptOptions(strategy="partial", seed=7).to_dict()}}
    (tmp_path / "tlzoo.json").write_text(json.dumps(saved))
    replayed = AdaptOptions.from_file(tmp_path)
    assert (replayed.strategy, replayed.seed) == ("partial", 7)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigurationError, match="bad.json cannot be parsed"):
        AdaptOptions.from_file(bad)
    with pytest.raises(ConfigurationError, match="does not exist"):
        AdaptOptions.from_file(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigurationError, match="must hold a mapping"):
        AdaptOptions.from_file(listing)


def test_the_token_is_never_recorded():
    assert AdaptOptions(token="hf_secret").to_dict()["token"] is None


def test_every_option_is_documented_in_the_api_reference():
    text = (DOCS / "api.md").read_text()
    missing = [f.name for f in dataclasses.fields(AdaptOptions) if not re.search(rf"`{f.name}`", text)]
    assert not missing, f"options missing from docs/api.md: {missing}"


def test_every_flag_is_documented_in_the_cli_reference():
    text = (DOCS / "cli.md").read_text()
    missing = [flag_names(f)[-1] for f in cli_fields() if f"`{flag_names(f)[-1]}" not in text]
    assert not missing, f"flags missing from docs/cli.md: {missing}"
