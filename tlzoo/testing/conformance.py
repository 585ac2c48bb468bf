"""The plugin conformance kit: checks that a modality plugin gives tlzoo what it relies on.

A plugin author hands the kit the modality, a way to build a tiny source model
and a few examples; the kit builds the plugin's feature extractor and a model
with a random linear head on it, then checks, one named check at a time
(:data:`CHECKS`), everything tlzoo does with a modality: the record's fields,
claiming the source's config, the features' shape and dtype, batch/padding
invariance, ``is_example``, ``fingerprint``, rebuilding from ``options()`` (as
:func:`tlzoo.load` does), the cache key, layer groups and gradients, single and
batch ``predict``, save → :func:`tlzoo.load`, the processor (or none), the
``pipeline()`` export or its refusal, reading files and class folders,
``tlzoo predict FILE`` and one :func:`tlzoo.adapt`. A failure names the check,
what broke, and how to fix it::

    from tlzoo.testing import build_tiny_vit, check_plugin

    def test_image_plugin_conforms(tmp_path):
        check_plugin("image", build_tiny_vit, [image_a, image_b, image_c], tmp_path=tmp_path,
                     write_file=lambda image, path: image.save(path))

For one pytest test per check, share one :class:`PluginConformance` in a
module-scoped fixture and parametrize over :data:`CHECKS` (see
``plugins/tlzoo-image/tests/test_image_conformance.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlzoo.plugins.modality import Modality
from tlzoo.testing._conformance_checks import ConformanceChecks, ConformanceError, Skip

__all__ = ["CHECKS", "CheckResult", "ConformanceError", "ConformanceReport", "PluginConformance", "check_plugin"]

#: Every check, in the order :meth:`PluginConformance.run` runs them.
CHECKS: tuple[str, ...] = (
    "registered", "claims_source", "features", "batch_invariance", "is_example", "fingerprint",
    "rebuild_from_options", "cache_key", "layer_groups", "predict", "save_load", "processor", "pipeline_export",
    "read_file", "class_folders", "cli_predict", "adapt",
)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    :param status: ``"ok"``, ``"skip"`` (the check does not apply; *detail* says why) or ``"fail"``.
    :param detail: what the check saw, why it was skipped, or what broke.
    """

    name: str
    status: str
    detail: str = ""

    @property
    def skipped(self) -> bool:
        """Whether the check did not apply to this plugin."""
        return self.status == "skip"


@dataclass
class ConformanceReport:
    """What :meth:`PluginConformance.run` found, one :class:`CheckResult` per check run."""

    modality: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failures(self) -> dict[str, str]:
        """The failed checks' messages by check name."""
        return {r.name: r.detail for r in self.results if r.status == "fail"}

    @property
    def ok(self) -> bool:
        """Whether no check failed."""
        return not self.failures

    def __str__(self) -> str:
        lines = [f"tlzoo conformance of the {self.modality!r} modality:"]
        lines += [f"  {r.status.upper() if r.status != 'ok' else 'ok  '} {r.name}: {r.detail}" for r in self.results]
        return "\n".join(lines)


class PluginConformance(ConformanceChecks):
    """The conformance checks of one modality plugin, sharing one tiny model between them.

    :param modality: the modality's name, or its :class:`~tlzoo.plugins.Modality`
        record (which must then be the one registered under that name).
    :param build_source: ``build_source(path) -> folder``: writes a tiny source
        model of a family the plugin claims (a ``tlzoo.testing.build_tiny_*``
        builder, or the plugin's own) and returns its folder.
    :param examples: at least two raw examples, as users pass them to
        ``predict``, of different sizes (lengths, image sizes, durations), so
        batching pads some of them.
    :param tmp_path: an empty folder the kit may write into.
    :param labels: class names of the random head (at least two); examples are
        spread over them for the class-folder and ``adapt`` checks.
    :param write_file: ``write_file(example, path)``: writes one example as a
        file with the modality's first file extension, losslessly (PNG,
        ``FLOAT`` WAV, ...); without it the file checks are skipped.
    :param options: extractor options, passed to ``build_feature_extractor``
        (``{"pooling": "cls"}``).
    :param atol: largest difference allowed between features or scores that
        must agree.
    :param expect_pipeline: ``True``: saving must export a ``pipeline()``
        classifier; ``False``: it must refuse (with a reason); ``None``: as the
        plugin's :attr:`~tlzoo.plugins.Modality.pipeline_families` say.
    :param seed: seed of the random head.
    """

    def __init__(
        self,
        modality: str | Modality,
        build_source: Callable[[Path], str | os.PathLike[str]],
        examples: Sequence[Any],
        *,
        tmp_path: str | os.PathLike[str],
        labels: Sequence[str] = ("yes", "no"),
        write_file: Callable[[Any, Path], None] | None = None,
        options: dict[str, Any] | None = None,
        atol: float = 1e-4,
        expect_pipeline: bool | None = None,
        seed: int = 0,
    ) -> None:
        if len(examples) < 2:
            raise ValueError(f"the conformance kit needs two or more examples (different sizes), not {len(examples)}")
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"labels must be at least two distinct class names, got {list(labels)}")
        self.record = modality if isinstance(modality, Modality) else None
        self.name = modality.name if isinstance(modality, Modality) else modality
        self.build_source = build_source
        self.examples = list(examples)
        self.tmp_path = Path(tmp_path)
        self.labels = list(labels)
        self.write_file = write_file
        self.options = dict(options or {})
        self.atol = atol
        self.expect_pipeline = expect_pipeline
        self.seed = seed
        self._state: dict[str, tuple[bool, Any]] = {}

    # --- running ----------------------------------------------------------------------
    def run_check(self, name: str) -> CheckResult:
        """Run one check; returns its result, raises :class:`ConformanceError` when it fails."""
        if name not in CHECKS:
            from tlzoo.errors import did_you_mean

            raise ValueError(f"No conformance check called {name!r}; the checks are {', '.join(CHECKS)}."
                             + did_you_mean(name, CHECKS))
        from tlzoo.progress import library_progress_bars

        try:
            with library_progress_bars(hub=False, transformers=False, datasets=False):
                detail = getattr(self, f"check_{name}")()
        except Skip as skip:
            return CheckResult(name, "skip", str(skip))
        except ConformanceError as exc:
            raise ConformanceError(f"[{self.name}: {name}] {exc}") from exc.__cause__
        except Exception as exc:
            raise ConformanceError(f"[{self.name}: {name}] raised {type(exc).__name__}: {exc}") from exc
        return CheckResult(name, "ok", detail or "")

    def run(self, checks: Iterable[str] | None = None, *, skip: Iterable[str] = ()) -> ConformanceReport:
        """Run *checks* (default: all of :data:`CHECKS`) but *skip*, collecting every failure."""
        report = ConformanceReport(self.name)
        skipped = set(skip)
        for name in checks or CHECKS:
            if name in skipped:
                continue
            try:
                report.results.append(self.run_check(name))
            except ConformanceError as exc:
                report.results.append(CheckResult(name, "fail", str(exc)))
        return report

    # --- shared state, built once -------------------------------------------------------
    def _get(self, key: str, what: str, make: Callable[[], Any]) -> Any:
        if key not in self._state:
            try:
                self._state[key] = (True, make())
            except Exception as exc:  # kept, so every check that needs this reports the same failure
                self._state[key] = (False, exc)
                raise _failed(what, exc) from exc
        ok, value = self._state[key]
        if not ok:
            raise _failed(what, value) from value
        return value

    @property
    def modality(self) -> Modality:
        """The record registered under the modality's name."""
        from tlzoo.plugins import get_modality

        return self._get("modality", f"finding the registered {self.name!r} modality", lambda: get_modality(self.name))

    @property
    def source(self) -> Path:
        """The tiny source model's folder."""
        return self._get("source", "build_source(path)", lambda: Path(self.build_source(self.tmp_path / "source")))

    def build_extractor(self, source: str | os.PathLike[str] | None = None, **options: Any) -> Any:
        """A new extractor, built the way :func:`tlzoo.adapt` builds one (``revision``, ``token``, ``pooling``)."""
        options = {"revision": None, "token": None, "pooling": "auto", **self.options, **options}
        return self.modality.build_feature_extractor(str(source or self.source), **options)

    @property
    def extractor(self) -> Any:
        """The extractor the checks share."""
        return self._get("extractor", "build_feature_extractor(source, revision=None, token=None, pooling=...)",
                         self.build_extractor)

    @property
    def features(self) -> Any:
        """Features of all the examples, extracted in one batch."""
        return self._get("features", "extractor.extract(examples)", lambda: self.extractor.extract(self.examples))

    @property
    def model(self) -> Any:
        """An :class:`~tlzoo.model.AdaptedModel`: the extractor and a seeded random linear head."""
        def make() -> Any:
            import torch

            from tlzoo.heads import TaskSpec, build_head
            from tlzoo.model import AdaptedModel

            task = TaskSpec("single_label_classification", len(self.labels))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                head = build_head("linear", self.extractor.feature_size, task)
            return AdaptedModel(self.extractor, head, task=task, label_names=self.labels, head_spec="linear").eval()

        return self._get("model", "building an AdaptedModel on the extractor", make)

    @property
    def saved(self) -> Path:
        """The folder :attr:`model` was saved to."""
        return self._get("saved", "model.save_pretrained(folder)",
                         lambda: self.model.save_pretrained(self.tmp_path / "model"))

    @property
    def loaded(self) -> Any:
        """:attr:`saved`, loaded back with :func:`tlzoo.load`."""
        from tlzoo.model import load

        return self._get("loaded", "tlzoo.load(saved folder)", lambda: load(self.saved))

    @property
    def files(self) -> list[Path]:
        """The examples written as files (``write_file``), one per example."""
        if not self.modality.file_extensions:
            raise Skip(f"the {self.name!r} modality declares no file_extensions, so it reads no files")
        if self.write_file is None:
            raise Skip(f"pass write_file=... so the kit can write examples as {self.modality.file_extensions[0]} "
                        "files and check reading them")

        def make() -> list[Path]:
            folder = self.tmp_path / "files"
            folder.mkdir(parents=True, exist_ok=True)
            paths = [folder / f"example-{i}{self.modality.file_extensions[0]}" for i in range(len(self.examples))]
            for example, path in zip(self.examples, paths):
                self.write_file(example, path)
            return paths

        return self._get("files", "write_file(example, path)", make)


def _failed(what: str, exc: BaseException) -> ConformanceError:
    if isinstance(exc, ConformanceError):
        return ConformanceError(f"{what} failed: {exc}")
    return ConformanceError(f"{what} failed with {type(exc).__name__}: {exc}")


def check_plugin(
    modality: str | Modality,
    build_source: Callable[[Path], str | os.PathLike[str]],
    examples: Sequence[Any],
    *,
    tmp_path: str | os.PathLike[str],
    skip: Iterable[str] = (),
    **kwargs: Any,
) -> ConformanceReport:
    """Run every conformance check (but *skip*) on a modality plugin; raise one error listing all failures.

    Arguments are those of :class:`PluginConformance`. Returns the
    :class:`ConformanceReport` (``print(report)`` shows each check) when
    nothing failed; raises :class:`ConformanceError` otherwise.
    """
    report = PluginConformance(modality, build_source, examples, tmp_path=tmp_path, **kwargs).run(skip=skip)
    if report.failures:
        raise ConformanceError(f"{len(report.failures)} conformance check(s) failed.\n{report}")
    return report
