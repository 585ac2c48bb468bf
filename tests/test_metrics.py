"""Tests for tlzoo.evaluation.metrics: offline evaluate.Metric modules checked against hand-computed values."""

from __future__ import annotations

import os

# Never touch the network, whatever the machine allows (set before evaluate is imported).
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import datasets
import evaluate
import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning

from tlzoo.errors import MetricError as ErrorsMetricError
from tlzoo.evaluation.metrics import BUILTIN_METRICS, MetricError, canonical_metric_name, load_metric

REPO_ROOT = Path(__file__).resolve().parents[1]

# Multiclass example used below (hand-computed):
#   class 0: TP=2, predicted 2, true 3 -> P=1,   R=2/3, F1=0.8
#   class 1: TP=1, predicted 3, true 2 -> P=1/3, R=1/2, F1=2/(3+2)=0.4
#   class 2: TP=0, predicted 1, true 1 -> P=0,   R=0,   F1=0
REFS = [0, 0, 0, 1, 1, 2]
PREDS = [0, 0, 1, 1, 2, 1]


@pytest.fixture(autouse=True, scope="module")
def isolated_evaluate_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point every evaluate cache at a temporary folder so tests never write to ~/.cache.

    Module-scoped: evaluate imports downloaded/local scripts as a package under
    HF_MODULES_CACHE, which must not move between tests of one process.
    """
    cache = tmp_path_factory.mktemp("hf_cache")
    with pytest.MonkeyPatch.context() as patch:
        for attribute, sub in (
            ("HF_METRICS_CACHE", "metrics"),
            ("HF_EVALUATE_CACHE", "evaluate"),
            ("DOWNLOADED_EVALUATE_PATH", "evaluate/downloads"),
        ):
            patch.setattr(evaluate.config, attribute, cache / sub)
        yield cache


# --------------------------------------------------------------------------- modules


@pytest.mark.parametrize("name", BUILTIN_METRICS)
def test_builtins_are_real_evaluate_metrics(name: str) -> None:
    metric = load_metric(name)
    assert isinstance(metric, evaluate.Metric)
    assert isinstance(metric, evaluate.EvaluationModule)
    assert metric.name == name
    info = metric.info
    assert isinstance(info, evaluate.MetricInfo)
    assert info.description and info.citation and info.inputs_description
    assert isinstance(info.features, datasets.Features)
    assert set(info.features) == {"predictions", "references"}
    # evaluate appends inputs_description to the compute docstring
    assert "predictions" in (metric.compute.__doc__ or "")


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("ACCURACY", "accuracy"),
        (" F1 ", "f1"),
        ("r_squared", "r2"),
        ("R_Squared", "r2"),
        ("confusion-matrix", "confusion_matrix"),
        ("evaluate-metric/precision", "precision"),
        ("bleu", None),
    ],
)
def test_canonical_metric_name(spelling: str, expected: str | None) -> None:
    assert canonical_metric_name(spelling) == expected


def test_load_metric_is_case_insensitive_and_accepts_r_squared() -> None:
    assert load_metric("Accuracy").name == "accuracy"
    r2 = load_metric("r_squared")
    assert r2.name == "r2"
    assert r2.compute(predictions=[1, 2, 3, 4], references=[1, 2, 3, 5]) == {"r2": pytest.approx(1 - 1 / 8.75)}


def test_load_metric_unknown_name_raises_metric_error_with_close_match() -> None:
    with pytest.raises(MetricError) as info:
        load_metric("acuracy")
    message = str(info.value)
    assert "'acuracy'" in message
    assert "Did you mean 'accuracy'" in message
    for name in BUILTIN_METRICS:
        assert name in message
    assert "network" in message and "local metric script" in message
    assert isinstance(info.value, ErrorsMetricError)  # the project-wide error class
    assert info.value.__cause__ is not None  # the evaluate.load failure is chained


def test_load_metric_unknown_config_raises() -> None:
    with pytest.raises(MetricError, match="multilabel"):
        load_metric("accuracy", "multi_label")


def test_accuracy_hand_computed() -> None:
    metric = load_metric("accuracy")
    assert metric.compute(predictions=PREDS, references=REFS) == {"accuracy": pytest.approx(3 / 6)}
    assert metric.compute(predictions=PREDS, references=REFS, normalize=False) == {"accuracy": 3.0}
    weights = [1, 1, 1, 1, 1, 5]  # the last (wrong) sample weighs 5 -> 3 / 10
    assert metric.compute(predictions=PREDS, references=REFS, sample_weight=weights)["accuracy"] == pytest.approx(0.3)


def test_accuracy_multilabel_is_subset_accuracy() -> None:
    metric = load_metric("accuracy", "multilabel")
    result = metric.compute(predictions=[[1, 0, 1], [0, 1, 0], [1, 1, 0]], references=[[1, 0, 1], [0, 1, 1], [1, 1, 0]])
    assert result == {"accuracy": pytest.approx(2 / 3)}


def test_add_batch_then_compute_uses_evaluate_accumulation() -> None:
    metric = load_metric("accuracy")
    metric.add_batch(predictions=PREDS[:3], references=REFS[:3])
    metric.add_batch(predictions=PREDS[3:], references=REFS[3:])
    metric.add(prediction=0, reference=0)
    assert metric.compute() == {"accuracy": pytest.approx(4 / 7)}


# --------------------------------------------------------------------------- precision / recall / f1


def test_binary_precision_recall_f1_default_average_is_binary_like_the_hub() -> None:
    refs = [1, 1, 1, 0, 0, 0]
    preds = [1, 1, 0, 1, 0, 0]  # TP=2 FP=1 FN=1
    assert load_metric("precision").compute(predictions=preds, references=refs) == {"precision": pytest.approx(2 / 3)}
    assert load_metric("recall").compute(predictions=preds, references=refs) == {"recall": pytest.approx(2 / 3)}
    assert load_metric("f1").compute(predictions=preds, references=refs) == {"f1": pytest.approx(2 / 3)}
    # pos_label=0: TP=2 (samples 4, 5), FP=1 (sample 2), FN=1 (sample 3)
    assert load_metric("f1").compute(predictions=preds, references=refs, pos_label=0)["f1"] == pytest.approx(2 / 3)


def test_binary_average_on_multiclass_data_raises() -> None:
    with pytest.raises(ValueError, match="average='binary'"):
        load_metric("f1").compute(predictions=PREDS, references=REFS)


@pytest.mark.parametrize(
    ("average", "precision", "recall", "f1"),
    [
        ("macro", (1 + 1 / 3 + 0) / 3, (2 / 3 + 0.5 + 0) / 3, (0.8 + 0.4 + 0) / 3),
        ("weighted", (3 * 1 + 2 / 3) / 6, (3 * 2 / 3 + 2 * 0.5) / 6, (3 * 0.8 + 2 * 0.4) / 6),
        ("micro", 0.5, 0.5, 0.5),  # micro P = R = F1 = accuracy for single-label data
    ],
)
def test_multiclass_averages_hand_computed(average: str, precision: float, recall: float, f1: float) -> None:
    kwargs = {"predictions": PREDS, "references": REFS, "average": average}
    assert load_metric("precision").compute(**kwargs) == {"precision": pytest.approx(precision)}
    assert load_metric("recall").compute(**kwargs) == {"recall": pytest.approx(recall)}
    assert load_metric("f1").compute(**kwargs) == {"f1": pytest.approx(f1)}


def test_average_none_returns_one_score_per_label() -> None:
    result = load_metric("f1").compute(predictions=PREDS, references=REFS, average=None)
    assert isinstance(result["f1"], np.ndarray)
    np.testing.assert_allclose(result["f1"], [0.8, 0.4, 0.0])
    precision = load_metric("precision").compute(predictions=PREDS, references=REFS, average=None)["precision"]
    np.testing.assert_allclose(precision, [1.0, 1 / 3, 0.0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_class_absent_from_predictions_gives_zero_not_nan() -> None:
    refs = [0, 0, 1, 1, 2, 2]
    preds = [0, 0, 1, 1, 1, 0]  # class 2 is never predicted: its precision is 0/0
    precision = load_metric("precision").compute(predictions=preds, references=refs, average=None)["precision"]
    np.testing.assert_allclose(precision, [2 / 3, 2 / 3, 0.0])
    assert not np.isnan(precision).any()
    macro = load_metric("precision").compute(predictions=preds, references=refs, average="macro")["precision"]
    assert macro == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    # scikit-learn's zero_division=1 substitutes 1.0 instead
    ones = load_metric("precision").compute(predictions=preds, references=refs, average=None, zero_division=1)
    np.testing.assert_allclose(ones["precision"], [2 / 3, 2 / 3, 1.0])
    # F1 of a class with TP=0 is 0 (2TP / (2TP+FP+FN) = 0 / 2)
    f1 = load_metric("f1").compute(predictions=preds, references=refs, average=None)["f1"]
    np.testing.assert_allclose(f1, [0.8, 0.8, 0.0])


def test_all_zero_division_everywhere() -> None:
    # No positives at all in binary data: every ratio is 0/0 -> 0.0, with a warning by default
    for name in ("precision", "recall", "f1"):
        with pytest.warns(UndefinedMetricWarning):
            assert load_metric(name).compute(predictions=[0, 0], references=[0, 0]) == {name: 0.0}
        assert load_metric(name).compute(predictions=[0, 0], references=[0, 0], zero_division=1) == {name: 1.0}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_labels_argument_selects_and_orders_labels() -> None:
    per_label = load_metric("recall").compute(predictions=PREDS, references=REFS, average=None, labels=[2, 0])
    np.testing.assert_allclose(per_label["recall"], [0.0, 2 / 3])
    # A label absent from both references and predictions scores 0 and counts in the macro mean.
    macro = load_metric("f1").compute(predictions=PREDS, references=REFS, average="macro", labels=[0, 1, 2, 3])
    assert macro["f1"] == pytest.approx((0.8 + 0.4 + 0 + 0) / 4)
    # micro over a subset of labels: classes 0 and 1 -> TP=3, predicted 5, true 5
    micro = load_metric("precision").compute(predictions=PREDS, references=REFS, average="micro", labels=[0, 1])
    assert micro["precision"] == pytest.approx(3 / 5)


def test_sample_weight_in_precision() -> None:
    refs = [1, 1, 0]
    preds = [1, 1, 1]  # TP weights 1 + 1, FP weight 2 -> precision 2 / 4
    result = load_metric("precision").compute(predictions=preds, references=refs, sample_weight=[1, 1, 2])
    assert result["precision"] == pytest.approx(0.5)


def test_multilabel_precision_recall_f1() -> None:
    refs = [[1, 0, 1], [0, 1, 1], [1, 1, 0]]
    preds = [[1, 0, 0], [0, 1, 1], [1, 0, 1]]
    # column 0: TP=2 FP=0 FN=0 ; column 1: TP=1 FP=0 FN=1 ; column 2: TP=1 FP=1 FN=1
    f1 = load_metric("f1", "multilabel")
    np.testing.assert_allclose(f1.compute(predictions=preds, references=refs, average=None)["f1"], [1.0, 2 / 3, 0.5])
    assert f1.compute(predictions=preds, references=refs, average="macro")["f1"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    # micro: TP=4 FP=1 FN=2 -> P=4/5 R=4/6 F1=8/11
    assert f1.compute(predictions=preds, references=refs, average="micro")["f1"] == pytest.approx(8 / 11)
    precision = load_metric("precision", "multilabel").compute(predictions=preds, references=refs, average="micro")
    assert precision["precision"] == pytest.approx(4 / 5)
    recall = load_metric("recall", "multilabel").compute(predictions=preds, references=refs, average="micro")
    assert recall["recall"] == pytest.approx(4 / 6)
    # samples: per-sample F1 = [2/3, 1, 1/2]
    samples = f1.compute(predictions=preds, references=refs, average="samples")["f1"]
    assert samples == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    # weighted by column support [2, 2, 2] equals macro here; labels selects columns
    np.testing.assert_allclose(
        f1.compute(predictions=preds, references=refs, average=None, labels=[2])["f1"], [0.5]
    )


def test_multilabel_matches_the_hub_docstring_example() -> None:
    result = load_metric("f1", "multilabel").compute(
        predictions=[[0, 1, 1], [1, 1, 0]], references=[[0, 1, 1], [0, 1, 0]], average="macro"
    )
    assert round(result["f1"], 2) == 0.67


def test_multilabel_binary_average_raises() -> None:
    with pytest.raises(ValueError, match="multilabel"):
        load_metric("f1", "multilabel").compute(predictions=[[0, 1]], references=[[0, 1]])


@pytest.mark.parametrize(("name", "kwargs"), [("accuracy", {}), ("f1", {"average": None}), ("confusion_matrix", {})])
def test_multilabel_needs_two_label_columns(name: str, kwargs: dict) -> None:
    # one indicator column would be read as binary class ids: per-label scores would describe the negatives
    metric = load_metric(name, "multilabel")
    with pytest.raises(ValueError, match="at least two label columns"):
        metric.compute(predictions=[[1], [0], [0]], references=[[1], [1], [0]], **kwargs)


@pytest.mark.parametrize(
    ("name", "config", "kwargs", "match"),
    [
        ("f1", None, {"average": "mean"}, "average"),
        ("precision", None, {"average": "samples"}, "multilabel"),
        ("mse", None, {"multioutput": "median"}, "multioutput"),
        ("confusion_matrix", "multilabel", {"normalize": "true"}, "normalize"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(name: str, config: str | None, kwargs: dict, match: str) -> None:
    refs = [[0, 1], [1, 1]] if config == "multilabel" else [0, 1]
    with pytest.raises(ValueError, match=match):
        load_metric(name, config).compute(predictions=refs, references=refs, **kwargs)


def test_inputs_of_different_lengths_raise() -> None:
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        load_metric("accuracy").compute_arrays(predictions=[0, 1, 1], references=[0, 1])
    with pytest.raises(ValueError, match="Mismatch"):  # evaluate's own check in compute()
        load_metric("accuracy").compute(predictions=[0, 1, 1], references=[0, 1])


# --------------------------------------------------------------------------- confusion matrix


def test_confusion_matrix_rows_are_references_columns_are_predictions() -> None:
    result = load_metric("confusion_matrix").compute(predictions=[1, 1, 1, 0], references=[0, 0, 1, 1])
    matrix = result["confusion_matrix"]
    # two samples of true class 0 were predicted as class 1 -> row 0, column 1
    np.testing.assert_array_equal(matrix, [[0, 2], [1, 1]])
    assert matrix.sum() == 4


def test_confusion_matrix_labels_order_and_absent_class() -> None:
    metric = load_metric("confusion_matrix")
    matrix = metric.compute(predictions=[1, 1, 1, 0], references=[0, 0, 1, 1], labels=[1, 0, 2])["confusion_matrix"]
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [2, 0, 0], [0, 0, 0]])
    hub_example = metric.compute(references=[0, 1, 2, 0, 1, 2], predictions=[0, 1, 1, 2, 1, 0])
    np.testing.assert_array_equal(hub_example["confusion_matrix"], [[1, 0, 1], [0, 2, 0], [1, 1, 0]])


def test_confusion_matrix_normalize() -> None:
    normalized = load_metric("confusion_matrix").compute(
        predictions=[1, 1, 1, 0], references=[0, 0, 1, 1], normalize="true"
    )["confusion_matrix"]
    np.testing.assert_allclose(normalized, [[0.0, 1.0], [0.5, 0.5]])


def test_multilabel_confusion_matrix() -> None:
    matrix = load_metric("confusion_matrix", "multilabel").compute(
        predictions=[[1, 0], [1, 1], [0, 0]], references=[[1, 1], [0, 1], [0, 0]]
    )["confusion_matrix"]
    # column 0: tn=1 fp=1 fn=0 tp=1 ; column 1: tn=1 fp=0 fn=1 tp=1
    np.testing.assert_array_equal(matrix, [[[1, 1], [0, 1]], [[1, 0], [1, 1]]])


# --------------------------------------------------------------------------- regression


def test_regression_hand_computed() -> None:
    preds = [2.5, 0.0, 2.0, 8.0]
    refs = [3.0, -0.5, 2.0, 7.0]
    # errors: -0.5, 0.5, 0, 1 -> MSE = (0.25 + 0.25 + 0 + 1) / 4 ; MAE = 2 / 4
    assert load_metric("mse").compute(predictions=preds, references=refs) == {"mse": pytest.approx(0.375)}
    assert load_metric("mae").compute(predictions=preds, references=refs) == {"mae": pytest.approx(0.5)}
    rmse = load_metric("mse").compute(predictions=preds, references=refs, squared=False)
    assert rmse == {"mse": pytest.approx(0.375**0.5)}
    # mean(refs) = 2.875 ; SS_tot = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875 ; SS_res = 1.5
    assert load_metric("r2").compute(predictions=preds, references=refs) == {"r2": pytest.approx(1 - 1.5 / 29.1875)}


def test_r2_known_values() -> None:
    r2 = load_metric("r2")
    assert r2.compute(predictions=[1, 2, 3], references=[1, 2, 3])["r2"] == pytest.approx(1.0)
    # always predicting the mean of the references scores exactly 0
    assert r2.compute(predictions=[2, 2, 2], references=[1, 2, 3])["r2"] == pytest.approx(0.0)
    # SS_res = 8, SS_tot = 2 -> 1 - 4 = -3
    assert r2.compute(predictions=[3, 2, 1], references=[1, 2, 3])["r2"] == pytest.approx(-3.0)
    # constant references: 1.0 if exact, else 0.0 (no NaN / -inf)
    assert r2.compute(predictions=[5, 5], references=[5, 5])["r2"] == 1.0
    assert r2.compute(predictions=[4, 6], references=[5, 5])["r2"] == 0.0


def test_regression_multioutput() -> None:
    preds = [[0.5, 1.0], [-1.0, 1.0], [7.0, -6.0]]
    refs = [[0.0, 2.0], [-1.0, 2.0], [8.0, -5.0]]
    mse = load_metric("mse", "multilist")
    np.testing.assert_allclose(
        mse.compute(predictions=preds, references=refs, multioutput="raw_values")["mse"], [1.25 / 3, 1.0]
    )
    assert mse.compute(predictions=preds, references=refs)["mse"] == pytest.approx((1.25 / 3 + 1.0) / 2)
    mae = load_metric("mae", "multilist").compute(predictions=preds, references=refs, multioutput="raw_values")
    np.testing.assert_allclose(mae["mae"], [0.5, 1.0])
    # RMSE is taken per output, then averaged (not the root of the averaged MSE)
    rmse = mse.compute(predictions=preds, references=refs, squared=False)["mse"]
    assert rmse == pytest.approx(((1.25 / 3) ** 0.5 + 1.0) / 2)
    r2 = load_metric("r2", "multilist").compute(predictions=preds, references=refs, multioutput="raw_values")["r2"]
    # column 0: mean 7/3, SS_tot = 146/3, SS_res = 1.25 ; column 1: mean -1/3, SS_tot = 98/3, SS_res = 3
    np.testing.assert_allclose(r2, [1 - 1.25 / (146 / 3), 1 - 3 / (98 / 3)])


def test_regression_sample_weight() -> None:
    result = load_metric("mae").compute(predictions=[0.0, 0.0], references=[1.0, 3.0], sample_weight=[3, 1])
    assert result["mae"] == pytest.approx((3 * 1 + 1 * 3) / 4)


def test_regression_keeps_float64_precision() -> None:
    # evaluate's Value("float") is float32; the built-ins store float64.
    result = load_metric("mae").compute(predictions=[0.1 + 1e-9], references=[0.1])
    assert result["mae"] == pytest.approx(1e-9, rel=1e-6)


# --------------------------------------------------------------------------- caching / processes


def test_combine_with_evaluate() -> None:
    combined = evaluate.combine([load_metric("accuracy"), load_metric("recall")])
    result = combined.compute(predictions=[1, 0, 1], references=[1, 1, 1])
    assert result == {"accuracy": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3)}


def test_builtins_write_nothing_to_the_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "explicit_cache"
    cache_dir.mkdir()
    for name in BUILTIN_METRICS:
        metric = load_metric(name, cache_dir=str(cache_dir))
        assert metric.keep_in_memory
        metric.add_batch(predictions=[0, 1], references=[0, 1])
        assert metric.compute() is not None
    assert list(cache_dir.iterdir()) == []


def test_results_are_json_serialisable_after_tolist() -> None:
    result = load_metric("f1").compute(predictions=PREDS, references=REFS, average="macro")
    assert isinstance(result["f1"], float)
    json.dumps(result)


_WORKER = textwrap.dedent(
    """
    import json, sys
    from tlzoo.evaluation.metrics import load_metric

    rank, cache_dir = int(sys.argv[1]), sys.argv[2]
    refs = [0, 0, 0, 1, 1, 2]
    preds = [0, 0, 1, 1, 2, 1]
    # 1. Every process computes on its own (gathered) predictions, concurrently: no shared files.
    local = [load_metric("f1").compute(predictions=preds, references=refs, average="macro")["f1"] for _ in range(20)]
    # 2. evaluate's own gathering: each rank adds its shard, rank 0 computes on everything.
    metric = load_metric("f1", num_process=2, process_id=rank, cache_dir=cache_dir, experiment_id="tlzoo-test")
    half = slice(0, 3) if rank == 0 else slice(3, 6)
    metric.add_batch(predictions=preds[half], references=refs[half])
    print(json.dumps({"local": local, "gathered": metric.compute(average="macro")}))
    """
)


def test_two_processes_compute_concurrently(tmp_path: Path) -> None:
    """Two ranks of a distributed run: local computes never collide; num_process=2 gathering works."""
    shared = tmp_path / "shared"
    hf_home = tmp_path / "hf_home"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "HF_HOME": str(hf_home),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(rank), str(shared)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    expected = (0.8 + 0.4 + 0) / 3
    for result in results:
        assert result["local"] == pytest.approx([expected] * 20)
    assert results[0]["gathered"] == {"f1": pytest.approx(expected)}
    assert results[1]["gathered"] is None  # non-main processes get None from evaluate
    # The in-memory computes wrote nothing under the default HF cache ...
    metrics_cache = hf_home / "metrics"
    assert not metrics_cache.exists() or not any(metrics_cache.rglob("*"))
    # ... and evaluate removed the Arrow files it used for gathering.
    assert not list(shared.rglob("*.arrow"))


def test_importing_metrics_and_evaluation_is_lazy(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import tlzoo
        before = set(sys.modules)
        import tlzoo.evaluation.metrics, tlzoo.evaluation
        heavy_roots = ("torch", "transformers", "evaluate", "sklearn")
        heavy = [m for m in set(sys.modules) - before if m.split(".")[0] in heavy_roots]
        assert not heavy, heavy
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HOME": str(tmp_path / "hf_home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("name", "config", "kwargs"),
    [
        ("accuracy", None, {}),
        ("f1", None, {"average": "macro"}),
        ("precision", None, {"average": None, "labels": [0, 1, 2, 3]}),
        ("recall", None, {"average": "weighted"}),
        ("confusion_matrix", None, {}),
        ("f1", "multilabel", {"average": "micro"}),
        ("accuracy", "multilabel", {}),
        ("confusion_matrix", "multilabel", {}),
        ("mse", None, {}),
        ("mae", "multilist", {"multioutput": "raw_values"}),
        ("r2", "multilist", {}),
    ],
)
def test_compute_arrays_matches_compute(name: str, config: str | None, kwargs: dict) -> None:
    rng = np.random.default_rng(0)
    if config == "multilabel":
        preds, refs = rng.integers(0, 2, (40, 4)), rng.integers(0, 2, (40, 4))
    elif name in ("mse", "mae", "r2"):
        shape = (40, 3) if config == "multilist" else (40,)
        preds, refs = rng.normal(size=shape), rng.normal(size=shape)
    else:
        preds, refs = rng.integers(0, 4, 40), rng.integers(0, 4, 40)
    metric = load_metric(name, config)
    via_evaluate = metric.compute(predictions=preds, references=refs, **kwargs)
    direct = metric.compute_arrays(predictions=preds, references=refs, **kwargs)
    assert via_evaluate.keys() == direct.keys()
    for key in direct:
        np.testing.assert_allclose(direct[key], via_evaluate[key])


def test_scores_are_rejected_where_class_ids_are_expected() -> None:
    # datasets' Value("int64") encoding would silently turn 0.9 into class 0; the built-ins refuse it.
    with pytest.raises(ValueError, match="integer class ids"):
        load_metric("accuracy").compute(predictions=[0.2, 0.9], references=[0, 1])
    with pytest.raises(ValueError, match="integer class ids"):
        load_metric("f1", "multilabel").add_batch(predictions=[[0.5, 1.0]], references=[[0, 1]])
    with pytest.raises(ValueError, match="integer class ids"):
        load_metric("confusion_matrix").add(prediction=1.5, reference=1)
    # integral floats are fine
    assert load_metric("accuracy").compute(predictions=[0.0, 1.0], references=[0, 1]) == {"accuracy": 1.0}
    with pytest.raises(ValueError, match="integer"):
        load_metric("accuracy").compute_arrays(predictions=[0.2, 0.9], references=[0, 1])
