"""A third-party modality, written here as a plugin author would, passes the conformance kit with no core change.

The ``timeseries`` modality reads a column of float lists; one example is a
list of floats (so its ``is_example`` says a flat list of numbers is one
example), its files are ``.json`` files holding one series each, and its
extractor has no processor: it makes PatchTST's tensors itself. It exports no
``pipeline()`` classifier, so saving must refuse with a reason. The kit is
also shown to catch the usual mistakes, and a folder of ``.json`` data files
still loads as data files for a text source while this plugin claims ``.json``.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import tlzoo
from tlzoo import plugins
from tlzoo.features import FeatureExtractor
from tlzoo.plugins import Modality
from tlzoo.testing import CHECKS, ConformanceError, PluginConformance, build_tiny_bert, check_plugin

CONTEXT = 32  # time steps PatchTST sees; shorter series are left-padded and masked as unobserved


# --- the plugin, as its author writes it -------------------------------------------------
class SeriesFeatureExtractor(FeatureExtractor):
    """Features of a univariate series: PatchTST's patch embeddings, averaged."""

    modality = "timeseries"

    @classmethod
    def from_pretrained(cls, source: str, *, revision: str | None = None, token: str | bool | None = None,
                        pooling: str = "auto") -> SeriesFeatureExtractor:
        from transformers import PatchTSTModel

        if pooling not in ("auto", "mean"):
            raise tlzoo.errors.ConfigurationError(f"Unknown series pooling {pooling!r}; expected auto or mean.")
        backbone = PatchTSTModel.from_pretrained(source, revision=revision, token=token)
        return cls(backbone, None, source=source, revision=revision, pooling=pooling)  # no processor

    def preprocess(self, values: Sequence[Any]) -> dict[str, torch.Tensor]:
        past = torch.zeros(len(values), CONTEXT, 1)
        observed = torch.zeros(len(values), CONTEXT, 1)
        for i, series in enumerate(values):
            tail = torch.tensor(list(series)[-CONTEXT:], dtype=torch.float32)
            past[i, CONTEXT - len(tail):, 0] = tail
            observed[i, CONTEXT - len(tail):, 0] = 1.0
        return {"past_values": past, "past_observed_mask": observed}

    def resolved_pooling(self) -> str:
        return "mean"

    def pool(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return outputs.last_hidden_state.mean(dim=(1, 2))  # [batch, channels, patches, d_model] -> [batch, d_model]


def is_series(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(x, numbers.Real) for x in value)


def is_series_column(feature: Any, values: Sequence[Any]) -> bool:
    sample = [v for v in values if v is not None]
    return bool(sample) and all(is_series(v) for v in sample)


def read_series(path: str) -> list[float]:
    return [float(x) for x in json.loads(Path(path).read_text(encoding="utf-8"))]


def series_modality(extractor: type[SeriesFeatureExtractor] = SeriesFeatureExtractor, **overrides: Any) -> Modality:
    fields: dict[str, Any] = {
        "name": extractor.modality,
        "build_feature_extractor": extractor.from_pretrained,
        "is_column": is_series_column,
        "model_types": frozenset({"patchtst"}),
        "file_extensions": (".json",),
        "priority": 5,
        "distribution": "tlzoo-timeseries",
        "description": "Univariate time series (lists of floats) for PatchTST backbones",
        "is_example": is_series,
        "read_file": read_series,
        "column_names": ("series",),
        "usage_example": "[0.1, 0.5, 0.9, 0.4]",
    }
    return Modality(**{**fields, **overrides})


class SeriesPlugin:
    def __init__(self, modality: Modality) -> None:
        self.modality = modality

    @tlzoo.hookimpl
    def register_modalities(self, register: Callable[[Modality], None]) -> None:
        register(self.modality)


def build_tiny_patchtst(path: Path, *, seed: int = 0) -> Path:
    from transformers import PatchTSTConfig, PatchTSTModel

    config = PatchTSTConfig(num_input_channels=1, context_length=CONTEXT, patch_length=8, patch_stride=8, d_model=16,
                            num_hidden_layers=2, num_attention_heads=2, ffn_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        PatchTSTModel(config).save_pretrained(path)
    return path


def series() -> list[list[float]]:
    """Four noisy sines of 12 to 40 steps (the longest is cut to the last 32)."""
    rng = np.random.default_rng(0)
    return [[float(x) for x in np.sin(np.arange(n) * f) + 0.1 * rng.standard_normal(n)]
            for n, f in ((20, 0.3), (12, 1.1), (40, 0.5), (27, 0.8))]


def write_json(values: list[float], path: Path) -> None:
    path.write_text(json.dumps(values), encoding="utf-8")


def registered(modality: Modality, name: str) -> Iterator[Modality]:
    """Register a plugin contributing *modality* for the duration of a fixture; unregister it in finally."""
    plugins.register_plugin(SeriesPlugin(modality), name=name)
    try:
        yield modality
    finally:
        plugins.unregister_plugin(name)


@pytest.fixture(scope="module")
def timeseries() -> Iterator[Modality]:
    yield from registered(series_modality(), "tlzoo-timeseries-test")


@pytest.fixture(scope="module")
def kit(timeseries: Modality, tmp_path_factory: pytest.TempPathFactory) -> PluginConformance:
    return PluginConformance(timeseries, build_tiny_patchtst, series(), labels=("calm", "busy"),
                             write_file=write_json, tmp_path=tmp_path_factory.mktemp("timeseries"))


# --- the kit on the plugin -----------------------------------------------------------------
@pytest.mark.parametrize("check", CHECKS)
def test_timeseries_plugin_conforms(kit: PluginConformance, check: str) -> None:
    result = kit.run_check(check)
    assert not result.skipped, result.detail  # every check applies to this plugin


def test_no_processor_and_no_pipeline_export_are_reported(kit: PluginConformance) -> None:
    assert kit.extractor.processor is None
    assert kit.run_check("processor").detail == "no processor: the extractor makes its tensors itself"
    refusal = kit.run_check("pipeline_export").detail
    assert refusal == "refused: the 'timeseries' plugin exports no pipeline() classifier"
    assert not (kit.saved / "preprocessor_config.json").exists()
    assert json.loads((kit.saved / "tlzoo.json").read_text())["pipeline"]["exported"] is False
    assert kit.run_check("class_folders").detail == "column 'series' via read_file"


def test_predict_one_series_and_a_batch(kit: PluginConformance) -> None:
    model = tlzoo.load(kit.saved)
    one = model.predict(series()[0])
    assert set(one) == {"label", "score"}
    assert [p["label"] for p in model.predict(series()[:2])] == [one["label"], model.predict(series()[1])["label"]]


# --- the kit catches the usual mistakes ---------------------------------------------------------
class BatchDependentExtractor(SeriesFeatureExtractor):
    """Normalises the features over the batch: an example's features depend on its neighbours."""

    modality = "series-batchnorm"

    def pool(self, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        features = super().pool(outputs, batch)
        return features - features.mean(dim=0) if len(features) > 1 else features


class WeightBlindExtractor(SeriesFeatureExtractor):
    """A cache key that ignores the weights: fine-tuned weights would be served stale features."""

    modality = "series-weightblind"

    def weights_fingerprint(self) -> str:
        return "same"


class DefaultExampleExtractor(SeriesFeatureExtractor):
    modality = "series-default-is-example"


@pytest.fixture
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PluginConformance]:
    extractor, overrides = request.param
    for modality in registered(series_modality(extractor, **overrides), f"broken-{extractor.modality}"):
        yield PluginConformance(modality, build_tiny_patchtst, series(), tmp_path=tmp_path, write_file=write_json)


@pytest.mark.parametrize(("broken", "failing", "message"), [
    ((BatchDependentExtractor, {}), "batch_invariance", "between extracting it alone and in a batch of 4"),
    ((WeightBlindExtractor, {}), "cache_key", "stays the same when the backbone's weights change"),
    ((DefaultExampleExtractor, {"is_example": plugins.default_is_example}), "is_example", "pass is_example="),
    ((DefaultExampleExtractor, {"is_example": plugins.default_is_example}), "predict", "is_example must say"),
    ((SeriesFeatureExtractor, {"name": "series-unclaimed", "model_types": frozenset()}), "claims_source",
     "add it to model_types"),
    ((SeriesFeatureExtractor, {"name": "series-bad-record", "model_types": "patchtst", "file_extensions": ("JSON",)}),
     "registered", "model_types must be a set"),
], indirect=["broken"], ids=["padding", "cache-key", "is-example", "predict", "claims", "record"])
def test_the_kit_names_what_broke_and_how_to_fix_it(broken: PluginConformance, failing: str, message: str) -> None:
    with pytest.raises(ConformanceError, match=rf"^\[{broken.name}: {failing}\] .*{message}"):
        broken.run_check(failing)


def test_check_plugin_reports_every_failure_at_once(timeseries: Modality, tmp_path: Path) -> None:
    """Three failures: the wrong is_example (twice), and timeseries, registered first at the same priority, wins."""
    modality = series_modality(DefaultExampleExtractor, is_example=plugins.default_is_example)
    for _ in registered(modality, "broken-default-is-example"):
        with pytest.raises(ConformanceError) as failed:
            check_plugin(modality, build_tiny_patchtst, series(), tmp_path=tmp_path, write_file=write_json,
                         skip=("cli_predict", "adapt", "class_folders", "pipeline_export", "read_file"))
    text = str(failed.value)
    assert text.startswith("3 conformance check(s) failed.")
    assert ("FAIL claims_source: [series-default-is-example: claims_source] tlzoo reads the source as 'timeseries': "
            "that modality also claims 'patchtst' with priority 5 >= 5; raise this modality's priority") in text
    assert "\n  FAIL is_example: [series-default-is-example: is_example] Modality.is_example(example) is False" in text
    assert "\n  ok   save_load: logits" in text and "\n  FAIL predict: " in text and "cli_predict" not in text


def test_an_unregistered_modality_fails_first(tmp_path: Path) -> None:
    kit = PluginConformance(series_modality(name="series-nowhere"), build_tiny_patchtst, series(), tmp_path=tmp_path)
    with pytest.raises(ConformanceError, match="no plugin registers a 'series-nowhere' modality"):
        kit.run_check("registered")
    with pytest.raises(ValueError, match="No conformance check called 'predicts'.*predict"):
        kit.run_check("predicts")


# --- another plugin's file type does not hijack data files -------------------------------------------
def test_json_data_files_stay_data_files_for_a_text_source(timeseries: Modality, tmp_path: Path) -> None:
    from tlzoo.data import load_target_data

    folder = tmp_path / "reviews"
    folder.mkdir()
    rows = [{"text": f"{word} value for money", "label": label} for word, label in
            (("great", "good"), ("awful", "bad"), ("fine", "good"), ("poor", "bad"))]
    for split, part in (("train", rows), ("test", rows[:2])):
        (folder / f"{split}.json").write_text("\n".join(json.dumps(r) for r in part), encoding="utf-8")
    text = plugins.get_modality("text")
    target = load_target_data(str(folder), text, validation_size=0)
    assert (target.input_column, target.modality, target.label_names) == ("text", "text", ["bad", "good"])
    assert {name: len(ds) for name, ds in target.splits.items()} == {"train": 4, "test": 2}
    assert ".json" in timeseries.file_extensions  # while the timeseries plugin reads .json files
    source = build_tiny_bert(tmp_path / "bert")
    result = tlzoo.adapt(str(source), str(folder), strategy="linear_probe", epochs=1, validation_size=0, progress=False)
    assert result.model.modality == "text" and len(result.model.predict(["great value", "poor value"])) == 2
