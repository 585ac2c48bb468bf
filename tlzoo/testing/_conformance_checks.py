"""The checks of the plugin conformance kit, one method each (:mod:`tlzoo.testing.conformance` runs them).

Each ``check_<name>`` returns a line saying what it saw, raises :class:`Skip`
when it does not apply to the plugin, and raises :class:`ConformanceError`
saying what broke and how to fix it. They read the state that
:class:`~tlzoo.testing.conformance.PluginConformance` builds once and shares.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tlzoo.plugins.modality import Modality


class ConformanceError(AssertionError):
    """A plugin breaks what tlzoo relies on; the message names the check, what broke and how to fix it."""


class Skip(Exception):
    """A check that does not apply to this plugin (the reason is reported)."""


def _close(a: Any, b: Any) -> float:
    """Largest |a - b| of two tensors (``inf`` when their shapes differ)."""
    if tuple(a.shape) != tuple(b.shape):
        return float("inf")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def _scores(prediction: Any) -> dict[str, float]:
    return {p["label"]: float(p["score"]) for p in prediction}


class ConformanceChecks:
    """The check methods; :class:`~tlzoo.testing.conformance.PluginConformance` provides the state they use."""

    name: str
    record: Modality | None
    examples: list[Any]
    labels: list[str]
    options: dict[str, Any]
    tmp_path: Path
    atol: float
    expect_pipeline: bool | None
    modality: Modality
    source: Path
    extractor: Any
    features: Any
    model: Any
    saved: Path
    loaded: Any
    files: list[Path]
    build_extractor: Callable[..., Any]
    _get: Callable[[str, str, Callable[[], Any]], Any]

    def _scores_agree(self, got: Any, expected: Any, what: str) -> float:
        got, expected = _scores(got), _scores(expected)
        if set(got) != set(expected):
            raise ConformanceError(f"{what}: labels {sorted(got)} instead of {sorted(expected)}")
        diff = max(abs(got[k] - expected[k]) for k in got)
        if diff > self.atol:
            raise ConformanceError(f"{what}: scores differ by {diff:.2e} (> atol {self.atol:g})")
        return diff

    # --- the checks ------------------------------------------------------------------
    def check_registered(self) -> str:
        """The modality is registered (this record, when one was given) and its fields are well-formed."""
        from tlzoo import plugins

        found = plugins.modalities()
        if self.name not in found:
            raise ConformanceError(
                f"no plugin registers a {self.name!r} modality (registered: {', '.join(sorted(found)) or 'none'}). "
                "Install the plugin (its `tlzoo` entry point) or call tlzoo.plugins.register_plugin(module) first; "
                f"plugins that failed: {plugins.plugin_errors() or 'none'}")
        m = found[self.name]
        if self.record is not None and m != self.record:
            raise ConformanceError(f"the {self.name!r} modality registered is not the Modality record given: another "
                                   "plugin registered later replaces it (see the warning), or it is not registered")
        problems = _field_problems(m)
        if problems:
            raise ConformanceError("the Modality record is malformed: " + "; ".join(problems))
        owner = next((p.name for p in plugins.list_plugins() if self.name in p.modalities), "?")
        return f"registered by plugin {owner!r}, package {m.package!r}, priority {m.priority}"

    def check_claims_source(self) -> str:
        """The modality claims the source's config, and no plugin of higher priority takes it."""
        from transformers import AutoConfig

        from tlzoo.plugins import modalities
        from tlzoo.registry import resolve_source

        config = AutoConfig.from_pretrained(str(self.source))
        if not self.modality.claims(config):
            raise ConformanceError(
                f"the modality does not claim the source's config (model_type {config.model_type!r}): add it to "
                "model_types, or return True from claims_config(config)")
        resolved = resolve_source(str(self.source)).modality
        if resolved != self.name:
            other = modalities()[resolved]
            raise ConformanceError(
                f"tlzoo reads the source as {resolved!r}: that modality also claims {config.model_type!r} with "
                f"priority {other.priority} >= {self.modality.priority}; raise this modality's priority")
        return f"claims model_type {config.model_type!r}"

    def check_features(self) -> str:
        """``preprocess`` gives CPU tensors and ``forward`` ``[batch, feature_size]`` floats (``sample_inputs`` too)."""
        import torch

        from tlzoo.features import FeatureExtractor

        ex = self.extractor
        if not isinstance(ex, FeatureExtractor):
            raise ConformanceError(f"build_feature_extractor returned {type(ex).__name__}, not a "
                                   "tlzoo.features.FeatureExtractor subclass")
        if ex.modality != self.name:
            raise ConformanceError(f"{type(ex).__name__}.modality is {ex.modality!r}; set the class attribute "
                                   f"modality = {self.name!r} (saved models record it, and load by it)")
        batch = ex.preprocess(self.examples)
        if not isinstance(batch, dict) or not all(isinstance(v, torch.Tensor) for v in batch.values()):
            raise ConformanceError("preprocess(values) must return a dict of tensors (run in data-loader workers)")
        for key, value in batch.items():
            if value.device.type != "cpu" or not value.ndim or len(value) != len(self.examples):
                raise ConformanceError(f"preprocess gave {key!r} of shape {tuple(value.shape)} on {value.device}: "
                                       f"every tensor must be on the CPU with the batch ({len(self.examples)}) first")
        ex.eval()
        with torch.no_grad():
            out = ex(**batch)
        expected = (len(self.examples), ex.feature_size)
        if tuple(out.shape) != expected or not out.is_floating_point():
            raise ConformanceError(f"forward gave {tuple(out.shape)} {out.dtype}, expected floats of shape {expected} "
                                   "[batch, feature_size]: pool() must reduce to one vector per example, and "
                                   "feature_size must be its width")
        if not torch.isfinite(out).all():
            raise ConformanceError("the features hold NaN or inf")
        samples = self.modality.sample_inputs(ex) if self.modality.sample_inputs else []
        if samples and tuple(ex.extract(samples).shape) != (len(samples), ex.feature_size):
            raise ConformanceError("sample_inputs(extractor) gave examples the extractor does not turn into features")
        return f"[batch, {ex.feature_size}] {out.dtype}" + (f"; {len(samples)} sample_inputs" if samples else "")

    def check_batch_invariance(self) -> str:
        """Each example's features are the same alone as in a batch with longer and shorter ones."""
        worst = 0.0
        for i, example in enumerate(self.examples):
            diff = _close(self.extractor.extract([example])[0], self.features[i])
            if diff > self.atol:
                raise ConformanceError(
                    f"the features of example {i} differ by {diff:.2e} (> atol {self.atol:g}) between extracting it "
                    f"alone and in a batch of {len(self.examples)}: pool() must leave out the padding preprocess adds "
                    "(use the attention mask, or a tlzoo_-prefixed tensor of lengths), and the backbone must not see "
                    "it (run such examples one by one in forward)")
            worst = max(worst, diff)
        return f"max |diff| {worst:.1e}"

    def check_is_example(self) -> str:
        """``is_example`` says each example is one example and a list of them a batch."""
        is_example = self.modality.is_example
        wrong = [i for i, example in enumerate(self.examples) if not is_example(example)]
        if wrong:
            raise ConformanceError(
                f"Modality.is_example(example) is False for examples {wrong} ({type(self.examples[wrong[0]]).__name__})"
                ": predict(example) would read one example as a batch; pass is_example= that recognises one example "
                "(the default takes every list and tuple for a batch)")
        if is_example(list(self.examples)):
            raise ConformanceError("Modality.is_example(list_of_examples) is True: predict([x, y]) would take the "
                                   "list for one example")
        return "one example vs a list of them"

    def check_fingerprint(self) -> str:
        """``fingerprint`` gives bytes, the same for equal examples and different for different ones."""
        import copy

        digests = []
        for i, example in enumerate(self.examples):
            digest = self.modality.fingerprint(example)
            if not isinstance(digest, bytes) or not digest:
                raise ConformanceError(f"fingerprint(example) gave {type(digest).__name__}, expected non-empty bytes")
            if self.modality.fingerprint(copy.deepcopy(example)) != digest:
                raise ConformanceError(f"fingerprint of example {i} changes between two equal copies: it must digest "
                                       "the content only (it keys the feature cache)")
            digests.append(digest)
        for i in range(len(digests)):
            for j in range(i):
                if digests[i] == digests[j] and _close(self.features[i], self.features[j]) > self.atol:
                    raise ConformanceError(f"examples {j} and {i} have different features but the same fingerprint: "
                                           "the feature cache would give one the other's features")
        return f"{len(digests[0])}-byte digests"

    def check_rebuild_from_options(self) -> str:
        """``build_feature_extractor(folder, **extractor.options())`` (what :func:`tlzoo.load` calls) rebuilds it."""
        options = self.extractor.options()
        if not isinstance(options, dict) or json.loads(json.dumps(options, default=repr)) != options:
            raise ConformanceError(f"options() gave {options!r}: it must be a dict of JSON values (for tlzoo.json)")
        rebuilt = self.modality.build_feature_extractor(str(self.source), **options)
        if rebuilt.options() != options:
            raise ConformanceError(f"rebuilt with options() {options}, the extractor reports {rebuilt.options()}: "
                                   "options() must return the keyword arguments that rebuild it")
        diff = _close(rebuilt.extract(self.examples), self.features)
        if diff > self.atol:
            raise ConformanceError(f"rebuilt from options() the features differ by {diff:.2e}: options() leaves out a "
                                   "setting (a pooling, a length limit) that from_pretrained takes")
        return f"options {options}"

    def check_cache_key(self) -> str:
        """The cache key is the same when rebuilt, and changes when the weights change."""
        import torch

        key = self.extractor.cache_key()
        rebuilt = self.build_extractor()
        if not isinstance(key, str) or not key or rebuilt.cache_key() != key:
            raise ConformanceError("cache_key() differs between two extractors built from the same source: features "
                                   "would never be found in the cache again (keep random or per-object values out "
                                   "of it: processor_fingerprint, options)")
        with torch.no_grad():
            for parameter in rebuilt.backbone.parameters():
                parameter.add_(0.5)
        if rebuilt.cache_key() == key:
            raise ConformanceError("cache_key() stays the same when the backbone's weights change: features of other "
                                   "weights would be served from the cache (keep weights_fingerprint() in the key)")
        return f"key {key[:12]}..."

    def check_layer_groups(self) -> str:
        """``layer_groups()`` holds every backbone parameter once, and gradients reach the backbone."""
        ex = self.build_extractor()
        groups = ex.layer_groups()
        ids = [id(p) for g in groups for p in g.parameters]
        params = {id(p) for p in ex.backbone.parameters()}
        if not groups or len(ids) != len(set(ids)) or set(ids) != params:
            raise ConformanceError(
                f"layer_groups() must hold every backbone parameter exactly once ({len(groups)} groups, "
                f"{len(set(ids) & params)}/{len(params)} parameters, {len(ids) - len(set(ids))} repeated): partial "
                "fine-tuning and per-layer learning rates rely on it")
        ex.train()
        ex(**ex.preprocess(self.examples[:2])).float().sum().backward()
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in ex.backbone.parameters()):
            raise ConformanceError("no gradient reaches the backbone: forward must not detach the features or run "
                                   "under torch.no_grad (fine-tuning strategies train through it)")
        return f"{len(groups)} groups: {', '.join(g.name for g in groups[:3])}{', ...' if len(groups) > 3 else ''}"

    def check_predict(self) -> str:
        """``predict(x)`` gives one result, ``predict([x, y])`` a list of two, and they agree."""
        x, y = self.examples[:2]
        if not self.modality.is_example(x):
            raise ConformanceError(f"predict(example) takes the {type(x).__name__} for a batch of examples: "
                                   "Modality.is_example must say that one example is one (see check is_example)")
        single = self.model.predict(x)
        if not isinstance(single, dict) or set(single) != {"label", "score"}:
            raise ConformanceError(f"predict(example) gave {type(single).__name__} of length {len(single)}, not one "
                                   "{'label', 'score'}: Modality.is_example must say the example is one example")
        batch = self.model.predict([x, y], top_k=None)
        if not isinstance(batch, list) or len(batch) != 2:
            raise ConformanceError("predict([x, y]) did not give a list of two results")
        self._scores_agree(self.model.predict(x, top_k=None), batch[0], "predict(x) and predict([x, y])[0]")
        return f"predict(x) = {single['label']!r}"

    def check_save_load(self) -> str:
        """save_pretrained → :func:`tlzoo.load` gives the same extractor class, options and predictions."""
        loaded = self.loaded
        if type(loaded.extractor) is not type(self.extractor) or loaded.modality != self.name:
            raise ConformanceError(f"tlzoo.load rebuilt a {type(loaded.extractor).__name__} ({loaded.modality!r}) "
                                   f"instead of a {type(self.extractor).__name__}")
        if loaded.extractor.options() != self.extractor.options():
            raise ConformanceError(f"loaded options {loaded.extractor.options()} != saved {self.extractor.options()}")
        diff = _close(loaded.logits(self.examples), self.model.logits(self.examples))
        if diff > self.atol:
            raise ConformanceError(f"the loaded model's logits differ by {diff:.2e}: the extractor rebuilt from the "
                                   "saved folder is not the saved one (does save_pretrained write everything "
                                   "from_pretrained reads?)")
        return f"logits max |diff| {diff:.1e}"

    def check_processor(self) -> str:
        """No processor saves and loads as none; a processor round-trips through the saved folder."""
        proc, loaded = self.extractor.processor, self.loaded.extractor
        if proc is None:
            if loaded.processor is not None:
                raise ConformanceError("the extractor has no processor but the loaded one has one")
            return "no processor: the extractor makes its tensors itself"
        if loaded.processor is None or loaded.processor_fingerprint() != self.extractor.processor_fingerprint():
            raise ConformanceError(f"the {type(proc).__name__} does not round-trip through the saved folder: "
                                   "from_pretrained must load the processor that save_pretrained wrote")
        return f"{type(proc).__name__} round-trips"

    def check_pipeline_export(self) -> str:
        """The saved folder serves ``transformers.pipeline()`` exactly, or its ``tlzoo.json`` says why not."""
        m, ex = self.modality, self.extractor
        info = json.loads((self.saved / "tlzoo.json").read_text(encoding="utf-8"))["pipeline"]
        family = m.pipeline_families.get(ex.config.model_type)
        declared = bool(m.pipeline_class and family and ex.resolved_pooling() in family.poolings
                        and (family.max_labels is None or len(self.labels) <= family.max_labels(ex.config)))
        expected = declared if self.expect_pipeline is None else self.expect_pipeline
        if not info.get("exported"):
            reason = info.get("reason")
            if not isinstance(reason, str) or not reason:
                raise ConformanceError("the export was refused without a reason in tlzoo.json")
            if expected:
                raise ConformanceError(f"the export was refused ({reason}) although "
                                       + ("the plugin's pipeline_families declare this family and pooling"
                                          if declared else "expect_pipeline=True"))
            return f"refused: {reason}"
        if not expected:
            raise ConformanceError("the folder was exported for pipeline(), but expect_pipeline=False")
        from transformers import pipeline

        classify = pipeline(info["task"], model=str(self.saved))
        worst = 0.0
        for i, example in enumerate(self.examples):
            got = classify(example, top_k=len(self.labels))
            worst = max(worst, self._scores_agree(got, self.model.predict(example, top_k=None),
                                                  f"pipeline({info['task']!r}) on example {i}"))
        return f"{info['architecture']} for {info['task']!r}, max |diff| {worst:.1e}"

    def check_read_file(self) -> str:
        """Examples written as files read back with ``read_file`` give the same features."""
        values = [self.modality.read_file(str(path)) for path in self.files]
        for value in values:
            if self.modality.check_example is not None:
                self.modality.check_example(value)
            self.modality.fingerprint(value)
        diff = _close(self.extractor.extract(values), self.features)
        if diff > self.atol:
            raise ConformanceError(f"features of the files read back differ by {diff:.2e}: write them losslessly "
                                   "(write_file) or fix read_file")
        return f"{len(values)} {self.modality.file_extensions[0]} files"

    def _class_folder(self) -> Path:
        def make() -> Path:
            root = self.tmp_path / "class-folders"
            for i, path in enumerate(self.files):
                target = root / self.labels[i % len(self.labels)] / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
            return root

        return self._get("class_folder", "writing class folders", make)

    def check_class_folders(self) -> str:
        """A folder of class sub-folders loads as this modality's data, with the right labels and values."""
        from tlzoo.data import column_values, load_target_data

        root = self._class_folder()
        target = load_target_data(str(root), self.modality, test_size=0, validation_size=0)
        used = sorted({self.labels[i % len(self.labels)] for i in range(len(self.examples))})
        train = target.splits["train"]
        if target.modality != self.name or target.label_names != used or len(train) != len(self.examples):
            raise ConformanceError(f"the class folders loaded as {len(train)} {target.modality} examples labelled "
                                   f"{target.label_names}, expected {len(self.examples)} labelled {used}")
        found = self.extractor.extract(column_values(train, target.input_column))
        unmatched = [i for i, row in enumerate(found) if min(_close(row, f) for f in self.features) > self.atol]
        if unmatched:
            raise ConformanceError(f"rows {unmatched} of column {target.input_column!r} do not give the features of "
                                   "any example: the folder reader (folder_builder or read_file) changes them")
        how = f"folder_builder {self.modality.folder_builder!r}" if self.modality.folder_builder else "read_file"
        return f"column {target.input_column!r} via {how}"

    def check_cli_predict(self) -> str:
        """``tlzoo predict MODEL FILE...`` prints the predictions ``predict`` gives."""
        try:
            files = self.files
            inputs, values = [str(f) for f in files], [self.modality.read_file(str(f)) for f in files]
        except Skip:
            if not all(isinstance(e, str) for e in self.examples):
                raise
            inputs, values = list(self.examples), list(self.examples)
        args = ["predict", str(self.saved), *inputs, "--json", "--top-k", str(len(self.labels))]
        out = io.StringIO()
        with _cli_side_effects_undone(), contextlib.redirect_stdout(out):
            try:
                code = _cli_main(args)
            except SystemExit as exc:
                code = exc.code
        if code != 0:
            raise ConformanceError(f"`tlzoo {' '.join(args[:3])} ...` exited {code}: {out.getvalue()[-300:]}")
        printed = json.loads(out.getvalue())
        expected = self.model.predict(values, top_k=None)
        if len(printed) != len(values):
            raise ConformanceError(f"`tlzoo predict` printed {len(printed)} predictions for {len(values)} inputs")
        for i, (row, exp) in enumerate(zip(printed, expected)):
            self._scores_agree(row["prediction"], exp, f"`tlzoo predict` on input {i}")
        return f"{len(values)} inputs"

    def check_adapt(self) -> str:
        """:func:`tlzoo.adapt` (linear probe, one epoch) trains on the class folders and predicts."""
        import tlzoo

        root = self._class_folder()
        with _environ(TLZOO_CACHE=str(self.tmp_path / "feature-cache")):
            result = tlzoo.adapt(str(self.source), str(root), strategy="linear_probe", epochs=1, test_size=0,
                                 validation_size=0, pooling=self.options.get("pooling", "auto"), progress=False)
        if result.model.modality != self.name:
            raise ConformanceError(f"adapt() made a {result.model.modality!r} model")
        prediction = result.model.predict(self.examples[:1])[0]
        if prediction.get("label") not in self.labels:
            raise ConformanceError(f"the adapted model predicted {prediction!r}, not one of {self.labels}")
        return f"strategy {result.recipe.get('strategy')!r}"


def _field_problems(m: Modality) -> list[str]:
    """What is malformed in a Modality record (empty when nothing)."""
    problems = []
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", m.name):
        problems.append(f"name {m.name!r} should be short lowercase (letters, digits, - or _)")
    for name in ("build_feature_extractor", "is_column", "fingerprint", "is_example", "read_file"):
        if not callable(getattr(m, name)):
            problems.append(f"{name} must be callable")
    for name in ("claims_config", "check_example", "sample_inputs"):
        if getattr(m, name) is not None and not callable(getattr(m, name)):
            problems.append(f"{name} must be callable or None")
    if isinstance(m.model_types, str) or not all(isinstance(t, str) for t in m.model_types):
        problems.append(f"model_types must be a set of config.model_type strings, got {m.model_types!r}")
    if isinstance(m.file_extensions, str) or not all(
            isinstance(e, str) and e.startswith(".") and e == e.lower() for e in m.file_extensions):
        problems.append(f"file_extensions must be a tuple of lowercase suffixes like '.png', got {m.file_extensions!r}")
    if isinstance(m.column_names, str):
        problems.append(f"column_names must be a tuple of names, got the string {m.column_names!r}")
    if m.pipeline_families and not (m.pipeline_class and m.pipeline_task and m.sample_inputs):
        problems.append("pipeline_families needs pipeline_class, pipeline_task and sample_inputs, else tlzoo never "
                        "attempts the export")
    if m.pipeline_class:
        import transformers

        if not hasattr(transformers, m.pipeline_class):
            problems.append(f"pipeline_class {m.pipeline_class!r} is not a transformers class")
    if m.folder_builder:
        from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

        if m.folder_builder not in _PACKAGED_DATASETS_MODULES:
            problems.append(f"folder_builder {m.folder_builder!r} is not a datasets packaged builder "
                            f"({', '.join(sorted(_PACKAGED_DATASETS_MODULES))})")
    try:
        compile(m.usage_example, "<usage_example>", "eval")
    except SyntaxError:
        problems.append(f"usage_example {m.usage_example!r} is not a Python expression")
    if not isinstance(m.priority, int):
        problems.append(f"priority must be an int, got {m.priority!r}")
    return problems


def _cli_main(args: list[str]) -> int:
    from tlzoo.cli import main

    return main(args)


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _cli_side_effects_undone() -> Iterator[None]:
    """Undo what ``tlzoo.cli.main`` sets for a terminal: logging levels, handlers and verbosity variables."""
    manager = logging.root.manager
    loggers = [logging.root, *(lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    saved = [(lg, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    env = {k: os.environ.get(k) for k in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")}
    try:
        yield
    finally:
        for lg, level, propagate, handlers in saved:
            lg.setLevel(level)
            lg.propagate = propagate
            lg.handlers[:] = handlers
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
