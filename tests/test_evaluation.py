"""Tests for tlzoo.evaluation: evaluate_predictions, summarise, format_report."""

from __future__ import annotations

import os

# Never touch the network, whatever the machine allows (set before evaluate is imported).
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evaluate
import numpy as np
import pytest

from tlzoo.errors import ConfigurationError, MetricError
from tlzoo.evaluation import evaluate_predictions, format_report, summarise
from tlzoo.evaluation.metrics import load_metric

SINGLE = "single_label_classification"
MULTI = "multi_label_classification"
REGRESSION = "regression"

# Logits for 6 samples, 3 classes; argmax = [0, 1, 0, 1, 2, 0]; references [0, 1, 1, 1, 2, 0].
LOGITS = np.array(
    [[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0], [3.0, 0.0, 0.0]]
)
REFS = [0, 1, 1, 1, 2, 0]
NAMES = ["cat", "dog", "bird"]
# Hand-computed:
#   cat : predicted 3 (TP 2), true 2 -> P 2/3, R 1,   F1 0.8
#   dog : predicted 2 (TP 2), true 3 -> P 1,   R 2/3, F1 0.8
#   bird: predicted 1 (TP 1), true 1 -> P 1,   R 1,   F1 1
#   accuracy 5/6; macro P = R = 8/9; macro F1 = 2.6/3


@pytest.fixture(autouse=True, scope="module")
def isolated_evaluate_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point every evaluate cache at a temporary folder so tests never write to ~/.cache."""
    cache = tmp_path_factory.mktemp("hf_cache")
    with pytest.MonkeyPatch.context() as patch:
        for attribute, sub in (
            ("HF_METRICS_CACHE", "metrics"),
            ("HF_MODULES_CACHE", "modules"),
            ("HF_EVALUATE_CACHE", "evaluate"),
            ("DOWNLOADED_EVALUATE_PATH", "evaluate/downloads"),
        ):
            patch.setattr(evaluate.config, attribute, cache / sub)
        yield cache


def _only_plain_python(value: Any) -> bool:
    """True if *value* is built from dict/list/str/int/float/bool/None only."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_plain_python(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_plain_python(v) for v in value)
    return type(value) in (str, int, float, bool, type(None))


# --------------------------------------------------------------------------- single-label


def test_single_label_from_logits_hand_computed() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, label_names=NAMES)
    assert set(result) == {"accuracy", "f1", "precision", "recall", "per_class", "confusion_matrix", "labels",
                           "hardest"}
    assert result["accuracy"] == pytest.approx(5 / 6)
    assert result["precision"] == pytest.approx(8 / 9)
    assert result["recall"] == pytest.approx(8 / 9)
    assert result["f1"] == pytest.approx(2.6 / 3)
    assert result["labels"] == NAMES
    assert result["per_class"]["cat"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(1.0),
        "f1": pytest.approx(0.8),
        "support": 2,
    }
    assert result["per_class"]["dog"] == {
        "precision": pytest.approx(1.0),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert result["per_class"]["bird"]["f1"] == pytest.approx(1.0)
    # rows = true label, columns = predicted: one true "dog" was predicted "cat" -> [1][0]
    assert result["confusion_matrix"] == [[2, 0, 0], [1, 2, 0], [0, 0, 1]]


def test_single_label_class_ids_equal_logits() -> None:
    from_ids = evaluate_predictions(SINGLE, [0, 1, 0, 1, 2, 0], REFS, label_names=NAMES)
    from_logits = evaluate_predictions(SINGLE, LOGITS, REFS, label_names=NAMES)
    assert from_ids.pop("hardest") == [] and from_logits.pop("hardest")  # losses need logits
    assert from_ids == from_logits


def test_per_class_support_sums_to_n_and_matrix_rows_match_support() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS)
    supports = [stats["support"] for stats in result["per_class"].values()]
    assert sum(supports) == len(REFS)
    assert [sum(row) for row in result["confusion_matrix"]] == supports
    assert result["labels"] == ["0", "1", "2"]


def test_result_is_json_serialisable_plain_python() -> None:
    result = evaluate_predictions(SINGLE, LOGITS.astype(np.float32), np.array(REFS), label_names=NAMES)
    assert _only_plain_python(result)
    assert json.loads(json.dumps(result)) == result


def test_class_absent_from_predictions_and_references() -> None:
    # 4 classes; class 3 ("fish") never occurs; class 2 ("bird") is never predicted.
    preds = [0, 0, 1, 1, 0, 1]
    refs = [0, 0, 1, 1, 2, 2]
    result = evaluate_predictions(SINGLE, preds, refs, label_names=["cat", "dog", "bird", "fish"])
    matrix = result["confusion_matrix"]
    assert len(matrix) == 4 and all(len(row) == 4 for row in matrix)
    assert matrix == [[2, 0, 0, 0], [0, 2, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    assert result["per_class"]["bird"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert result["per_class"]["fish"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # cat: P 2/3 R 1 F 0.8 ; dog: P 2/3 R 1 F 0.8 ; bird: 0. Macro is over the 3 labels that occur.
    assert result["precision"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert result["f1"] == pytest.approx((0.8 + 0.8 + 0) / 3)
    assert not any(np.isnan(v) for v in summarise(result).values())


def test_logits_shape_sets_number_of_classes_without_label_names() -> None:
    logits = np.zeros((2, 5))
    logits[0, 1] = 1.0
    logits[1, 1] = 1.0
    result = evaluate_predictions(SINGLE, logits, [1, 1])
    assert result["labels"] == ["0", "1", "2", "3", "4"]
    assert result["confusion_matrix"][1] == [0, 2, 0, 0, 0]


class _FakeTensor:
    """Mimics the torch.Tensor methods evaluation uses (duck typing, no torch needed)."""

    def __init__(self, array: Any) -> None:
        self.array = np.asarray(array)
        self.calls: list[str] = []

    def detach(self) -> _FakeTensor:
        self.calls.append("detach")
        return self

    def cpu(self) -> _FakeTensor:
        self.calls.append("cpu")
        return self

    def numpy(self) -> np.ndarray:
        self.calls.append("numpy")
        return self.array


def test_duck_typed_tensors_are_accepted() -> None:
    preds = _FakeTensor(LOGITS)
    result = evaluate_predictions(SINGLE, preds, _FakeTensor(REFS))
    assert preds.calls == ["detach", "cpu", "numpy"]
    assert result["accuracy"] == pytest.approx(5 / 6)


def test_torch_tensors_are_accepted() -> None:
    torch = pytest.importorskip("torch")
    logits = torch.tensor(LOGITS, dtype=torch.bfloat16, requires_grad=True)
    result = evaluate_predictions(SINGLE, logits, torch.tensor(REFS))
    assert result["accuracy"] == pytest.approx(5 / 6)


# --------------------------------------------------------------------------- metric selection


def test_metrics_argument_selects_metrics() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, metrics=["accuracy", "f1_weighted", "recall_micro"])
    assert set(result) == {"accuracy", "f1_weighted", "recall_micro", "per_class", "confusion_matrix", "labels",
                           "hardest"}
    # weighted F1 = (2 * 0.8 + 3 * 0.8 + 1 * 1) / 6
    assert result["f1_weighted"] == pytest.approx(5 / 6)
    assert result["recall_micro"] == pytest.approx(5 / 6)


def test_metrics_f1_means_macro() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, metrics=["f1"])
    assert result["f1"] == pytest.approx(2.6 / 3)


def test_metrics_accepts_a_loaded_evaluate_module() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, metrics=[load_metric("accuracy")])
    assert result["accuracy"] == pytest.approx(5 / 6)


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_averaged_scores_equal_the_metric_modules(average: str) -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, metrics=[f"{m}_{average}" for m in ("precision", "recall", "f1")])
    ids = LOGITS.argmax(-1)
    for name in ("precision", "recall", "f1"):
        module = load_metric(name).compute(predictions=ids, references=REFS, average=average, zero_division=0)
        assert result[f"{name}_{average}"] == pytest.approx(module[name]), name


@pytest.mark.parametrize(("task", "predictions", "references"), [(SINGLE, "LOGITS", "REFS"), (MULTI, "ML_LOGITS", "ML_REFS")])
def test_details_false_gives_the_same_scalars_only(task: str, predictions: str, references: str) -> None:
    preds, refs = globals()[predictions], globals()[references]
    full = evaluate_predictions(task, preds, refs)
    scalars = evaluate_predictions(task, preds, refs, details=False)
    assert scalars == summarise(full)
    assert set(full) - set(scalars) >= {"per_class", "labels"}


def test_metric_for_the_wrong_task_raises() -> None:
    with pytest.raises(MetricError, match="regression"):
        evaluate_predictions(SINGLE, LOGITS, REFS, metrics=["mse"])
    with pytest.raises(MetricError, match="classification"):
        evaluate_predictions(REGRESSION, [1.0, 2.0], [1.0, 2.0], metrics=["accuracy"])


def test_unknown_metric_raises_with_close_match() -> None:
    with pytest.raises(MetricError, match="Did you mean 'precision'"):
        evaluate_predictions(SINGLE, LOGITS, REFS, metrics=["precison"])


# --------------------------------------------------------------------------- errors


def test_unknown_task_raises() -> None:
    with pytest.raises(ConfigurationError, match="single_label_classification") as info:
        evaluate_predictions("single_label_clasification", LOGITS, REFS)
    assert "Did you mean" in str(info.value)


@pytest.mark.parametrize(
    ("task", "predictions", "references", "match"),
    [
        (SINGLE, LOGITS, [0, 1, 2], "6 samples"),
        (SINGLE, LOGITS, REFS + [0], "must match"),
        (SINGLE, [0.2, 0.7], [0, 1], "integer class ids"),
        (SINGLE, [0, 1], [0, -100], "-100"),
        (SINGLE, np.zeros((2, 2, 2)), [0, 1], "shape"),
        (MULTI, np.zeros((2, 3)), np.zeros((2, 4)), "shape"),
        (MULTI, np.zeros(2), np.zeros(2), "num_labels"),
        (MULTI, np.zeros((2, 2)), [[0, 2], [1, 0]], "0/1"),
        (MULTI, np.zeros((2, 1)), [[0], [1]], "two label columns"),
        (REGRESSION, [1.0, 2.0, 3.0], [[1.0, 2.0, 3.0]], "samples"),
        (REGRESSION, np.zeros((3, 2)), np.zeros((3, 3)), "shape"),
        (SINGLE, [], [], "No samples"),
    ],
)
def test_bad_shapes_raise_metric_error(task: str, predictions: Any, references: Any, match: str) -> None:
    with pytest.raises(MetricError, match=match):
        evaluate_predictions(task, predictions, references)


def test_label_names_must_fit_the_logits() -> None:
    with pytest.raises(MetricError, match="3 columns"):
        evaluate_predictions(SINGLE, LOGITS, REFS, label_names=["a", "b"])
    with pytest.raises(MetricError, match="outside"):
        evaluate_predictions(SINGLE, [0, 3], [0, 1], label_names=["a", "b", "c"])
    with pytest.raises(MetricError, match="unique"):
        evaluate_predictions(SINGLE, [0, 1], [0, 1], label_names=["a", "a"])


# --------------------------------------------------------------------------- multi-label


ML_LOGITS = np.array([[2.0, -1.0, 0.1], [-3.0, 3.0, -2.0], [1.0, 1.0, -1.0], [-1.0, -2.0, -0.5]])
ML_REFS = [[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]]
# sigmoid >= 0.5  <=>  logit >= 0  ->  [[1,0,1], [0,1,0], [1,1,0], [0,0,0]]
# exact rows: samples 2 and 3 -> accuracy 2/4
# label 0: TP 2 FP 0 FN 0 -> 1 ; label 1: TP 2 FP 0 FN 0 -> 1 ; label 2: TP 0 FP 1 FN 1 -> 0
# micro: TP 4 FP 1 FN 1 -> F1 8/10


def test_multi_label_from_logits_hand_computed() -> None:
    result = evaluate_predictions(MULTI, ML_LOGITS, ML_REFS, label_names=["a", "b", "c"])
    assert set(result) == {"accuracy", "f1", "f1_micro", "precision", "recall", "per_class", "labels", "hardest"}
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["f1_micro"] == pytest.approx(0.8)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert [s["support"] for s in result["per_class"].values()] == [2, 2, 1]  # positives per label
    assert json.loads(json.dumps(result)) == result


def test_multi_label_zero_one_predictions_and_threshold() -> None:
    binary = (ML_LOGITS >= 0).astype(int)
    from_logits = evaluate_predictions(MULTI, ML_LOGITS, ML_REFS)
    assert "hardest" not in evaluate_predictions(MULTI, binary, ML_REFS) and from_logits.pop("hardest")
    assert evaluate_predictions(MULTI, binary, ML_REFS) == from_logits
    # threshold 0.6 (logit 0.405): label 2 of sample 0 (logit 0.1) becomes 0 -> sample 0 exact too
    strict = evaluate_predictions(MULTI, ML_LOGITS, ML_REFS, threshold=0.6)
    assert strict["accuracy"] == pytest.approx(3 / 4)
    with pytest.raises(ConfigurationError, match="threshold"):
        evaluate_predictions(MULTI, ML_LOGITS, ML_REFS, threshold=1.5)


def test_multi_label_confusion_matrix_on_request() -> None:
    result = evaluate_predictions(MULTI, ML_LOGITS, ML_REFS, metrics=["confusion_matrix"])
    # label 2: tn 2, fp 1, fn 1, tp 0
    assert result["multilabel_confusion_matrix"][2] == [[2, 1], [1, 0]]


# --------------------------------------------------------------------------- regression


def test_regression_hand_computed() -> None:
    preds = np.array([[1.0], [2.0], [3.0], [4.0]])  # [N, 1] is squeezed
    refs = [1.0, 2.0, 3.0, 5.0]
    result = evaluate_predictions(REGRESSION, preds, refs)
    assert set(result) == {"mse", "mae", "r2", "hardest"}
    assert result["mse"] == pytest.approx(0.25)
    assert result["mae"] == pytest.approx(0.25)
    # mean(refs) = 2.75 ; SS_tot = 8.75 ; SS_res = 1
    assert result["r2"] == pytest.approx(1 - 1 / 8.75)
    assert _only_plain_python(result)


def test_regression_rmse_and_r_squared_names() -> None:
    result = evaluate_predictions(REGRESSION, [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 5.0], metrics=["rmse", "r_squared"])
    assert result.pop("hardest")[0] == {"index": 3, "label": 5.0, "predicted": 4.0, "loss": 1.0}
    assert result == {"rmse": pytest.approx(0.5), "r2": pytest.approx(1 - 1 / 8.75)}


def test_regression_multi_output_averages_outputs() -> None:
    preds = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    refs = np.array([[1.0, 1.0], [2.0, -1.0], [3.0, 0.0]])
    result = evaluate_predictions(REGRESSION, preds, refs)
    assert result["mse"] == pytest.approx((0 + 2 / 3) / 2)
    assert result["r2"] == pytest.approx((1.0 + 0.0) / 2)


# --------------------------------------------------------------------------- summarise / report


def test_summarise_keeps_only_scalars() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, label_names=NAMES)
    summary = summarise(result)
    assert summary == {
        "accuracy": pytest.approx(5 / 6),
        "f1": pytest.approx(2.6 / 3),
        "precision": pytest.approx(8 / 9),
        "recall": pytest.approx(8 / 9),
    }
    mixed = {
        "loss": np.float32(0.5),
        "steps": np.int64(3),
        "flag": True,
        "np_flag": np.bool_(True),
        "name": "x",
        "arr": [1.0],
    }
    assert summarise(mixed) == {"loss": 0.5, "steps": 3}
    assert type(summarise(mixed)["loss"]) is float and type(summarise(mixed)["steps"]) is int


def test_format_report_classification() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, label_names=NAMES)
    report = format_report(result)
    lines = report.splitlines()
    header = lines[0].split()
    assert header == ["precision", "recall", "f1-score", "support"]
    cat = next(line for line in lines if line.split()[:1] == ["cat"])
    assert cat.split() == ["cat", "0.6667", "1.0000", "0.8000", "2"]
    accuracy = next(line for line in lines if line.strip().startswith("accuracy"))
    assert accuracy.split() == ["accuracy", "0.8333", "6"]
    macro = next(line for line in lines if line.strip().startswith("macro avg"))
    assert macro.split() == ["macro", "avg", "0.8889", "0.8889", "0.8667", "6"]
    assert any(line.strip().startswith("weighted avg") for line in lines)
    assert "Confusion matrix (rows: true label, columns: predicted label):" in report
    dog_row = next(line for line in lines if line.split()[:1] == ["dog"] and len(line.split()) == 4)
    assert dog_row.split() == ["dog", "1", "2", "0"]


def test_format_report_multi_label_and_regression() -> None:
    report = format_report(evaluate_predictions(MULTI, ML_LOGITS, ML_REFS))
    assert "subset accuracy" in report and "f1_micro" in report
    assert "Confusion matrix" not in report
    regression = format_report(evaluate_predictions(REGRESSION, [1.0, 2.0], [1.0, 3.0]))
    assert [line.split()[0] for line in regression.splitlines()] == ["mse", "mae", "r2"]
    assert regression.splitlines()[0].split() == ["mse", "0.5000"]


def test_empty_metrics_list_keeps_only_per_class_entries() -> None:
    result = evaluate_predictions(SINGLE, LOGITS, REFS, metrics=[])
    assert set(result) == {"per_class", "confusion_matrix", "labels", "hardest"}
    assert summarise(result) == {}


def test_hardest_examples_rank_by_loss_for_every_task() -> None:
    from tlzoo.evaluation.hardest import hardest_examples

    logits = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]))
    rows = hardest_examples("single_label_classification", logits, np.array([0, 0, 1, 1]), ["a", "b"], k=3)
    assert [r["index"] for r in rows] == [1, 2, 3]  # -log 0.2, -log 0.4, -log 0.7
    assert [r["loss"] for r in rows] == pytest.approx([-math.log(0.2), -math.log(0.4), -math.log(0.7)])
    assert rows[0] | {"loss": 0} == {"index": 1, "label": "a", "predicted": "b", "probability": pytest.approx(0.8),
                                     "loss": 0}
    multi = hardest_examples("multi_label_classification", np.array([[5.0, -5.0], [-5.0, 5.0]]),
                             np.array([[1, 0], [1, 0]]), ["x", "y"])
    assert multi[0]["index"] == 1 and multi[0]["label"] == ["x"] and multi[0]["predicted"] == ["y"]
    assert multi[0]["loss"] == pytest.approx(2 * math.log1p(math.exp(5.0)))
    regression = hardest_examples("regression", np.array([1.0, 2.0, 5.0]), np.array([1.0, 3.0, 2.0]), [], k=2)
    assert [(r["index"], r["loss"], r["predicted"], r["label"]) for r in regression] == [(2, 9.0, 5.0, 2.0),
                                                                                         (1, 1.0, 2.0, 3.0)]
    assert hardest_examples("single_label_classification", np.array([0, 1]), np.array([0, 0]), ["a", "b"]) == []


def test_evaluate_predictions_lists_the_hardest_examples_with_the_details() -> None:
    from tlzoo.evaluation import evaluate_predictions

    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0]])
    full = evaluate_predictions("single_label_classification", logits, [0, 0, 1], label_names=["a", "b"])
    assert [r["index"] for r in full["hardest"]] == [1, 2, 0]
    assert "hardest" not in evaluate_predictions("single_label_classification", logits, [0, 0, 1], details=False)


def test_model_plots_draw_curves_from_two_records_and_the_confusion_matrix() -> None:
    from tlzoo.evaluation.plots import render_model_plots

    metrics = {"test": {"confusion_matrix": [[3, 1], [0, 4]], "labels": ["no", "yes"]}}
    record = {"phase": "fine_tune", "epoch": 1, "train_loss": 0.9, "validation_loss": 0.8, "validation_accuracy": 0.6}
    two = render_model_plots([record, {**record, "epoch": 2, "train_loss": 0.5}], metrics)
    assert sorted(two) == ["plots/confusion_matrix.png", "plots/training_curves.png"]
    assert all(png.startswith(b"\x89PNG") for png in two.values())
    # a probe fitted in closed form leaves one record: a point, not a curve
    assert sorted(render_model_plots([record], metrics)) == ["plots/confusion_matrix.png"]
