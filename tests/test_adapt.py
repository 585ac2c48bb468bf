"""adapt() end to end: each modality learns, with a linear probe, with fine-tuning and with LoRA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import colour_images, keyword_sentences

import tlzoo
from tlzoo.features import FeatureExtractor


def task_for(modality: str, tiny_models: Any, wide_bert: Path) -> tuple[Path, Any]:
    from tlzoo.demo.synthetic import make_tones

    if modality == "image":
        return tiny_models("vit"), colour_images(20)
    if modality == "audio":
        return tiny_models("wav2vec2"), make_tones(20, duration=0.25)
    return wide_bert, keyword_sentences(40)


@pytest.mark.parametrize(("strategy", "epochs", "lr"),
                         [("linear_probe", 40, 1e-2), ("full", 6, 2e-3), ("lora", None, None)])
@pytest.mark.parametrize("modality", ["image", "audio", "text"])
def test_each_modality_learns_a_made_up_task(modality: str, strategy: str, epochs: int | None, lr: float | None,
                                             tiny_models: Any, wide_bert: Path, feature_cache: Path) -> None:
    source, data = task_for(modality, tiny_models, wide_bert)
    result = tlzoo.adapt(str(source), data, strategy=strategy, epochs=epochs, learning_rate=lr, batch_size=16,
                         progress=False)
    assert result.recipe["strategy"] == strategy
    assert result.metrics["test"]["accuracy"] >= 0.9, result.metrics["test"]
    assert result.metrics["test"]["num_examples"] == len(data) * 0.2
    # the epochs asked for, or those tlzoo chose from the data size (early stopping may end sooner)
    assert len(result.history) == epochs if epochs else 1 <= len(result.history) <= result.recipe["hyperparameters"]["epochs"]
    assert set(result.metrics) == {"test", "validation"}
    assert result.model.predict(data[0][result.recipe["data"]["input_column"]])["label"] in result.model.label_names


class ForwardCounter:
    def __init__(self) -> None:
        self.examples = 0

    def __enter__(self) -> ForwardCounter:
        original = FeatureExtractor.__call__
        counter = self

        def counting(module: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(module, *args, **kwargs)
            counter.examples += out.shape[0]
            return out

        self._patch = pytest.MonkeyPatch()
        self._patch.setattr(FeatureExtractor, "__call__", counting)
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.undo()


def test_linear_probe_runs_the_backbone_once_per_example_ever(tiny_models: Any, feature_cache: Path) -> None:
    data = colour_images(10)
    with ForwardCounter() as first:
        result = tlzoo.adapt(str(tiny_models("vit")), data, strategy="linear_probe", epochs=10, progress=False)
    assert first.examples == len(data)  # train + validation + test, once each, over 10 epochs
    assert result.recipe["feature_cache"] == {"cached": 0, "computed": len(data)}
    # another head, learning rate and epoch count on the same data: no backbone work at all
    with ForwardCounter() as second:
        again = tlzoo.adapt(str(tiny_models("vit")), data, strategy="linear_probe", epochs=3, learning_rate=0.05,
                            head={"name": "mlp", "hidden_size": 8}, progress=False)
    assert second.examples == 0
    assert again.recipe["feature_cache"] == {"cached": len(data), "computed": 0}
    assert any(feature_cache.rglob("*.npy"))


@pytest.mark.parametrize("progress", [True, False])
def test_epochs_show_in_a_bar_or_else_in_the_log_and_no_bars_means_none(progress: bool, tiny_models: Any, feature_cache: Path, caplog: Any,
                                                 capsys: Any) -> None:
    with caplog.at_level("DEBUG", logger="tlzoo.training.loop"):
        tlzoo.adapt(str(tiny_models("vit")), colour_images(6), strategy="linear_probe", epochs=3, progress=progress)
    epoch_lines = [r for r in caplog.records if r.getMessage().startswith("linear_probe epoch ")]
    assert [r.getMessage()[:20] for r in epoch_lines] == [f"linear_probe epoch {i}" for i in (1, 2, 3)]
    # one log line per epoch only where no bar shows them; the bar ends with the last epoch's scores
    assert {r.levelname for r in epoch_lines} == {"DEBUG" if progress else "INFO"}
    err = capsys.readouterr().err
    assert ("linear_probe: 100%" in err and "3/3" in err and "val_accuracy=" in err) is progress
    # progress=False: no bar at all, the libraries' (weight loading, data mapping) included, and theirs come back
    assert ("%|" in err) is progress
    # progress=True: tlzoo's bars only, as in the CLI; not the libraries' weight-loading and data-mapping bars
    assert "Loading weights" not in err and "Map" not in err, err
    from transformers.utils import logging as transformers_logging

    assert transformers_logging.is_progress_bar_enabled()


def test_resume_continues_to_the_same_result(tiny_models: Any, tmp_path: Path, feature_cache: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = colour_images(8)
    kwargs: dict[str, Any] = {"strategy": "full", "epochs": 3, "learning_rate": 1e-3, "batch_size": 8, "progress": False}
    straight = tlzoo.adapt(str(tiny_models("vit")), data, output_dir=tmp_path / "straight", **kwargs)

    from tlzoo.training import loop

    def interrupt(phase: str, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "end_of_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        tlzoo.adapt(str(tiny_models("vit")), data, output_dir=tmp_path / "resumed", **kwargs)
    monkeypatch.undo()
    assert (tmp_path / "resumed" / "checkpoints" / "fine_tune-epoch-0001").is_dir()
    resumed = tlzoo.adapt(str(tiny_models("vit")), data, output_dir=tmp_path / "resumed", resume_from=True, **kwargs)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    for (name, p), q in zip(straight.model.head.state_dict().items(), resumed.model.head.state_dict().values()):
        torch.testing.assert_close(p, q, msg=name)
    assert straight.metrics["test"]["accuracy"] == resumed.metrics["test"]["accuracy"]
    assert straight.metrics["test"]["loss"] == pytest.approx(resumed.metrics["test"]["loss"], rel=1e-5)


def test_checkpoints_are_removed_after_a_finished_run_unless_kept(tiny_models: Any, tmp_path: Path,
                                                                  feature_cache: Path) -> None:
    kwargs: dict[str, Any] = {"strategy": "full", "epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "progress": False}
    tlzoo.adapt(str(tiny_models("vit")), colour_images(6), output_dir=tmp_path / "a", **kwargs)
    assert (tmp_path / "a" / "model" / "tlzoo.json").is_file() and not (tmp_path / "a" / "checkpoints").exists()
    tlzoo.adapt(str(tiny_models("vit")), colour_images(6), output_dir=tmp_path / "b", keep_checkpoints=True, **kwargs)
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["fine_tune-epoch-0001",
                                                                                   "fine_tune-epoch-0002"]


@pytest.mark.parametrize("metric", ["f1_weighted", "precision_macro", "loss"])
def test_early_stopping_restores_the_best_epoch_by_the_metrics_own_direction(metric: str, tiny_models: Any,
                                                                             feature_cache: Path) -> None:
    """A larger f1_weighted is better, a larger loss is worse: the restored epoch is the best one either way."""
    data = colour_images(20)
    result = tlzoo.adapt(str(tiny_models("vit")), data, strategy="linear_probe", epochs=12, learning_rate=3e-2,
                         early_stopping=12, metric_for_best_model=metric, metrics=["accuracy", metric]
                         if metric != "loss" else None, progress=False, seed=3)
    scores = [record[f"validation_{metric}"] for record in result.history]
    best = (max if metric != "loss" else min)(scores)
    assert len(set(scores)) > 1, scores  # the run must move for the test to mean anything
    assert result.metrics["validation"][metric] == pytest.approx(best), (scores, result.metrics["validation"])
    assert result.recipe["options"]["metric_for_best_model"] == metric


def test_printing_a_result_shows_a_summary_not_the_network(tiny_models: Any, feature_cache: Path) -> None:
    result = tlzoo.adapt(str(tiny_models("vit")), colour_images(10), strategy="linear_probe", epochs=2, progress=False)
    text = repr(result)
    assert text.startswith("AdaptResult(strategy='linear_probe', test={'accuracy': ")
    assert len(text) < 300 and "Linear(" not in text, text


def test_each_step_says_what_it_does_before_it_starts(tiny_models: Any, feature_cache: Path, caplog: Any) -> None:
    with caplog.at_level("INFO"):
        tlzoo.adapt(str(tiny_models("vit")), colour_images(6), strategy="linear_probe", epochs=1, progress=False)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("tlzoo")]
    steps = ["Adapting ", "Reading the target data (a Dataset, 18 rows)", "Target data:", "Loading the source model",
             "Extracting features"]
    at = [next(i for i, m in enumerate(messages) if m.startswith(step)) for step in steps]
    assert at == sorted(at) and at[0] == 0, messages  # the first words come before any work


def test_the_same_seed_gives_the_same_model_whether_features_were_cached_or_not(tiny_models: Any,
                                                                                   feature_cache: Path) -> None:
    """LP-FT after a probe: the first run extracts the features, the second reads them from the cache."""
    data = keyword_sentences(6)
    kwargs: dict[str, Any] = {"strategy": "lp_ft", "epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "seed": 3,
                              "save_strategy": "no", "progress": False}
    first = tlzoo.adapt(str(tiny_models("bert")), data, **kwargs)
    second = tlzoo.adapt(str(tiny_models("bert")), data, **kwargs)
    assert first.recipe["feature_cache"]["computed"] > 0 and second.recipe["feature_cache"]["computed"] == 0
    assert second.metrics["test"]["loss"] == first.metrics["test"]["loss"]
    assert [r.get("train_loss") for r in second.history] == [r.get("train_loss") for r in first.history]
