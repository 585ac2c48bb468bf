"""``adapt()``: source model → target data → new task layer → train → evaluate.

Every step has its own module or package (registry, data, heads, training,
evaluation, model); this one runs them in order, checks the arguments and the
data before any model is loaded, and writes nothing to ``output_dir`` until the
expensive work starts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlzoo.errors import ConfigurationError, setting
from tlzoo.heads import TaskSpec, check_head_options, get_head_factory, parse_head
from tlzoo.hub import unreachable_source_error
from tlzoo.options import AdaptOptions
from tlzoo.progress import library_progress_bars
from tlzoo.training.lora import LoraSettings

if TYPE_CHECKING:
    from tlzoo.model import AdaptedModel
    from tlzoo.registry import SourceModel

logger = logging.getLogger(__name__)


@dataclass
class AdaptResult:
    """What ``adapt()`` returns.

    :ivar model: the adapted model (backbone + new head), ready to predict, save and push.
    :ivar metrics: final metrics per held-out split, e.g. ``{"test": {"accuracy": ...}, "validation": {...}}``.
    :ivar history: one record per epoch (phase, losses, validation metrics, learning rate, seconds).
    :ivar recipe: what was trained and how: strategy (and why, when ``auto`` chose it), hyper-parameters, data summary.
    :ivar output_dir: where the model, checkpoints and plots were written (``None`` if nowhere).
    :ivar commit_url: the Hub commit, when ``push_to_hub`` was given.
    """

    model: AdaptedModel
    metrics: dict[str, dict[str, Any]]
    history: list[dict[str, Any]]
    recipe: dict[str, Any]
    output_dir: Path | None = None
    commit_url: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line: the strategy, the test (or validation) scores and where the model went; not the network."""
        split = "test" if "test" in self.metrics else next(iter(self.metrics), None)
        scores = {k: round(v, 4) for k, v in (self.metrics.get(split) or {}).items()
                  if isinstance(v, float) and k != "loss"} if split else {}
        return (f"AdaptResult(strategy={self.recipe.get('strategy')!r}, {split}={scores}, "
                f"epochs={len(self.history)}, output_dir={str(self.output_dir) if self.output_dir else None!r})")


def _check_arguments(*, strategy: str, head: Any, output_dir: Any, overwrite_output_dir: bool, resume_from: Any,
                     lora: LoraSettings) -> None:
    """Checks that need the plugins or the file system (the options checked themselves when made)."""
    if strategy != "lora" and lora != LoraSettings():
        logger.warning("The lora_* options apply to strategy='lora' only; ignored for strategy=%r.", strategy)
    name, head_options = parse_head(head)
    check_head_options(name, get_head_factory(name), head_options)  # before any model loads
    if output_dir is not None:
        check_output_dir(Path(output_dir))
    if output_dir is not None and not resume_from and not overwrite_output_dir:
        model_dir = Path(output_dir) / "model"
        if model_dir.exists() and any(model_dir.iterdir()):
            raise ConfigurationError(
                f"{model_dir} already holds a model; pass {setting('overwrite_output_dir', True)} to replace it, "
                f"{setting('resume_from', True)} to continue its training, or choose another {setting('output_dir')}."
            )


def check_output_dir(path: Path) -> None:
    """*path* can be made (or is) a writable folder, and its ``model``/``checkpoints`` are not files: else say so now."""
    import os

    for name in ("model", "checkpoints"):
        if (path / name).exists() and not (path / name).is_dir():
            raise ConfigurationError(f"output_dir={path}: {path / name} is a file, where tlzoo writes a folder.")
    for folder in (path, *path.parents):
        if not folder.exists():
            continue
        if not folder.is_dir():
            raise ConfigurationError(
                f"output_dir={path} cannot be created: {folder} is a file, not a folder. Choose another output_dir."
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigurationError(f"output_dir={path} cannot be written: {folder} is not writable for this user.")
        return


def adapt(source: Any, data: Any, options: AdaptOptions | None = None, **kwargs: Any) -> AdaptResult:
    """Adapt a pretrained *source* model to the labelled target *data*.

    >>> result = tlzoo.adapt("all-minilm-l6-v2", "reviews.csv", label_column="sentiment")  # doctest: +SKIP

    :param source: a zoo name (``tlzoo models``), a Hub id, or a local model folder; or
        candidates, as a list of those or a zoo pattern (``"*minilm*"``): they are ranked
        first by :func:`tlzoo.rank` (the same options) and the best is adapted, reusing the
        features the ranking cached; the ranking is in ``result.recipe["ranking"]``.
    :param data: a ``datasets.Dataset``/``DatasetDict``, a pandas DataFrame, a
        Hub dataset id, a folder (one sub-folder per class), or a CSV/JSON/Parquet file.
    :param options: an :class:`tlzoo.options.AdaptOptions`; keyword arguments are
        its fields (``strategy=``, ``epochs=``, ``output_dir=``, ...) and override it.
        Every option is documented on :class:`~tlzoo.options.AdaptOptions` and in
        docs/api.md; ``tlzoo adapt`` has a flag for each.
    :raises tlzoo.TlzooError: a subclass naming the problem, before any model loads
        when the options or the data are at fault (an unknown option is a
        :class:`~tlzoo.errors.ConfigurationError` with close matches).
    """
    base = options.to_dict() if options is not None else {}
    if options is not None:
        base["token"] = options.token
    opts = AdaptOptions.from_dict({**base, **kwargs})
    logger.info("Adapting %s to %s: looking up the source model ...", source, _describe_data(data))
    from tlzoo.hub import offline_if_unreachable

    # tlzoo's own bars, and the Hub's download bars; never the weight-loading and data-mapping ones
    with library_progress_bars(hub=opts.progress, transformers=False, datasets=False), \
            offline_if_unreachable(opts.hub_endpoint, needed=_uses_hub(source, data, opts)):
        return _adapt(source, data, opts)


def _describe_data(data: Any) -> str:
    """*data* in a few words for the log: its path or id, else its type and size."""
    import os

    if isinstance(data, str | os.PathLike):
        return os.fspath(data)
    size = f", {len(data)} rows" if hasattr(data, "__len__") and type(data).__name__ != "DatasetDict" else ""
    return f"a {type(data).__name__}{size}"


def _uses_hub(source: Any, data: Any, options: AdaptOptions) -> bool:
    """Whether the run may need the Hub: a source (or candidate) or data named but not on disk, or a push."""
    import os

    def remote(value: Any) -> bool:
        return isinstance(value, str | os.PathLike) and not Path(value).expanduser().exists()

    sources = source if isinstance(source, list | tuple) else [source]
    return bool(options.push_to_hub) or any(remote(s) for s in sources) or remote(data)


def _adapt(source: Any, data: Any, options: AdaptOptions) -> AdaptResult:
    """The steps of :func:`adapt`, reading every setting from *options*."""
    o = options
    task, input_column, label_column, strategy = o.task, o.input_column, o.label_column, o.strategy
    head, output_dir, overwrite_output_dir, resume_from = o.head_spec, o.output_dir, o.overwrite_output_dir, o.resume_from
    seed, test_size, validation_size, class_weights = o.seed, o.test_size, o.validation_size, o.class_weights
    early_stopping = o.early_stopping
    push_to_hub, token, hub_endpoint, hub_private = o.push_to_hub, o.token, o.hub_endpoint, o.hub_private
    revision, registry, pooling = o.revision, o.registry, o.pooling
    started = time.perf_counter()
    from tlzoo.data import class_weights as balanced_weights
    from tlzoo.data import load_target_data
    from tlzoo.plugins import get_modality
    from tlzoo.registry import resolve_source

    lora = o.lora()
    _check_arguments(strategy=strategy, head=head, output_dir=output_dir, overwrite_output_dir=overwrite_output_dir,
                     resume_from=resume_from, lora=lora)
    if push_to_hub:
        from tlzoo.hub import check_push_target

        check_push_target(push_to_hub, token=token if isinstance(token, str) else None, endpoint=hub_endpoint)
    from tlzoo.ranking.candidates import names_candidates

    ranking = None
    if names_candidates(source):  # several candidates (a list, a zoo pattern): rank them, adapt the best
        from tlzoo.ranking.rank import rank_for_adapt

        ranking = rank_for_adapt(source, data, o)
        source = ranking.best
    src = resolve_source(source, revision=revision, registry=registry, token=token)
    from tlzoo.data.reading import check_data_path
    from tlzoo.hub import check_source_available

    check_data_path(data)  # the cheap checks of both, before either is read
    check_source_available(src.hub_id, revision=src.revision)
    modality = get_modality(src.modality)
    if strategy == "lora":
        _check_lora_targets(lora, src, token)
    logger.info("Reading the target data (%s) ...", _describe_data(data))
    target = load_target_data(data, modality, input_column=input_column, label_column=label_column, task=task,
                              seed=seed, test_size=test_size, validation_size=validation_size)
    if early_stopping and "validation" not in target.splits:
        raise ConfigurationError("early_stopping needs a validation split: give one, or set validation_size > 0.")
    weights = _class_weights(class_weights, target, balanced_weights)
    timings = {"data": time.perf_counter() - started}

    logger.info("Loading the source model %s ...", src.name if src.name == src.hub_id else f"{src.name} ({src.hub_id})")
    extractor = _build_extractor(modality, src, token=token, pooling=pooling)
    timings["load_model"] = time.perf_counter() - started - timings["data"]
    from tlzoo.training.train import train

    trained = train(extractor, modality, target, options=o, class_weights=weights, lora=lora,
                    output_dir=Path(output_dir) if output_dir is not None else None)
    timings.update(trained.timings)
    _describe_hardest(trained.metrics, target)
    recipe = {
        "source": src.to_dict(),
        "data": target.summary(),
        "strategy": trained.strategy,
        "strategy_reason": trained.reason,
        "requested_strategy": strategy,
        "head": head,
        "options": o.to_dict(),
        "hyperparameters": trained.hyperparameters,
        "trials": trained.trials,
        "feature_cache": trained.cache_stats,
        "num_processes": trained.num_processes,
        **({"ranking": ranking.to_dict()} if ranking is not None else {}),
    }
    from tlzoo.model import AdaptedModel

    model = AdaptedModel(
        trained.extractor, trained.head, task=TaskSpec(target.task, target.num_labels), label_names=target.label_names,
        head_spec=head, recipe=recipe, metrics=trained.metrics, history=trained.history,
        source={"name": src.name, "hub_id": src.hub_id, "revision": src.revision, "license": src.license,
                "modality": src.modality},
    )
    timings["total"] = time.perf_counter() - started
    result = AdaptResult(model=model, metrics=trained.metrics, history=trained.history, recipe=recipe,
                         output_dir=Path(output_dir) if output_dir is not None else None, timings=timings)
    if (output_dir is not None or push_to_hub) and trained.is_main_process:
        model.attachments.update(_render_plots(result))
    if output_dir is not None and trained.is_main_process:
        _write_outputs(result)
        checkpoints = Path(output_dir) / "checkpoints"
        if not o.keep_checkpoints and checkpoints.is_dir():  # the model is saved: they only served a resume
            import shutil

            shutil.rmtree(checkpoints, ignore_errors=True)
            logger.info("Removed the checkpoints in %s (keep_checkpoints=True keeps them).", checkpoints)
    if push_to_hub and trained.is_main_process:
        result.commit_url = model.push_to_hub(push_to_hub, token=token if isinstance(token, str) else None,
                                              private=hub_private, endpoint=hub_endpoint)
    return result


def _describe_hardest(metrics: dict[str, dict[str, Any]], target: Any) -> None:
    """Name the input of each split's hardest examples (its text or its file)."""
    from tlzoo.evaluation.hardest import describe_inputs

    for split, scores in metrics.items():
        if scores.get("hardest") and split in target.splits:
            describe_inputs(scores["hardest"], target.splits[split], target.input_column)


def _build_extractor(modality: Any, src: SourceModel, *, token: str | bool | None, pooling: str) -> Any:
    """The plugin's feature extractor of *src*; a Hub that cannot be reached is a :class:`HubError` with advice."""
    try:
        return modality.build_feature_extractor(src.hub_id, revision=src.revision, token=token, pooling=pooling)
    except OSError as exc:
        if (unreachable := unreachable_source_error(exc, src.hub_id)) is not None:
            raise unreachable from exc
        raise


def _check_lora_targets(lora: LoraSettings, src: SourceModel, token: str | bool | None) -> None:
    """``lora_target_modules`` that match nothing in the source's architecture fail here, before any weights load."""
    from tlzoo.features import backbone_skeleton
    from tlzoo.training.lora import check_lora_targets

    config = src.config
    if config is None:  # a zoo entry: its config.json is all that is read here
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(src.hub_id, revision=src.revision, token=token)
        except (OSError, ValueError) as exc:
            if (unreachable := unreachable_source_error(exc, src.hub_id)) is not None:
                raise unreachable from exc
            logger.debug("No config of %s (%s); the LoRA targets are checked when it loads.", src.hub_id, exc)
            return
    skeleton = backbone_skeleton(config)
    if skeleton is not None:
        check_lora_targets(lora, skeleton)


def _class_weights(value: Any, target: Any, balanced: Any) -> list[float] | None:
    if value is None:
        return None
    if target.task != "single_label_classification":
        raise ConfigurationError("class_weights apply to single-label classification only.")
    if value == "balanced":
        return balanced(target)
    if isinstance(value, list | tuple) and len(value) == target.num_labels:
        return [float(v) for v in value]
    raise ConfigurationError(f"class_weights must be 'balanced' or {target.num_labels} numbers, got {value!r}.")


def _render_plots(result: AdaptResult) -> dict[str, bytes]:
    """The training-curve and confusion-matrix PNGs that are saved and pushed with the model."""
    from tlzoo.evaluation.plots import render_model_plots

    return render_model_plots(result.history, result.metrics)


def _write_outputs(result: AdaptResult) -> None:
    assert result.output_dir is not None
    result.output_dir.mkdir(parents=True, exist_ok=True)
    result.model.save_pretrained(result.output_dir / "model")
    summary = {"metrics": result.metrics, "recipe": result.recipe, "timings": result.timings}
    from tlzoo.durable import write_atomic
    from tlzoo.jsonable import dumps

    write_atomic(result.output_dir / "results.json", dumps(summary))
    logger.info("Saved the metrics, recipe and timings to %s", result.output_dir / "results.json")
