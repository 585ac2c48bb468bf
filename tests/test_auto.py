"""Results without guessing: the fitted probe, fine-tuning that finds its own settings, and ``auto``'s ladder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import colour_images

import tlzoo
from tlzoo.demo.digits import digit_images


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tlzoo.testing import build_tiny_resnet

    return build_tiny_resnet(tmp_path_factory.mktemp("resnet") / "resnet")


def validation_score(result: Any) -> float:
    return result.metrics["validation"]["accuracy"]


def test_the_probe_matches_logistic_regression_on_the_same_features(resnet: Path, feature_cache: Path) -> None:
    """The default probe vs scikit-learn's LogisticRegression (standardised, C picked on validation), same split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = digit_images()
    result = tlzoo.adapt(str(resnet), data, strategy="linear_probe", progress=False, seed=0)
    from tlzoo.data import load_target_data
    from tlzoo.plugins import get_modality
    from tlzoo.training.probe_newton import newton_applies

    extractor = result.model.extractor
    target = load_target_data(data, get_modality("image"), seed=0)  # the very same split adapt() made

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        ds = target.splits[split]
        return extractor.extract([ds[i]["image"] for i in range(len(ds))]).numpy(), np.array(ds["label"])

    (xt, yt), (xv, yv), (xs, ys) = features("train"), features("validation"), features("test")
    solver = "newton" if newton_applies(*xt.shape, target.num_labels) else "lbfgs"
    assert result.recipe["hyperparameters"]["probe_solver"] == solver
    best = max((make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(xt, yt)
                for c in np.logspace(-3, 3, 13)), key=lambda m: m.score(xv, yv))
    assert result.metrics["test"]["accuracy"] >= best.score(xs, ys) - 0.05, (result.metrics["test"], best.score(xs, ys))


def test_auto_stays_a_probe_when_the_probe_is_already_right(tiny_models: Any, feature_cache: Path) -> None:
    result = tlzoo.adapt(str(tiny_models("vit")), colour_images(20), progress=False)
    assert result.recipe["strategy"] == "linear_probe"
    trials = result.recipe["trials"]
    assert trials[0]["strategy"] == "linear_probe" and trials[0]["kept"] is True
    assert trials[1]["skipped"] is True and "already" in trials[1]["why"]
    assert validation_score(result) == 1.0


def test_auto_fine_tunes_where_it_pays_and_beats_the_fixed_rule(resnet: Path, feature_cache: Path) -> None:
    """Few examples per class (the old rule: always a probe) on features a random backbone barely separates."""
    data = digit_images()
    probe = tlzoo.adapt(str(resnet), data, strategy="linear_probe", progress=False)
    auto = tlzoo.adapt(str(resnet), data, progress=False)
    trials = auto.recipe["trials"]
    names = [t["strategy"] for t in trials]
    assert names[0] == "linear_probe" and names[1:] in (["lp_ft"], ["lp_ft", "lp_ft"]), trials
    assert all(t["seconds"] > 0 and "learning_rate" in t for t in trials[1:])
    if len(trials) == 3:  # the first trial kept the probe: the second tried ten times its rate
        assert trials[1]["kept"] is False
        assert trials[2]["learning_rate"] == pytest.approx(10 * trials[1]["learning_rate"])
    assert sum(t.get("kept", False) for t in trials) == 1
    assert validation_score(auto) >= validation_score(probe)
    if auto.recipe["strategy"] == "lp_ft":  # fine-tuning won on validation: it must also be better on test
        assert auto.metrics["test"]["accuracy"] >= probe.metrics["test"]["accuracy"]
    assert auto.recipe["hyperparameters"]["learning_rate_range_test"]["steps"] > 0


def test_a_win_on_a_handful_of_validation_examples_is_cross_validated(resnet: Path, feature_cache: Path) -> None:
    """A handful of validation examples: asked for, the fine-tuned trial that beat the probe there is judged again
    on 3 folds; by default it is kept on the validation split's word."""
    default = tlzoo.adapt(str(resnet), digit_images(), progress=False, seed=0)
    assert not any("cross_validation" in t for t in default.recipe["trials"])
    assert "cross_validation" not in default.timings
    result = tlzoo.adapt(str(resnet), digit_images(), progress=False, seed=0, cross_validate_trials=True)
    tuned = [t for t in result.recipe["trials"] if t.get("cross_validation")]
    assert tuned, result.recipe["trials"]  # fine-tuning beat the probe on validation (a random backbone)
    check = tuned[-1]["cross_validation"]
    assert check["folds"] == 3 and sum(check["fold_sizes"]) == check["examples"] > 20
    assert check["metric"] == "loss" and check["epochs"] == tuned[-1]["best_epoch"] and check["seconds"] > 0
    kept = "fine_tuned" if check["fine_tuned"] < check["linear_probe"] else "linear_probe"
    assert check["kept"] == kept
    assert result.recipe["strategy"] == ("lp_ft" if kept == "fine_tuned" else "linear_probe")
    assert [t["kept"] for t in result.recipe["trials"]].count(True) == 1
    assert result.timings["cross_validation"] >= check["seconds"]


def test_when_cross_validation_prefers_the_probe_the_probe_is_returned(resnet: Path, feature_cache: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.training import cross_check

    data = digit_images()
    probe = tlzoo.adapt(str(resnet), data, strategy="linear_probe", progress=False, seed=0)
    monkeypatch.setattr(cross_check, "beats", lambda *args: False)  # the folds never confirm the win
    result = tlzoo.adapt(str(resnet), data, progress=False, seed=0, cross_validate_trials=True)
    trials = result.recipe["trials"]
    assert trials[-1]["cross_validation"]["kept"] == "linear_probe" and trials[-1]["kept"] is False
    assert "not in 3-fold cross-validation" in trials[-1]["why"]
    assert trials[0]["kept"] is True and result.recipe["strategy"] == "linear_probe"
    assert len(trials) == 2  # no retry at a higher rate once the folds have judged
    assert validation_score(result) == pytest.approx(validation_score(probe))
    assert result.metrics["test"]["loss"] == pytest.approx(probe.metrics["test"]["loss"], rel=1e-4)


def test_cross_validation_is_skipped_when_over_the_budget(resnet: Path, feature_cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.training import cross_check

    monkeypatch.setattr(cross_check, "estimated_seconds", lambda *args: 1e9)
    result = tlzoo.adapt(str(resnet), digit_images(), progress=False, seed=0, cross_validate_trials=True)
    check = [t for t in result.recipe["trials"] if t.get("cross_validation")][-1]["cross_validation"]
    assert check["skipped"] is True and "budget" in check["why"] and "kept" not in check


def test_cross_validation_cost_estimate() -> None:
    from tlzoo.training.cross_check import Trial, beats, estimated_seconds, pooled

    trial = Trial("lp_ft", [], 1.0, 1e-3, epochs=4, seconds=10.0, epochs_run=8, start={})
    # 3 folds, each 4 epochs on two thirds of 90 rows, at the trial's 1.25 s per epoch of 60 rows
    assert estimated_seconds(trial, rows=90, train_rows=60, folds=3) == pytest.approx(3 * 1.25 * 4 * 60 / 60)
    assert pooled([{"loss": 1.0}, {"loss": 0.0}], [3, 1], "loss") == pytest.approx(0.75)
    assert beats(0.5, 0.6, greater_is_better=False) and not beats(0.6, 0.5, greater_is_better=False)
    assert beats(0.9, 0.8, greater_is_better=True) and not beats(0.80001, 0.8, greater_is_better=True)


def test_time_budget_zero_is_the_probe_alone(resnet: Path, feature_cache: Path) -> None:
    result = tlzoo.adapt(str(resnet), digit_images(8), time_budget=0, progress=False)
    assert result.recipe["strategy"] == "linear_probe"
    assert "time_budget=0" in result.recipe["trials"][1]["why"]


def test_lp_ft_never_ends_below_its_probe_and_keeps_batch_norm_statistics(resnet: Path, feature_cache: Path) -> None:
    """At a learning rate that wrecks the backbone, LP-FT hands back its probe, batch-norm statistics untouched."""
    data = digit_images(12)
    probe = tlzoo.adapt(str(resnet), data, strategy="linear_probe", progress=False)
    result = tlzoo.adapt(str(resnet), data, strategy="lp_ft", learning_rate=3.0, epochs=2, progress=False)
    assert validation_score(result) >= validation_score(probe)
    tried = result.recipe["trials"][-1]
    assert tried["strategy"] == "lp_ft"
    if not tried["kept"]:
        assert "probe's weights are kept" in tried["why"]
    assert result.recipe["hyperparameters"]["batch_norm_statistics"] == "frozen"
    before = {k: v for k, v in probe.model.extractor.state_dict().items() if "running_" in k}
    after = {k: v for k, v in result.model.extractor.state_dict().items() if "running_" in k}
    assert before and all(torch.equal(before[k], after[k]) for k in before)


def test_divergence_steps_back_and_retries_at_a_lower_rate(tiny_models: Any, feature_cache: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.training import loop

    calls = {"n": 0}
    original = loop.TaskModel.forward

    def first_run_blows_up(self: Any, batch: dict[str, Any]) -> torch.Tensor:
        out = original(self, batch)
        if self.training and self.extractor is not None:
            calls["n"] += 1
            if calls["n"] == 1:  # the first fine-tuning step of the first attempt
                return out * float("nan")
        return out

    monkeypatch.setattr(loop.TaskModel, "forward", first_run_blows_up)
    result = tlzoo.adapt(str(tiny_models("vit")), colour_images(8), strategy="lp_ft", learning_rate=1e-3, epochs=2,
                         progress=False)
    diverged = [t for t in result.recipe["trials"] if t.get("diverged")]
    assert len(diverged) == 1 and diverged[0]["learning_rate"] == pytest.approx(1e-3)
    assert result.recipe["hyperparameters"]["learning_rate"] == pytest.approx(1e-4)
    assert all(np.isfinite(v) for v in result.metrics["test"].values() if isinstance(v, float))


# --- batch-norm statistics (AdaBN) -------------------------------------------------------------------------------


def test_batch_norm_mismatch_is_measured_and_recalibration_removes_it(resnet: Path) -> None:
    """Untrained statistics (0 and 1) do not describe digits; after recalibration on digits they do."""
    from tlzoo.plugins import get_modality
    from tlzoo.training.norm_stats import MISMATCH, recalibrate, statistics_mismatch

    extractor = get_modality("image").build_feature_extractor(str(resnet)).eval()
    images = list(digit_images(20)["image"])
    weights = {k: v.clone() for k, v in extractor.state_dict().items()
               if "running_" not in k and "num_batches_tracked" not in k}
    assert statistics_mismatch(extractor, images[:32]) > MISMATCH
    assert recalibrate(extractor, images[:120]) > 0
    assert statistics_mismatch(extractor, images[120:152]) < MISMATCH / 2  # other digits: the same statistics
    assert all(torch.equal(weights[k], v) for k, v in extractor.state_dict().items() if k in weights)
    assert not extractor.training and all(not m.training for m in extractor.modules())  # the mode is put back


def test_auto_recalibrates_batch_norm_that_does_not_describe_the_data(resnet: Path, feature_cache: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A random-weight ResNet: the probe is fitted on recalibrated features, and the recipe says so."""
    from tlzoo.plugins import get_modality
    from tlzoo.training import probe_phase
    from tlzoo.training.norm_stats import statistics_mismatch

    monkeypatch.setattr(probe_phase, "RECALIBRATION_EXAMPLES", 10)  # a sample of train is enough, and bounds the cost
    data = digit_images(12)
    result = tlzoo.adapt(str(resnet), data, strategy="linear_probe", progress=False)
    record = result.recipe["hyperparameters"]["batch_norm_recalibration"]
    assert record["recalibrated"] is True and record["mismatch"] > record["threshold"]
    assert 5 <= record["examples"] <= 10 < result.recipe["data"]["split_sizes"]["train"]
    assert "AdaBN" in result.recipe["trials"][0]["batch_norm"]
    untouched = get_modality("image").build_feature_extractor(str(resnet))
    images = list(data["image"])
    assert statistics_mismatch(result.model.extractor, images[:32]) < statistics_mismatch(untouched, images[:32])


def test_no_recalibration_without_batch_norm_or_when_it_fits(tiny_models: Any, resnet: Path, tmp_path: Path,
                                                               feature_cache: Path) -> None:
    vit = tlzoo.adapt(str(tiny_models("vit")), colour_images(8), strategy="linear_probe", progress=False)
    assert "batch_norm_recalibration" not in vit.recipe["hyperparameters"]
    data = digit_images(12)
    first = tlzoo.adapt(str(resnet), data, strategy="linear_probe", progress=False)
    first.model.extractor.backbone.save_pretrained(tmp_path / "calibrated")  # its statistics are the digits'
    first.model.extractor.processor.save_pretrained(tmp_path / "calibrated")
    again = tlzoo.adapt(str(tmp_path / "calibrated"), data, strategy="linear_probe", progress=False)
    assert again.recipe["hyperparameters"]["batch_norm_recalibration"]["recalibrated"] is False


# --- how deep auto fine-tunes -------------------------------------------------------------------------------------


def plan(**overrides: Any) -> Any:
    from tlzoo.training.ladder import plan_fine_tune

    settings = {"probe_validation": {"accuracy": 0.7}, "n_train": 100, "n_validation": 30, "epochs": 10,
                "seconds_per_example": 0.01, "probe_seconds": 1.0, "time_budget": None, "backbone_parameters": 10**6,
                "partial_fraction": 0.2}
    return plan_fine_tune(**{**settings, **overrides})


def test_the_ladder_fine_tunes_every_layer_when_the_budget_allows() -> None:
    decision = plan()
    assert decision.fine_tune and decision.strategy == "lp_ft"
    assert decision.estimated_seconds == pytest.approx(0.01 * 110 * 10)


def test_the_ladder_trains_the_top_layers_when_only_they_fit_the_budget() -> None:
    decision = plan(time_budget=8.0)  # every layer: 11 s; the top 20%: 11 * (1 + 0.4) / 3 = 5.1 s
    assert decision.fine_tune and decision.strategy == "partial", decision
    assert decision.estimated_seconds == pytest.approx(11 * 1.4 / 3)
    assert not plan(time_budget=4.0).fine_tune


def test_the_ladder_uses_lora_on_a_large_backbone() -> None:
    from tlzoo.training.ladder import LORA_MIN_PARAMETERS

    assert plan(backbone_parameters=LORA_MIN_PARAMETERS).strategy == "lora"
    assert not plan(backbone_parameters=LORA_MIN_PARAMETERS, time_budget=5.0).fine_tune


def test_the_ladder_keeps_a_probe_that_is_right_on_every_held_out_example() -> None:
    few = plan(probe_validation={"accuracy": 1.0}, n_validation=3,
               probe_held_out={"accuracy": 1.0, "examples": 12, "selection": "cross-validation"})
    assert not few.fine_tune and "every example held out" in few.reason
    wrong_once = plan(probe_validation={"accuracy": 1.0}, n_validation=3,
                      probe_held_out={"accuracy": 11 / 12, "examples": 12, "selection": "cross-validation"})
    assert wrong_once.fine_tune


def test_auto_records_the_trial_it_chose(tiny_models: Any, feature_cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the LoRA threshold lowered to the tiny ViT's size, auto's fine-tuning trial is LoRA, logged as such."""
    from tlzoo.training import ladder

    monkeypatch.setattr(ladder, "LORA_MIN_PARAMETERS", 1)
    result = tlzoo.adapt(str(tiny_models("vit")), digit_images(8), progress=False)
    trials = result.recipe["trials"]
    assert trials[1]["strategy"] == "lora" and trials[1]["seconds"] > 0, trials
    assert result.recipe["strategy"] in ("lora", "linear_probe")
    assert "LoRA" in result.recipe["strategy_reason"]


def test_a_resumed_auto_run_continues_the_fine_tuning_auto_chose(tiny_models: Any, tmp_path: Path,
                                                                 feature_cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """auto chose ``partial``; interrupted after its first epoch and resumed, it trains the same top layers."""
    from tlzoo.training import fine_tune_phase, loop
    from tlzoo.training.ladder import Decision

    only_the_top = Decision(True, "only the top layers fit", 1.0, 60.0, "partial")
    monkeypatch.setattr(fine_tune_phase, "plan_fine_tune", lambda **_: only_the_top)
    data = digit_images(8)
    kwargs: dict[str, Any] = {"epochs": 3, "learning_rate": 1e-3, "batch_size": 8, "progress": False}
    straight = tlzoo.adapt(str(tiny_models("vit")), data, output_dir=tmp_path / "straight", **kwargs)
    assert straight.recipe["trials"][1]["strategy"] == "partial"

    def interrupt(phase: str, epoch: int) -> None:
        if phase == "fine_tune" and epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "end_of_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        tlzoo.adapt(str(tiny_models("vit")), data, output_dir=tmp_path / "resumed", **kwargs)
    monkeypatch.setattr(loop, "end_of_epoch", lambda phase, epoch: None)
    resumed = tlzoo.adapt(str(tiny_models("vit")), data, output_dir=tmp_path / "resumed", resume_from=True, **kwargs)
    groups = straight.recipe["hyperparameters"]["trainable_layer_groups"]
    assert len(groups) == 2 and resumed.recipe["hyperparameters"]["trainable_layer_groups"] == groups
    assert [h["epoch"] for h in resumed.history if h["phase"] == "fine_tune"] == [1, 2, 3]
    assert straight.metrics["test"]["accuracy"] == resumed.metrics["test"]["accuracy"]
