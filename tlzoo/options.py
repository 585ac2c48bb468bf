"""The options of ``adapt()``: one validated dataclass, read by every layer.

:class:`AdaptOptions` is the single definition of what ``tlzoo.adapt`` accepts
(like ``transformers.TrainingArguments``): ``adapt(**kwargs)`` builds one, the
training code reads it, the saved recipe records it (``to_dict``), ``tlzoo adapt``
generates its flags from its fields (:func:`add_arguments`), and ``tlzoo adapt
--config FILE`` reads the same fields from YAML or JSON (:meth:`AdaptOptions.from_file`),
including a saved model's ``tlzoo.json`` or a run's ``results.json``, so a recipe can be
replayed. Each field's metadata holds its help text, its group (for ``--help`` and
the docs) and, where the command line needs it, how a flag's text is parsed.

Kept free of torch and transformers: building and checking options is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlzoo.errors import ConfigurationError, did_you_mean

GROUPS = {
    "data": "target data",
    "strategy": "strategy and head",
    "optimisation": "optimisation",
    "evaluation": "evaluation and early stopping",
    "lora": "LoRA adapters (--strategy lora)",
    "output": "outputs and checkpoints",
    "source": "source model and Hub",
    "runtime": "runtime",
}
MIXED_PRECISION = ("no", "fp16", "bf16", "fp8")
SAVE_STRATEGIES = ("epoch", "no")


def option(default: Any, help: str, group: str, *, flags: tuple[str, ...] = (), parse: Callable[[str], Any] | None = None,
           metavar: str | None = None, choices: tuple[str, ...] | None = None, cli: bool = True,
           factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field of :class:`AdaptOptions` with its documentation and command-line form.

    :param flags: the flags (default ``--field-name``).
    :param parse: turns the flag's text into the value (default: by the default's type).
    :param cli: ``False`` for options that only make sense from Python.
    """
    meta = {"help": help, "group": group, "flags": flags, "parse": parse, "metavar": metavar, "choices": choices,
            "cli": cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# --- parsers for flags whose text is not a plain number or name -------------------------------------------------
def comma_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _class_weights(text: str) -> str | list[float]:
    if text.strip() == "balanced":
        return "balanced"
    try:
        return [float(x) for x in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'balanced' or comma-separated numbers, got {text!r}") from None


def _target_modules(text: str) -> str | list[str]:
    if text.strip() == "all-linear":
        return "all-linear"
    names = comma_list(text)
    if not names:
        raise argparse.ArgumentTypeError(f"must be 'all-linear' or comma-separated module names, got {text!r}")
    return names


def _size(text: str) -> float | int:
    """A held-out size: a fraction below 1, or a count of examples (a whole number >= 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a fraction (0.2) or a count of examples (20), got {text!r}") from None
    return int(value) if value >= 1 and value.is_integer() else value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"must be a JSON object, e.g. '{{\"hidden_size\": 64}}': {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, e.g. '{{\"hidden_size\": 64}}', got {text!r}")
    return value


def _resume(text: str) -> str | bool:
    return True if text in ("", "latest", "true", "True") else text


@dataclass
class AdaptOptions:
    """Every option of :func:`tlzoo.adapt` (and of ``tlzoo adapt``), checked when made.

    ``None`` for ``epochs``, ``learning_rate`` and ``lp_epochs`` means "tlzoo
    chooses": from the strategy, the data and what it measures (the recipe
    records what was chosen). Build one directly, with :meth:`from_dict`, or
    from a YAML/JSON file with :meth:`from_file`; ``to_dict`` gives it back.

    :raises tlzoo.errors.ConfigurationError: an option has a wrong type or value
        (the message names the option and what it accepts).
    """

    # target data
    task: str = option("auto", "auto, single_label_classification, multi_label_classification or regression", "data")
    input_column: str | None = option(None, "column of inputs (default: found by modality)", "data")
    label_column: str | None = option(None, "column of labels (default: a ClassLabel or 'label'-like column)", "data")
    test_size: float = option(0.2, "held-out test fraction (or count) when the data has no test split (0: none)",
                              "data", parse=_size)
    validation_size: float = option(0.1, "validation fraction (or count) of train when the data has none (0: none)",
                                    "data", parse=_size)
    class_weights: str | list[float] | None = option(None, "'balanced' or one weight per class (imbalanced data)",
                                                     "data", parse=_class_weights)
    # strategy and head
    strategy: str = option("auto", "auto, linear_probe, partial, full, lp_ft or lora", "strategy")
    head: str | dict[str, Any] = option("linear", "head name: linear, mlp, or a plugin's", "strategy")
    head_options: dict[str, Any] = option(None, "head options as JSON, e.g. '{\"hidden_size\": 128}'", "strategy",
                                          parse=_json_object, metavar="JSON", factory=dict)
    trainable_layers: int = option(2, "layer groups, counted from the top, that 'partial' trains", "strategy")
    pooling: str = option("auto", "feature pooling: auto, or a plugin's (mean, cls, pooler)", "strategy")
    time_budget: float | None = option(None, "seconds 'auto' may spend fine-tuning after its probe (default: "
                                       "ten times what the probe cost, at least a minute; 0: probe only)", "strategy",
                                       metavar="SECONDS")
    cross_validate_trials: bool = option(False, "with under 20 validation examples, a fine-tuning trial of 'auto' "
                                         "that beat the probe is judged again by 3-fold cross-validation (about "
                                         "three more short fine-tunings)", "strategy")
    # optimisation
    epochs: int | None = option(None, "training epochs (fine-tuning epochs for lp_ft; default: chosen)", "optimisation")
    lp_epochs: int | None = option(None, "linear-probe epochs of lp_ft when the probe is trained by gradient steps",
                                   "optimisation")
    batch_size: int = option(32, "examples per optimizer step, over all devices", "optimisation")
    learning_rate: float | None = option(None, "peak learning rate (default: found by a range test)", "optimisation")
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases and norms)", "optimisation")
    warmup_ratio: float = option(0.1, "fraction of fine-tuning steps spent warming up", "optimisation")
    lr_scheduler_type: str = option("linear", "a transformers scheduler: linear, cosine, constant, ...",
                                    "optimisation")
    layer_decay: float = option(0.75, "layer-wise learning-rate decay for full/partial/lp_ft", "optimisation")
    gradient_accumulation_steps: int = option(1, "batches per optimizer step", "optimisation")
    max_grad_norm: float | None = option(1.0, "gradient clipping norm (0: none)", "optimisation")
    mixed_precision: str | None = option(None, "no, fp16, bf16 or fp8 (accelerate's)", "optimisation",
                                         choices=MIXED_PRECISION)
    seed: int = option(0, "seed of splits, initialisation, shuffling and dropout", "optimisation")
    # evaluation
    metrics: list[str] | None = option(None, "comma-separated metric names (default: by task)", "evaluation",
                                       parse=comma_list)
    early_stopping: int | None = option(None, "stop after this many epochs without a better validation score",
                                        "evaluation", metavar="PATIENCE")
    metric_for_best_model: str = option("loss", "validation metric that picks the best epoch (loss, accuracy, f1, ...)",
                                        "evaluation")
    greater_is_better: bool | None = option(None, "whether that metric improves upwards (default: the metric says)",
                                            "evaluation")
    # LoRA
    lora_rank: int = option(8, "rank of the LoRA adapters", "lora")
    lora_alpha: float | None = option(None, "LoRA scale numerator (default: 2 x rank)", "lora")
    lora_dropout: float = option(0.0, "dropout on the adapters' inputs while training", "lora")
    lora_target_modules: str | list[str] = option("all-linear", "modules that get adapters: all-linear, or names "
                                                  "(query,value)", "lora", parse=_target_modules, metavar="NAMES")
    # outputs and checkpoints
    output_dir: str | None = option(None, "where to write the model, checkpoints, plots and results.json", "output",
                                    flags=("-o", "--output-dir"))
    overwrite_output_dir: bool = option(False, "replace a model already in the output folder", "output")
    resume_from: str | bool | None = option(None, "continue from the latest checkpoint in --output-dir, or from "
                                            "the checkpoint folder given", "output", flags=("--resume",),
                                            parse=_resume, metavar="CHECKPOINT")
    save_strategy: str = option("epoch", "epoch (a checkpoint each epoch, with --output-dir) or no", "output",
                                choices=SAVE_STRATEGIES)
    save_total_limit: int = option(2, "checkpoints kept while training", "output")
    keep_checkpoints: bool = option(False, "keep the checkpoints after a run that finished (by default they are "
                                    "removed once the model is saved: they only serve --resume)", "output")
    report_to: list[str] | None = option(None, "accelerate trackers: tensorboard, wandb, ...", "output",
                                         parse=comma_list)
    push_to_hub: str | None = option(None, "push the adapted model to this Hub repo", "output", metavar="REPO_ID")
    hub_private: bool | None = option(None, "create the Hub repo private", "output", flags=("--private",))
    # source model and Hub
    revision: str | None = option(None, "Hub revision of the source model", "source")
    token: str | None = option(None, "Hub token (default: HF_TOKEN or the saved login)", "source")
    hub_endpoint: str | None = option(None, "Hub endpoint (private deployments)", "source", flags=("--endpoint",))
    registry: str | None = option(None, "a registry YAML file merged over the zoo", "source")
    # runtime
    use_feature_cache: bool = option(True, "keep frozen-backbone features on disk between runs", "runtime")
    dataloader_num_workers: int = option(0, "worker processes that preprocess batches", "runtime")
    progress: bool = option(True, "show progress bars", "runtime", cli=False)

    def __post_init__(self) -> None:
        self._normalise()
        self._check()

    # --- building --------------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AdaptOptions:
        """Options from a mapping of field names; unknown names are refused with close matches."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in values if key not in names]
        if unknown:
            hints = "".join(did_you_mean(key, names, n=1) for key in unknown)
            raise ConfigurationError(
                f"Unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}.{hints} "
                f"The options are listed by `tlzoo adapt --help` and in docs/api.md."
            )
        return cls(**dict(values))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AdaptOptions:
        """Options from a YAML or JSON file of field names.

        A saved model's ``tlzoo.json`` or a run's ``results.json`` work too:
        their recipe's ``options`` are read, so a run can be replayed.
        """
        return cls.from_dict(read_options_file(path))

    def replace(self, **changes: Any) -> AdaptOptions:
        """A copy with *changes* applied (and checked)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Every option as a JSON-ready mapping (the token is left out)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["token"] = None
        return json.loads(json.dumps(out, default=str))

    def changed(self) -> dict[str, Any]:
        """The options that differ from their defaults."""
        default = AdaptOptions().to_dict()
        return {k: v for k, v in self.to_dict().items() if default.get(k) != v}

    # --- derived values --------------------------------------------------------------------------------------------
    @property
    def head_spec(self) -> str | dict[str, Any]:
        """The head as ``adapt()`` saves it: a name, or ``{"name": ..., **head_options}``."""
        name, options = _head_parts(self.head)
        options = {**options, **self.head_options}
        return {"name": name, **options} if options else name

    def lora(self) -> Any:
        """The :class:`tlzoo.training.lora.LoraSettings` of the ``lora_*`` options."""
        from tlzoo.training.lora import lora_settings

        return lora_settings(self.lora_rank, self.lora_alpha, self.lora_dropout, self.lora_target_modules)

    # --- checks ----------------------------------------------------------------------------------------------------
    def _normalise(self) -> None:
        if isinstance(self.output_dir, os.PathLike):
            self.output_dir = os.fspath(self.output_dir)
        if isinstance(self.resume_from, os.PathLike):
            self.resume_from = os.fspath(self.resume_from)
        if isinstance(self.registry, os.PathLike):
            self.registry = os.fspath(self.registry)
        if isinstance(self.report_to, str):
            self.report_to = comma_list(self.report_to)
        if isinstance(self.metrics, str):
            self.metrics = comma_list(self.metrics)
        if isinstance(self.metrics, tuple):
            self.metrics = list(self.metrics)
        if isinstance(self.lora_target_modules, tuple):
            self.lora_target_modules = list(self.lora_target_modules)
        if self.head_options is None:
            self.head_options = {}
        if self.max_grad_norm == 0:
            self.max_grad_norm = None

    def _check(self) -> None:
        from tlzoo.tasks import check_task
        from tlzoo.training.strategies import check_strategy

        check_task(self.task)
        check_strategy(self.strategy)
        for name in ("batch_size", "gradient_accumulation_steps", "lora_rank", "save_total_limit"):
            _positive_int(name, getattr(self, name))
        for name in ("epochs", "lp_epochs", "early_stopping"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if not isinstance(self.trainable_layers, int) or isinstance(self.trainable_layers, bool) \
                or self.trainable_layers < 1:
            raise ConfigurationError(f"trainable_layers must be a positive integer, got {self.trainable_layers!r}.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigurationError(f"seed must be an integer, got {self.seed!r}.")
        if not isinstance(self.dataloader_num_workers, int) or self.dataloader_num_workers < 0:
            raise ConfigurationError(
                f"dataloader_num_workers must be 0 or more, got {self.dataloader_num_workers!r}.")
        for name in ("learning_rate",):
            value = getattr(self, name)
            if value is not None and (not _is_number(value) or not value > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}.")
        if self.time_budget is not None and (not _is_number(self.time_budget) or self.time_budget < 0):
            raise ConfigurationError(f"time_budget must be a number of seconds from 0, got {self.time_budget!r}.")
        for name in ("weight_decay", "warmup_ratio"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0 or (name == "warmup_ratio" and value >= 1):
                upper = " and below 1" if name == "warmup_ratio" else ""
                raise ConfigurationError(f"{name} must be a number from 0{upper}, got {value!r}.")
        if not _is_number(self.layer_decay) or not 0 < self.layer_decay <= 1:
            raise ConfigurationError(f"layer_decay must be a number in (0, 1], got {self.layer_decay!r}.")
        if self.max_grad_norm is not None and (not _is_number(self.max_grad_norm) or self.max_grad_norm < 0):
            raise ConfigurationError(f"max_grad_norm must be a positive number or None, got {self.max_grad_norm!r}.")
        for name in ("test_size", "validation_size"):
            _check_size(name, getattr(self, name))
        if self.mixed_precision not in (None, *MIXED_PRECISION):
            raise ConfigurationError(
                f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {self.mixed_precision!r}.")
        if self.save_strategy not in SAVE_STRATEGIES:
            raise ConfigurationError(f"save_strategy must be 'epoch' or 'no', got {self.save_strategy!r}.")
        if self.resume_from is not None and not isinstance(self.resume_from, str | bool):
            raise ConfigurationError(f"resume_from must be a checkpoint folder or True, got {self.resume_from!r}.")
        if not isinstance(self.head_options, dict):
            raise ConfigurationError(f"head_options must be a mapping of option names, got {self.head_options!r}.")
        _head_parts(self.head)
        if not isinstance(self.metric_for_best_model, str) or not self.metric_for_best_model:
            raise ConfigurationError(
                f"metric_for_best_model must be a metric name, got {self.metric_for_best_model!r}.")
        if self.greater_is_better is None:
            from tlzoo.errors import MetricError
            from tlzoo.evaluation.metrics import higher_is_better

            try:
                higher_is_better(self.metric_for_best_model)
            except MetricError as exc:
                raise ConfigurationError(f"metric_for_best_model={self.metric_for_best_model!r}: {exc}") from exc
        if self.class_weights is not None and self.class_weights != "balanced" and not (
            isinstance(self.class_weights, list | tuple) and all(_is_number(w) and w >= 0 for w in self.class_weights)
        ):
            raise ConfigurationError(
                f"class_weights must be 'balanced' or a list of non-negative numbers, got {self.class_weights!r}.")
        self.lora()  # checks the lora_* options


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {value!r}.")


def _check_size(name: str, value: Any) -> None:
    ok = _is_number(value) and (0 <= value < 1 or (value >= 1 and float(value).is_integer()))
    if not ok:
        raise ConfigurationError(
            f"{name} must be a fraction from 0 up to 1 (0.2) or a whole count of examples (20), got {value!r}.")


def _head_parts(head: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(head, str) and head:
        return head, {}
    if isinstance(head, dict) and isinstance(head.get("name"), str):
        options = dict(head)
        return options.pop("name"), options
    raise ConfigurationError(f"head must be a name like 'linear' or a dict with a 'name' key, got {head!r}.")


def read_options_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The option mapping in a YAML/JSON options file, a ``tlzoo.json`` or a ``results.json``."""
    file = Path(path).expanduser()
    if file.is_dir() and (file / "tlzoo.json").is_file():
        file = file / "tlzoo.json"
    if not file.is_file():
        raise ConfigurationError(f"Config file {os.fspath(path)!r} does not exist.")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigurationError(f"Config file {file} cannot be parsed: {exc}") from exc
    if isinstance(values, dict) and isinstance(values.get("recipe"), dict) and "options" in values["recipe"]:
        values = values["recipe"]["options"]  # a saved model's tlzoo.json or a results.json
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigurationError(f"Config file {file} must hold a mapping of option names to values.")
    return values


# --- the command line ---------------------------------------------------------------------------------------------
def cli_fields() -> list[dataclasses.Field[Any]]:
    """The fields that ``tlzoo adapt`` has a flag for."""
    return [f for f in dataclasses.fields(AdaptOptions) if f.metadata.get("cli", True)]


def flag_names(f: dataclasses.Field[Any]) -> tuple[str, ...]:
    """The flags of one option (``--learning-rate``; ``-o``/``--output-dir``)."""
    return f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per option to *parser*, in argument groups; defaults stay unset (``SUPPRESS``).

    Only the flags a user gives end up in the namespace, so a ``--config`` file
    and the defaults fill in the rest (:func:`options_from_namespace`).
    """
    defaults = AdaptOptions()
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for f in cli_fields():
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        default = getattr(defaults, f.name)
        shown = "" if default in (None, {}, [], "") else f" (default: {_show(default)})"
        kwargs["help"] = meta["help"] + shown
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices"):
            kwargs["choices"] = list(meta["choices"])
        kind = _kind(f)
        if kind is bool:
            if f.name in ("overwrite_output_dir", "hub_private"):
                kwargs["action"] = "store_true"
            else:
                kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _flag_type(f.name, meta.get("parse") or kind)
            if f.name == "resume_from":
                kwargs.update(nargs="?", const=True)
        groups[meta["group"]].add_argument(*flag_names(f), **kwargs)


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _kind(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    text = str(f.type)
    if text.startswith("bool"):
        return bool
    if text.startswith("int"):
        return int
    if text.startswith("float"):
        return float
    return str


def _flag_type(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {parse.__name__} value: {text!r}") from None

    convert.__name__ = name
    return convert


def options_from_namespace(args: argparse.Namespace, *, config: str | os.PathLike[str] | None = None) -> AdaptOptions:
    """The options of a parsed ``tlzoo adapt``: defaults, then the *config* file, then the flags given."""
    values: dict[str, Any] = read_options_file(config) if config else {}
    for f in cli_fields():
        if hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return AdaptOptions.from_dict(values)
