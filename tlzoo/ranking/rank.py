"""``tlzoo.rank``: which candidate source model suits the user's data, without fine-tuning any of them.

For each candidate the frozen backbone runs once over the target data, through
the persistent feature cache (so ``tlzoo.adapt(ranking.best, data)`` afterwards
extracts nothing), and the estimators of :mod:`tlzoo.ranking.estimators` score
the features of the **training split** against its labels: cross-validated
k-NN, LogME and a cross-validated linear probe. Their combined score (the mean
rank position over the estimators, :func:`~tlzoo.ranking.combine.combined_scores`)
orders the candidates.

The options ``adapt()`` also has are checked by the same
:class:`~tlzoo.options.AdaptOptions`, and the data is read and checked by the
same functions, with the same errors, before any model loads; it is split the
same way (``seed``, ``test_size``, ``validation_size``), and the held-out parts
adapt() would evaluate on are never scored. Once ranked, the winner's features
of those parts are extracted too (without their labels), so the cache holds
everything ``adapt(best, data)`` will ask for. A candidate that reads another
modality, or fails to load or extract, stays in the result with its error and
does not stop the others. Under ``torchrun`` / ``accelerate launch`` each
candidate's extraction is shared out between the processes as in ``adapt()``;
every process gets the same ranking, and only the main one logs progress and
writes the output folder.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlzoo.errors import ConfigurationError, DataError, ModalityNotAvailableError, TlzooError
from tlzoo.progress import library_progress_bars
from tlzoo.ranking.candidates import Candidate, expand_sources, resolve_candidates
from tlzoo.ranking.combine import order_rows
from tlzoo.ranking.estimators import (
    ESTIMATORS,
    estimator_metric,
    knn_score,
    linear_probe_score,
    load_dependencies,
    logme,
)
from tlzoo.ranking.result import Ranking, write_outputs

if TYPE_CHECKING:
    import numpy as np

    from tlzoo.data import TargetData
    from tlzoo.plugins.modality import Modality

logger = logging.getLogger(__name__)

__all__ = ["CHECKED", "MIN_TRAIN_EXAMPLES", "check_arguments", "rank", "rank_for_adapt"]

#: The fewest training examples the estimators can score (two: one to learn from, one to predict).
MIN_TRAIN_EXAMPLES = 2
#: The settings :func:`rank` shares with ``adapt()`` and checks with :class:`~tlzoo.options.AdaptOptions`.
CHECKED = ("task", "seed", "test_size", "validation_size", "batch_size", "pooling", "mixed_precision",
           "dataloader_num_workers")


# --- checks and data ------------------------------------------------------------------------
def check_arguments(*, k: Any, folds: Any, **shared: Any) -> str:
    """Check the settings of :func:`rank` before anything is read; returns the canonical task name.

    :param k: neighbours of k-NN (at least 1).
    :param folds: cross-validation folds (at least 2).
    :param shared: the options of :data:`CHECKED`, checked by
        :class:`~tlzoo.options.AdaptOptions` exactly as ``adapt()`` checks them.
    :raises ConfigurationError: a value that is wrong, with what is expected.
    """
    from tlzoo.options import AdaptOptions
    from tlzoo.tasks import check_task

    for name, value, least in (("k", k, 1), ("folds", folds, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigurationError(f"{name} must be an integer of at least {least}, got {value!r}.")
    unknown = set(shared) - set(CHECKED)
    if unknown:
        raise ConfigurationError(f"check_arguments() takes k, folds and {', '.join(CHECKED)}; got {sorted(unknown)}.")
    return check_task(AdaptOptions(**shared).task)


def _load_data(data: Any, candidates: list[Candidate], *, modality: str | None,
               load: dict[str, Any]) -> tuple[Modality, TargetData, dict[str, str]]:
    """The data's modality and :class:`TargetData`, read and checked as ``adapt()`` does.

    The modality is *modality* when given, else the first of the candidates'
    modalities (most common first) that has an installed plugin and that the
    data has a column of. Also returns the candidates' modalities that have no
    plugin, with the error that says which plugin to install.

    :raises ModalityNotAvailableError: no candidate's modality has a plugin.
    :raises DataError: the data as the first modality tried reads it cannot be used.
    """
    from tlzoo.data import load_target_data, read_data
    from tlzoo.plugins import get_modality

    if modality is not None:
        tried = [modality]
    else:
        counts = Counter(c.record.modality for c in candidates if c.record is not None)
        tried = [name for name, _ in counts.most_common()]
    available: list[Modality] = []
    missing: dict[str, ModalityNotAvailableError] = {}
    for name in tried:
        try:
            available.append(get_modality(name))
        except ModalityNotAvailableError as exc:
            missing[name] = exc
    if not available:
        raise next(iter(missing.values()))
    splits = read_data(data, modality=available[0])  # read once, whichever modality then reads it
    errors: list[DataError] = []
    for mod in available:
        try:
            return mod, load_target_data(splits, mod, **load), {name: str(exc) for name, exc in missing.items()}
        except DataError as exc:
            errors.append(exc)
    raise errors[0]  # the data as the most common candidate modality reads it


def _labels(target: TargetData) -> np.ndarray:
    """The train split's labels as the estimators take them (class ids, multi-hot rows, values)."""
    import numpy as np

    from tlzoo.data import column_values

    values = column_values(target.splits["train"], target.label_column)
    if target.task == "multi_label_classification":
        multi_hot = np.zeros((len(values), target.num_labels), dtype=np.int64)
        for row, ids in enumerate(values):
            multi_hot[row, list(ids)] = 1
        return multi_hot
    if target.task == "regression":
        return np.asarray(values, dtype=np.float64)
    return np.asarray(values, dtype=np.int64)


@dataclass
class _Job:
    """What every candidate is scored with: the data, its labels, the accelerator and the settings."""

    modality: Modality
    target: TargetData
    labels: np.ndarray
    accelerator: Any
    k: int
    folds: int
    seed: int
    batch_size: int
    pooling: str
    token: Any
    progress: bool
    num_workers: int

    @property
    def main(self) -> bool:
        """Whether this is the process that logs and writes."""
        return bool(self.accelerator.is_main_process)


# --- rank -----------------------------------------------------------------------------------
def _bars_follow_progress(function: Callable[..., Ranking]) -> Callable[..., Ranking]:
    """With ``progress=False``, also hide the libraries' bars (downloads, weight loading, data mapping)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Ranking:
        if kwargs.get("progress", True):
            return function(*args, **kwargs)
        with library_progress_bars(hub=False, transformers=False, datasets=False):
            return function(*args, **kwargs)

    return wrapper


@_bars_follow_progress
def rank(
    sources: Any,
    data: Any,
    *,
    input_column: str | None = None,
    label_column: str | None = None,
    task: str = "auto",
    modality: str | None = None,
    seed: int = 0,
    progress: bool = True,
    output_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    k: int = 20,
    folds: int = 5,
    test_size: float = 0.2,
    validation_size: float = 0.1,
    pooling: str = "auto",
    mixed_precision: str | None = None,
    dataloader_num_workers: int = 0,
    registry: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    warm_cache: bool = True,
) -> Ranking:
    """Rank candidate source models by how well their frozen features fit the target data.

    >>> ranking = tlzoo.rank(["all-minilm-l6-v2", "bge-small-en-v1.5"], "reviews.csv")  # doctest: +SKIP
    >>> result = tlzoo.adapt(ranking.best, "reviews.csv")  # doctest: +SKIP

    :param sources: zoo names, Hub ids or local model folders, or a zoo pattern
        (``"*minilm*"``: shell wildcards on names and Hub ids), or a list mixing them.
    :param data: what ``adapt()`` accepts (a ``Dataset``/``DatasetDict``, a DataFrame,
        a Hub dataset id, a folder, a CSV/JSON/Parquet file).
    :param input_column: the column of inputs (found by modality when ``None``).
    :param label_column: the column of labels.
    :param task: ``auto``, ``single_label_classification``, ``multi_label_classification`` or ``regression``.
    :param modality: the data's modality; by default the candidates' (the most common one
        that the data has a column of). It also restricts what a pattern in *sources* matches.
    :param seed: seeds the split (as in ``adapt()``) and the cross-validation folds.
    :param progress: show progress bars (``False`` hides the libraries' too).
    :param output_dir: where to write ``ranking.json`` and the bar chart ``ranking.png``.
    :param batch_size: examples per forward pass while extracting features.
    :param k: neighbours of the k-NN estimator (capped on small classes).
    :param folds: cross-validation folds of k-NN and the linear probe (capped on small classes).
    :param test_size: as in ``adapt()``: the part of the data held out as test when it has
        none, never scored here (give the value you will give ``adapt()``).
    :param validation_size: as in ``adapt()``; likewise never scored.
    :param pooling: the feature extractors' pooling, as in ``adapt()`` (the cache key includes it).
    :param mixed_precision: ``no``, ``fp16``, ``bf16`` or ``fp8`` for the forward passes (accelerate's).
    :param dataloader_num_workers: worker processes that preprocess batches.
    :param registry: a registry file merged over the zoo.
    :param token: Hub token for private source models.
    :param revision: Hub revision, for every candidate.
    :param warm_cache: afterwards, also extract the winner's features of the held-out splits
        (validation, test: never scored), so that ``adapt(ranking.best, data)`` with the same
        split extracts nothing; the other candidates' features cover the training split only.
    :returns: a :class:`~tlzoo.Ranking`, best first.
    :raises tlzoo.TlzooError: bad arguments, no sources, a pattern that matches nothing, no
        candidate that can be found, or data that ``adapt()`` would refuse: all before any
        model loads. A candidate that fails later is reported in the ranking instead.
    """
    started = time.perf_counter()
    task = check_arguments(k=k, folds=folds, task=task, seed=seed, test_size=test_size,
                           validation_size=validation_size, batch_size=batch_size, pooling=pooling,
                           mixed_precision=mixed_precision, dataloader_num_workers=dataloader_num_workers)
    candidates = resolve_candidates(expand_sources(sources, modality=modality, registry=registry),
                                    revision=revision, registry=registry, token=token)
    data_modality, target, missing = _load_data(
        data, candidates, modality=modality,
        load={"input_column": input_column, "label_column": label_column, "task": task, "seed": seed,
              "test_size": test_size, "validation_size": validation_size},
    )
    if len(target.splits["train"]) < MIN_TRAIN_EXAMPLES:
        raise DataError(f"Ranking needs at least {MIN_TRAIN_EXAMPLES} training examples; the train split has "
                        f"{len(target.splits['train'])}.")
    from tlzoo.training.train import make_accelerator

    job = _Job(data_modality, target, _labels(target),
               make_accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=1, report_to=None,
                                output_dir=None, seed=seed),
               k=k, folds=folds, seed=seed, batch_size=batch_size, pooling=pooling, token=token, progress=progress,
               num_workers=dataloader_num_workers)
    load_dependencies()  # not counted in the first candidate's seconds
    rows = []
    for number, candidate in enumerate(candidates, 1):
        _check_modality(candidate, job, missing)
        if job.main and candidate.error is not None:
            logger.warning("Not ranking %s: %s", candidate.source, candidate.error)
        elif job.main:
            logger.info("Ranking %d/%d: %s", number, len(candidates), candidate.source)
        rows.append(_score(candidate, job))
    rows = order_rows(rows)
    if warm_cache and rows[0]["error"] is None and len(target.splits) > 1:
        _warm_cache(rows[0], next(c for c in candidates if c.source == rows[0]["source"]), job)
    ranking = Ranking(rows, task=target.task,
                      metrics={name: estimator_metric(name, target.task) for name in ESTIMATORS},
                      data={**target.summary(), "modality": data_modality.name, "scored_split": "train",
                            "scored_examples": len(target.splits["train"])},
                      output_dir=Path(output_dir) if output_dir is not None else None)
    ranking.seconds = time.perf_counter() - started
    if ranking.output_dir is not None and job.main:
        write_outputs(ranking, ranking.output_dir)
    return ranking


def rank_for_adapt(sources: Any, data: Any, options: Any) -> Ranking:
    """Rank *sources* as ``adapt(sources, data, options)`` needs: with the options ``adapt()`` shares with :func:`rank`.

    What ``tlzoo.adapt`` runs when its source is a list of candidates or a zoo
    pattern. The split settings are *options*' (so the winner's held-out features
    are cached for the ``adapt()`` that follows and nothing is extracted twice);
    the ranking's ``ranking.json`` and ``ranking.png`` go to ``<output_dir>/ranking``
    when *options* has an ``output_dir``.

    :param options: the :class:`~tlzoo.options.AdaptOptions` of the ``adapt()`` call.
    :raises tlzoo.TlzooError: as :func:`rank`, and when no candidate could be ranked.
    """
    o = options
    ranking = rank(sources, data, input_column=o.input_column, label_column=o.label_column, task=o.task, seed=o.seed,
                   progress=o.progress, batch_size=o.batch_size, test_size=o.test_size,
                   validation_size=o.validation_size, pooling=o.pooling, mixed_precision=o.mixed_precision,
                   dataloader_num_workers=o.dataloader_num_workers, registry=o.registry, token=o.token,
                   revision=o.revision,
                   output_dir=Path(o.output_dir) / "ranking" if o.output_dir is not None else None)
    best = ranking.best  # raises, with every candidate's error, when none could be ranked
    if ranking.rows and _is_main_process():
        logger.info("Adapting %s, the best of %d candidates (combined score %.3f).", best, len(ranking.rows),
                    ranking.rows[0]["score"])
    return ranking


def _is_main_process() -> bool:
    """Whether this is the main process (always, outside ``torchrun`` / ``accelerate launch``)."""
    from accelerate import PartialState

    return bool(PartialState().is_main_process)


def _check_modality(candidate: Candidate, job: _Job, missing: dict[str, str]) -> None:
    """A candidate whose modality has no plugin, or is not the data's, gets its error (it is reported, not dropped)."""
    record = candidate.record
    if candidate.error is not None or record is None or record.modality == job.modality.name:
        return
    if record.modality in missing:
        candidate.error = missing[record.modality]
    else:
        candidate.error = (f"reads {record.modality}, but the data's input column {job.target.input_column!r} "
                           f"holds {job.modality.name}")


# --- one candidate --------------------------------------------------------------------------
def _empty_row(candidate: Candidate) -> dict[str, Any]:
    record = candidate.record
    return {"rank": None, "source": candidate.source, "score": None, **dict.fromkeys(ESTIMATORS), "seconds": 0.0,
            "error": candidate.error, "hub_id": record.hub_id if record else None,
            "modality": record.modality if record else None, "feature_size": None, "feature_cache": None,
            "timings": {}}


def _lap(row: dict[str, Any], name: str, since: float) -> float:
    """Record the seconds since *since* as ``row["timings"][name]``; returns now."""
    now = time.perf_counter()
    row["timings"][name] = round(now - since, 4)
    return now


def _score(candidate: Candidate, job: _Job) -> dict[str, Any]:
    """One row of the ranking: the candidate's estimator values, or its error."""
    import numpy as np

    row = _empty_row(candidate)
    if candidate.error is not None:
        return row
    started = lap = time.perf_counter()
    extractor = None
    try:
        from tlzoo.features.extraction import cached_features

        extractor = _build_extractor(job, candidate)
        lap = _lap(row, "load", lap)
        tables, stats = cached_features(extractor, job.modality, {"train": job.target.splits["train"]},
                                        job.target.input_column, job.accelerator, batch_size=job.batch_size,
                                        num_workers=job.num_workers, progress=job.progress)
        train = tables["train"]
        features = train[np.arange(len(train))]
        row.update(feature_size=int(features.shape[1]), feature_cache=stats)
        lap = _lap(row, "features", lap)
        task, labels = job.target.task, job.labels
        row["knn"] = knn_score(features, labels, task, k=job.k, folds=job.folds, seed=job.seed)
        lap = _lap(row, "knn", lap)
        row["logme"] = logme(features, labels, task)
        lap = _lap(row, "logme", lap)
        row["linear_probe"] = linear_probe_score(features, labels, task, folds=job.folds, seed=job.seed)
        _lap(row, "linear_probe", lap)
    except Exception as exc:  # one candidate must not stop the others
        if job.main:
            logger.warning("Could not rank %s: %s", candidate.source, exc)
            logger.debug("Ranking %s failed", candidate.source, exc_info=True)
        row["error"] = str(exc) if isinstance(exc, TlzooError) else f"{type(exc).__name__}: {exc}"
        row.update(dict.fromkeys(ESTIMATORS))
    finally:
        del extractor
        _release(job.accelerator)
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def _warm_cache(row: dict[str, Any], candidate: Candidate, job: _Job) -> None:
    """Extract the winner's features of the held-out splits too (never scored), so ``adapt(best, data)`` finds all.

    Only the winner's: every candidate's would cost ``N`` extractions of
    splits that only the model adapted next needs. A failure here is logged;
    the ranking stands.
    """
    from tlzoo.features.extraction import cached_features

    started = time.perf_counter()
    extractor = None
    try:
        extractor = _build_extractor(job, candidate)
        _, stats = cached_features(extractor, job.modality, job.target.splits, job.target.input_column,
                                   job.accelerator, batch_size=job.batch_size, num_workers=job.num_workers,
                                   progress=job.progress)
        row["feature_cache"] = {"cached": row["feature_cache"]["cached"],
                                "computed": row["feature_cache"]["computed"] + stats["computed"]}
    except Exception as exc:  # the ranking is done; a cold cache only makes adapt() slower
        if job.main:
            logger.warning("Could not extract the held-out features of %s for adapt(): %s", candidate.source, exc)
            logger.debug("Warming the cache for %s failed", candidate.source, exc_info=True)
    finally:
        del extractor
        _release(job.accelerator)
    _lap(row, "held_out_features", started)
    row["seconds"] = round(row["seconds"] + time.perf_counter() - started, 3)


def _release(accelerator: Any) -> None:
    """Give a finished candidate's accelerator memory back; on the CPU dropping the reference is enough.

    (A full ``gc.collect()`` per candidate cost more than scoring it on small models.)
    """
    if accelerator.device.type == "cuda":
        import torch

        gc.collect()
        torch.cuda.empty_cache()


def _build_extractor(job: _Job, candidate: Candidate) -> Any:
    """The candidate's feature extractor, as ``adapt()`` builds it (the same cache key)."""
    from tlzoo.hub import unreachable_source_error

    record = candidate.record
    if record is None:  # only resolved candidates get this far
        raise ValueError(f"{candidate.source} was not resolved")
    try:
        return job.modality.build_feature_extractor(record.hub_id, revision=record.revision, token=job.token,
                                                    pooling=job.pooling)
    except OSError as exc:
        if (unreachable := unreachable_source_error(exc, record.hub_id)) is not None:
            raise unreachable from exc
        raise
