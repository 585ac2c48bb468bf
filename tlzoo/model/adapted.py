"""The adapted model: a pretrained feature extractor + a new head, with the recipe that made it.

:class:`AdaptedModel` predicts on raw examples, saves to a folder (atomically),
reloads with :func:`load` (a folder or a Hub repo id) and pushes to the Hub. It
follows ``huggingface_hub``'s ``ModelHubMixin`` pattern -- ``_save_pretrained``
and ``_from_pretrained`` do the work, the public methods wrap them -- without
subclassing it: the mixin writes its own ``config.json`` (which would clash
with the backbone's) and its ``push_to_hub`` takes no ``endpoint``.

A saved folder::

    config.json, model.safetensors   when the head is linear and the family supports it: the
                                     whole model as a transformers classifier that
                                     ``pipeline()`` serves exactly (tlzoo.model.export)
    backbone/                        otherwise: the backbone in transformers format (kept out
                                     of the top of the folder, so that ``pipeline()`` refuses
                                     it instead of adding a random classifier)
    preprocessor_config.json |       the image processor / audio feature extractor /
    tokenizer.json, tokenizer_config.json   tokenizer (in backbone/ with the backbone)
    head.safetensors                 the head's weights (safetensors, never pickle)
    tlzoo.json                       format version, task, labels, source, head spec,
                                     extractor options, recipe, metrics, history, export
    README.md                        the model card (tlzoo.model.card)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tlzoo.errors import ConfigurationError, ModelLoadError, PluginError
from tlzoo.features import FeatureExtractor
from tlzoo.heads import TaskSpec, build_head, get_head_factory, parse_head
from tlzoo.jsonable import dumps
from tlzoo.model import card as _card

if TYPE_CHECKING:
    from tlzoo.plugins import Modality

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_NAME = "tlzoo.json"
HEAD_NAME = "head.safetensors"
#: Where a model that transformers' ``pipeline()`` cannot serve exactly keeps its backbone (a transformers
#: folder); an exported model holds a classifier at the top of its folder instead.
BACKBONE_DIR = "backbone"
#: The folder of :attr:`AdaptedModel.attachments` read back on load.
ATTACHMENTS_DIR = "plots"


def split_batch(inputs: Any, modality: Modality) -> tuple[list[Any], bool]:
    """Return ``(examples, single)``: how :meth:`AdaptedModel.predict` reads *inputs*.

    The modality's plugin decides what one example is
    (:attr:`~tlzoo.plugins.Modality.is_example`); anything else is taken as a
    batch of examples. With the default rule a string, bytes, a path, a mapping
    or an array is one example and a list, tuple or ``datasets`` column a batch.
    """
    if modality.is_example(inputs):
        return [inputs], True
    return list(inputs), False


class AdaptedModel(nn.Module):
    """A source model's feature layers plus a new head for the user's task.

    :param extractor: the pretrained backbone + preprocessor + pooling.
    :param head: the task layer, features ``[B, feature_size]`` -> ``[B, num_labels]``.
    :param task: problem type and number of outputs.
    :param label_names: class names in id order (``LABEL_0``, ... if ``None``);
        output names for regression (may be ``None``).
    :param head_spec: how to rebuild the head (``"linear"`` or ``{"name": ..., **options}``).
    :param recipe: what was trained, how and why (strategy, hyper-parameters, data).
    :param metrics: per split, e.g. ``{"test": {"accuracy": ..., "per_class": ...}}``.
    :param history: one dict per epoch (losses, validation metrics).
    :param source: ``{"name", "hub_id", "revision", "license", "modality"}`` of the source model.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        head: nn.Module,
        *,
        task: TaskSpec,
        label_names: list[str] | None,
        head_spec: str | dict[str, Any],
        recipe: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        history: list[dict[str, Any]] | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.head = head
        self.task = task
        if label_names is not None and len(label_names) != task.num_labels:
            raise ConfigurationError(f"{len(label_names)} label names for a task with {task.num_labels} outputs.")
        if label_names is None and task.problem_type != "regression":
            label_names = [f"LABEL_{i}" for i in range(task.num_labels)]
        self.label_names = list(label_names) if label_names is not None else None
        self.head_spec = head_spec
        self.recipe = dict(recipe or {})
        self.metrics = dict(metrics or {})
        self.history = list(history or [])
        #: Files saved and pushed with the model, ``{path in the folder: bytes}``: the plots
        #: ``adapt()`` draws (``plots/training_curves.png``, ``plots/confusion_matrix.png``),
        #: read back by :func:`load`.
        self.attachments: dict[str, bytes] = {}
        self.source = dict(source or {
            "name": extractor.source, "hub_id": extractor.source, "revision": extractor.revision,
            "license": None, "modality": extractor.modality,
        })  # fmt: skip

    @property
    def modality(self) -> str:
        """The input modality (``"image"``, ``"audio"``, ``"text"``, ...)."""
        return self.extractor.modality

    @property
    def output_names(self) -> list[str]:
        """Label names, or ``LABEL_i`` where none were given (regression)."""
        return self.label_names or [f"LABEL_{i}" for i in range(self.task.num_labels)]

    # --- inference ----------------------------------------------------------------
    def forward(self, values: Sequence[Any]) -> torch.Tensor:
        """Logits ``[len(values), num_labels]`` of raw examples (gradients on, current mode)."""
        first = next(self.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
        batch = {k: v.to(device) for k, v in self.extractor.preprocess(list(values)).items()}
        return self.head(self.extractor(**batch))

    @torch.no_grad()
    def logits(self, values: Sequence[Any], *, batch_size: int = 32) -> torch.Tensor:
        """Logits (values for regression) of raw examples: eval mode, no gradients, batched, on CPU."""
        values = list(values)
        was_training = self.training
        self.eval()
        try:
            parts = [self(values[i : i + batch_size]).float().cpu() for i in range(0, len(values), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(parts) if parts else torch.empty(0, self.task.num_labels)

    def predict(self, inputs: Any, *, top_k: int | None = 1, batch_size: int = 32, threshold: float = 0.5) -> Any:
        """Predict for one raw example or a batch of them (see :func:`split_batch`).

        One example gives one result, a batch a list of results. A result is,
        for single-label classification, ``{"label", "score"}`` (``top_k=1``) or
        the ``top_k`` best of them sorted by score (``top_k > 1``, ``None`` =
        all), scores being softmax probabilities; for multi-label, the labels
        whose sigmoid is at least *threshold*, sorted by score; for
        regression, ``{"value": float}`` (a list of floats for several outputs).
        """
        if top_k is not None and top_k < 1:
            raise ConfigurationError(f"top_k must be at least 1 (or None for all labels), got {top_k}.")
        from tlzoo.plugins import get_modality

        values, single = split_batch(inputs, get_modality(self.modality))
        outputs = self.logits(values, batch_size=batch_size)
        results = [self._result(row, top_k, threshold) for row in outputs]
        return results[0] if single else results

    def _result(self, row: torch.Tensor, top_k: int | None, threshold: float) -> Any:
        problem = self.task.problem_type
        if problem == "regression":
            values = [float(v) for v in row]
            return {"value": values[0] if len(values) == 1 else values}
        names = self.output_names
        if problem == "multi_label_classification":
            probs = row.sigmoid()
            picked = [(float(p), names[i]) for i, p in enumerate(probs) if float(p) >= threshold]
            return [{"label": name, "score": score} for score, name in sorted(picked, key=lambda x: -x[0])]
        probs = row.softmax(-1)
        k = len(names) if top_k is None else min(top_k, len(names))
        scores, ids = probs.topk(k)
        ranked = [{"label": names[int(i)], "score": float(s)} for s, i in zip(scores, ids)]
        return ranked[0] if top_k == 1 else ranked

    # --- saving ---------------------------------------------------------------------
    def to_config(self, pipeline: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``tlzoo.json`` content (JSON-ready)."""
        import tlzoo

        return {
            "format": "tlzoo",
            "format_version": FORMAT_VERSION,
            "tlzoo_version": tlzoo.__version__,
            "modality": self.modality,
            "task": {"problem_type": self.task.problem_type, "num_labels": self.task.num_labels},
            "num_labels": self.task.num_labels,
            "labels": self.label_names,
            "source": self.source,
            "head": {"spec": self.head_spec, "file": HEAD_NAME, "in_features": self.extractor.feature_size},
            "extractor": {"class": type(self.extractor).__qualname__, "options": self.extractor.options()},
            "recipe": self.recipe,
            "metrics": self.metrics,
            "history": self.history,
            "pipeline": pipeline or {"exported": False, "reason": "not attempted"},
        }

    def save_pretrained(
        self, path: str | os.PathLike[str], *, extra_files: Mapping[str, str | os.PathLike[str]] | None = None
    ) -> Path:
        """Save to the folder *path*, atomically; returns the folder.

        Everything is written to a temporary sibling folder which then replaces
        *path* (the old folder is renamed aside, the new one into place, the
        old one deleted). A failure leaves an existing folder as it was and no
        half-written one. An existing folder is replaced only if it is empty or
        a saved tlzoo model.

        The :attr:`attachments` (the plots ``adapt()`` drew) are written too.

        :param extra_files: ``{name in folder: file to copy}``, e.g.
            ``{"plots/training_curves.png": ...}`` (the model card links that plot
            and ``plots/confusion_matrix.png``).
        """
        return self._save_atomically(Path(path), extra_files=extra_files)

    def _save_atomically(
        self, path: Path, *, extra_files: Mapping[str, str | os.PathLike[str]] | None = None, repo_id: str | None = None
    ) -> Path:
        target = path.expanduser().absolute()
        if target.exists() and not target.is_dir():
            raise ConfigurationError(f"Cannot save the model to {target}: it is a file, not a folder.")
        if target.is_dir() and any(target.iterdir()) and not (target / CONFIG_NAME).is_file():
            raise ConfigurationError(
                f"Refusing to replace {target}: it is not empty and is not a saved tlzoo model. "
                "Choose a new folder, or empty that one first."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        from tlzoo.durable import clean_leftovers, finish_folder, fsync_dir, staging_prefix

        clean_leftovers(target)
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(target), dir=target.parent))
        try:
            for name, content in self.attachments.items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                (staging / name).write_bytes(content)
            for name, src in (extra_files or {}).items():
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, staging / name)
            self._save_pretrained(staging, model_name=target.name, repo_id=repo_id)
            finish_folder(staging)
            _swap_into_place(staging, target)
            fsync_dir(target.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("Saved the adapted model to %s", target)
        return target

    def _save_pretrained(self, folder: Path, *, model_name: str, repo_id: str | None = None) -> None:
        """Write every file of the saved layout into the existing, empty *folder*."""
        from safetensors.torch import save_file

        from tlzoo.model.export import export_classifier

        was_training = self.training
        self.eval()
        try:
            export = export_classifier(self.extractor, self.head, self.task, self.output_names)
        finally:
            self.train(was_training)
        if export.model is not None:
            export.model.save_pretrained(folder)
            if self.extractor.processor is not None:
                self.extractor.processor.save_pretrained(folder)
        else:  # in a sub-folder: transformers' pipeline() must not find a backbone to put a random head on
            self.extractor.save_pretrained(folder / BACKBONE_DIR)
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(folder / HEAD_NAME), metadata={"format": "pt"})
        config = self.to_config(export.info)
        text = dumps(config, allow_nan=True)
        (folder / CONFIG_NAME).write_text(text + "\n", encoding="utf-8")
        _card.write_model_card(folder, json.loads(text), model_name=model_name, repo_id=repo_id)

    # --- loading and pushing --------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike[str], **kwargs: Any) -> AdaptedModel:
        """Same as :func:`load`."""
        return load(path_or_repo_id, **kwargs)

    @classmethod
    def _from_pretrained(cls, folder: Path) -> AdaptedModel:
        """Rebuild the model from a local saved *folder*, refusing anything incomplete."""
        from safetensors.torch import load_file

        from tlzoo.model.export import quiet_exported_head
        from tlzoo.plugins import get_modality

        config = _read_config(folder)
        try:
            task = TaskSpec(config["task"]["problem_type"], int(config["task"]["num_labels"]))
            modality_name = config["modality"]
            head_spec = config["head"]["spec"]
            options = dict(config.get("extractor", {}).get("options") or {})
        except (KeyError, TypeError, ValueError, ConfigurationError) as exc:
            raise ModelLoadError(
                f"{folder / CONFIG_NAME} is incomplete or invalid ({exc!r}); save the model again."
            ) from exc
        head_file = folder / HEAD_NAME
        if not head_file.is_file():
            raise ModelLoadError(
                f"{folder} has no {HEAD_NAME}: the trained head is missing, so the model cannot be restored. "
                "Copy the whole saved folder (or save the model again)."
            )
        from tlzoo.model.integrity import check_weight_files

        backbone = folder / BACKBONE_DIR if (folder / BACKBONE_DIR).is_dir() else folder
        check_weight_files(backbone, head_file)
        try:
            modality = get_modality(modality_name)
        except PluginError as exc:
            raise ModelLoadError(f"Cannot load {folder}: it is a {modality_name} model. {exc}") from exc
        head_name = head_spec.get("name", "?") if isinstance(head_spec, dict) else str(head_spec)
        try:
            head_name = parse_head(head_spec)[0]
            get_head_factory(head_name)
        except ConfigurationError as exc:
            raise ModelLoadError(
                f"Cannot load {folder}: its head {head_name!r} is not registered by any installed plugin. "
                f"Install the plugin that provides the {head_name!r} head. ({exc})"
            ) from exc
        pipeline = config.get("pipeline") or {}
        try:
            with quiet_exported_head(pipeline.get("head_keys") if pipeline.get("exported") else None):
                extractor = modality.build_feature_extractor(str(backbone), **options)
        except ModelLoadError:
            raise
        except TypeError as exc:
            raise ModelLoadError(
                f"{folder / CONFIG_NAME} gives the {modality_name} feature extractor options it does not take "
                f"({exc}; options: {sorted(options)}). The model was saved by another version of its plugin; "
                "install that version, or save the model again."
            ) from exc
        except Exception as exc:  # the backbone's loader may raise anything: one error type here
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelLoadError(
                f"Cannot rebuild the backbone of {folder} from {backbone / 'config.json'} and its weights "
                f"({type(exc).__name__}: {first}). The folder is damaged or incomplete; save the model again."
            ) from exc
        try:
            head = build_head(head_spec, extractor.feature_size, task)
        except ConfigurationError as exc:
            raise ModelLoadError(f"Cannot rebuild the head that {folder / CONFIG_NAME} describes: {exc}") from exc
        try:
            head.load_state_dict(load_file(str(head_file)), strict=True)
        except Exception as exc:  # SafetensorError is no OSError or ValueError
            first = str(exc).strip().splitlines()
            raise ModelLoadError(
                f"{head_file} does not fit the {head_name!r} head on {extractor.feature_size} features for "
                f"{task.num_labels} outputs ({first[0] if first else type(exc).__name__} {' '.join(first[1:3])}). "
                "The file is damaged or belongs to another model; save the model again."
            ) from exc
        model = cls(
            extractor, head, task=task, label_names=config.get("labels"), head_spec=head_spec,
            recipe=config.get("recipe"), metrics=config.get("metrics"), history=config.get("history"),
            source=config.get("source"),
        )  # fmt: skip
        model.attachments = {p.relative_to(folder).as_posix(): p.read_bytes()
                             for p in sorted((folder / ATTACHMENTS_DIR).glob("*.png"))}
        model.eval()
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
        endpoint: str | None = None,
        create_pr: bool = False,
        extra_files: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> str:
        """Save to a temporary folder and push it as one commit to the Hub repo *repo_id*.

        Creates the repo if needed; the user's own saved folders are never
        touched. *extra_files* is as for :meth:`save_pretrained`. Returns the
        commit URL. Raises :class:`tlzoo.errors.HubError` (before any request
        when no token is found).
        """
        from tlzoo import hub

        token = hub.resolve_token(token)
        with tempfile.TemporaryDirectory(prefix="tlzoo-push-") as tmp:
            folder = self._save_atomically(Path(tmp) / repo_id.split("/")[-1], extra_files=extra_files, repo_id=repo_id)
            return hub.push_folder(
                folder, repo_id, private=private, token=token, commit_message=commit_message,
                revision=revision, endpoint=endpoint, create_pr=create_pr,
            )  # fmt: skip


def _swap_into_place(staging: Path, target: Path) -> None:
    """Move the finished *staging* folder to *target*, replacing an old one."""
    if not target.exists():
        os.rename(staging, target)
        return
    from tlzoo.durable import staging_prefix

    aside = target.parent / f"{staging_prefix(target, 'old')}{uuid.uuid4().hex[:8]}"
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        hint = " It looks like a plain transformers model: use it as a source (tlzoo.adapt(...))." if (
            folder / "config.json"
        ).is_file() else ""
        raise ModelLoadError(f"{folder} is not a tlzoo model: it has no {CONFIG_NAME}.{hint}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} cannot be read ({exc}); save the model again.") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path} is not a tlzoo model description (expected a JSON object).")
    version = config.get("format_version")
    if not isinstance(version, int):
        raise ModelLoadError(f"{path} has no valid format_version; it is not a tlzoo model description.")
    if version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{folder} was saved by a newer tlzoo ({config.get('tlzoo_version', '?')}, format {version}); this "
            f"tlzoo reads format {FORMAT_VERSION} and older. Upgrade: pip install -U tlzoo"
        )
    return config


def load(
    path_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> AdaptedModel:
    """Load an adapted model from a local folder, else from the Hub repo of that id.

    A Hub repo is downloaded with ``huggingface_hub.snapshot_download``
    (*revision*, *token*, *endpoint*, *cache_dir* are passed on). Raises
    :class:`tlzoo.errors.ModelLoadError` when the folder is not a complete
    tlzoo model (never a silently random head), :class:`tlzoo.errors.HubError`
    when the download fails.
    """
    folder = Path(path_or_repo_id).expanduser()
    if not folder.is_dir():
        from tlzoo import hub

        name = os.fspath(path_or_repo_id)
        if folder.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
            raise ModelLoadError(f"No saved model folder at {name!r} (and it is not a Hub repo id like 'user/name').")
        folder = hub.download_model(name, revision=revision, token=token, endpoint=endpoint, cache_dir=cache_dir)
    elif revision is not None:
        logger.warning("revision=%r is ignored for the local folder %s.", revision, folder)
    return AdaptedModel._from_pretrained(folder)
