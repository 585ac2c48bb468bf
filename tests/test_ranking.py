"""``tlzoo.rank`` and ``tlzoo rank`` on a graded family of tiny source models whose true order is measured.

The family (:mod:`tlzoo.testing.families`): one tiny BERT pre-trained on the
target's four topics, one on three of them, and the same network with random
weights. Each is also fine-tuned on the target (``lp_ft``) and evaluated on a
held-out test split, and the ranking must agree with those accuracies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tlzoo
from tlzoo.errors import (
    ColumnNotFoundError,
    ConfigurationError,
    DataError,
    TlzooError,
    UnknownModelError,
)
from tlzoo.testing.families import build_text_family, family_target

MEMBERS = ("all-topics", "three-topics", "random")


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own, fresh feature cache (the counts of extracted examples below depend on it)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("rank-cache")
        patch.setenv("TLZOO_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    # 5 epochs at a high learning rate: pre-trained enough for a clear order, in about 2 s
    folders = build_text_family(tmp_path_factory.mktemp("family"), MEMBERS, epochs=5, learning_rate=6e-3)
    return {name: str(path) for name, path in folders.items()}


@pytest.fixture(scope="module")
def target() -> Any:
    """8 training sentences per topic, and a test split of 25 per topic that rank() must not look at."""
    from datasets import DatasetDict

    return DatasetDict(train=family_target(8, seed=10), test=family_target(25, seed=11))


@pytest.fixture(scope="module")
def ranked(family: dict[str, str], target: Any, tmp_path_factory: pytest.TempPathFactory) -> tlzoo.Ranking:
    return tlzoo.rank([family[m] for m in MEMBERS], target, progress=False,
                      output_dir=tmp_path_factory.mktemp("ranking"))


def _name(source: str) -> str:
    return Path(source).name


def test_the_graded_family_is_ranked_in_its_true_order(family: dict[str, str], target: Any,
                                                      ranked: tlzoo.Ranking) -> None:
    from scipy.stats import kendalltau

    assert [_name(row["source"]) for row in ranked.rows] == list(MEMBERS)
    assert [row["rank"] for row in ranked.rows] == [1, 2, 3]
    assert _name(ranked.best) == "all-topics"
    scores = [row["score"] for row in ranked.rows]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    # the truth: each candidate fine-tuned on the training split, scored on the test split rank() never saw
    # (lp_ft: 28 examples make one optimizer step an epoch, too few for full fine-tuning from a random head;
    # lp_epochs: its probe trained by gradient steps on the cached features, a second or so)
    accuracy = {}
    for member in MEMBERS:
        result = tlzoo.adapt(family[member], target, strategy="lp_ft", epochs=5, learning_rate=3e-4, lp_epochs=20,
                             validation_size=0.0, save_strategy="no", progress=False)
        accuracy[member] = result.metrics["test"]["accuracy"]
    assert accuracy["all-topics"] > accuracy["three-topics"] > accuracy["random"] + 0.1, accuracy
    tau = kendalltau([row["score"] for row in ranked.rows], [accuracy[_name(r["source"])] for r in ranked.rows])
    assert tau.statistic == pytest.approx(1.0), (tau, accuracy)


def test_rows_carry_every_estimator_and_only_the_train_split_is_scored(ranked: tlzoo.Ranking) -> None:
    assert ranked.task == "single_label_classification"
    assert ranked.metrics == {"knn": "accuracy", "logme": "log_evidence", "linear_probe": "accuracy"}
    # split as adapt() splits (validation_size=0.1 of train): only the 28 left for training are scored
    assert ranked.data["scored_split"] == "train" and ranked.data["scored_examples"] == 28
    assert ranked.data["split_sizes"] == {"train": 28, "test": 100, "validation": 4}
    for row in ranked.rows:
        assert {"rank", "source", "score", "knn", "logme", "linear_probe", "seconds", "error"} <= set(row)
        assert row["error"] is None and row["seconds"] > 0 and row["feature_size"] == 32
        phases = {"load", "features", "knn", "logme", "linear_probe"} | ({"held_out_features"} if row["rank"] == 1
                                                                         else set())
        assert set(row["timings"]) == phases and sum(row["timings"].values()) <= row["seconds"] + 1e-3
        assert 0 <= row["knn"] <= 1 and 0 <= row["linear_probe"] <= 1
        # the train split's 28 examples; and the winner's held-out ones too, so adapt(best) finds them all
        cache = row["feature_cache"]
        expected = 132 if row["rank"] == 1 else 28
        assert cache["cached"] + cache["computed"] <= expected and cache["computed"] >= expected - 2  # repeats: once
    for name in ("knn", "logme", "linear_probe"):  # on this family, every estimator agrees on the order
        values = [row[name] for row in ranked.rows]
        assert values == sorted(values, reverse=True), (name, values)


def test_adapt_of_the_winner_extracts_nothing_again(ranked: tlzoo.Ranking, target: Any) -> None:
    result = tlzoo.adapt(ranked.best, target, strategy="linear_probe", epochs=2, validation_size=0.0,
                         save_strategy="no", progress=False)
    assert result.recipe["feature_cache"] == {"cached": 132, "computed": 0}


def test_the_held_out_split_is_never_scored(family: dict[str, str], target: Any) -> None:
    """Scrambling the test split's labels changes nothing: only the training split is scored."""
    from datasets import DatasetDict

    test = target["test"]
    scrambled = test.map(lambda ex, i: {"label": (ex["label"] + 1 + i % 3) % 4}, with_indices=True)
    sources = [family["three-topics"], family["random"]]
    one = tlzoo.rank(sources, target, progress=False, warm_cache=False)
    two = tlzoo.rank(sources, DatasetDict(train=target["train"], test=scrambled), progress=False, warm_cache=False)
    keys = ("source", "score", "knn", "logme", "linear_probe")
    assert [{k: r[k] for k in keys} for r in one.rows] == [{k: r[k] for k in keys} for r in two.rows]


def test_outputs_json_markdown_and_chart(ranked: tlzoo.Ranking) -> None:
    assert ranked.output_dir is not None
    written = json.loads((ranked.output_dir / "ranking.json").read_text())
    assert written["best"] == ranked.best and written["rows"] == json.loads(json.dumps(ranked.rows))
    assert "mean rank position" in written["score"]
    png = (ranked.output_dir / "ranking.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    markdown = ranked.to_markdown()
    assert markdown.splitlines()[0].startswith("| rank | source | score | k-NN accuracy | LogME |")
    assert len(markdown.splitlines()) == 2 + len(MEMBERS)
    assert ranked.to_dict()["rows"][0]["rank"] == 1
    assert str(ranked) == markdown


def _registry(tmp_path: Path, entries: dict[str, tuple[str, str]]) -> Path:
    """A registry file of ``name: (hub_id, modality)`` entries."""
    lines = "".join(f"  - {{name: {name}, hub_id: '{hub_id}', modality: {modality}, license: mit, params: 100000, "
                    f"feature_size: 32, description: tiny}}\n" for name, (hub_id, modality) in entries.items())
    registry = tmp_path / "registry.yaml"
    registry.write_text("models:\n" + lines)
    return registry


def test_failing_candidates_are_kept_with_their_error(family: dict[str, str], target: Any, tiny_models: Any,
                                                      tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((Path(family["random"]) / "config.json").read_text())  # no weights
    registry = _registry(tmp_path, {"family-video": ("some-org/video-model", "video")})
    vit = str(tiny_models("vit"))
    ranking = tlzoo.rank([vit, str(broken), family["random"], "no-such-model", "family-video"], target,
                         registry=registry, progress=False)
    by_name = {row["source"]: row for row in ranking.rows}
    assert ranking.rows[0]["source"] == family["random"] and ranking.rows[0]["rank"] == 1
    assert "reads image" in by_name[vit]["error"] and "holds text" in by_name[vit]["error"]  # modality mismatch
    assert by_name[str(broken)]["error"] and by_name[str(broken)]["rank"] is None  # fails to load
    assert "Unknown source model 'no-such-model'" in by_name["no-such-model"]["error"]
    assert "No installed plugin provides the 'video' modality" in by_name["family-video"]["error"]
    assert [row["score"] for row in ranking.rows[1:]] == [None] * 4
    assert ranking.best == family["random"] and len(ranking.scored) == 1
    assert "no-such-model" in ranking.to_markdown()


def test_no_candidate_that_can_be_ranked(tiny_models: Any, target: Any) -> None:
    ranking = tlzoo.rank([str(tiny_models("vit"))], target, modality="text", progress=False)
    assert ranking.rows[0]["error"] and ranking.to_dict()["best"] is None and ranking.scored == []
    with pytest.raises(TlzooError, match="No candidate source model could be ranked"):
        _ = ranking.best


def test_candidates_that_cannot_be_found_fail_before_the_data_is_read(target: Any, tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="Unknown source model 'no-such-model'"):
        tlzoo.rank(["no-such-model"], "./no/such/data.csv", progress=False)  # adapt()'s error, the data unread
    with pytest.raises(UnknownModelError, match=r"None of the 2 candidate.*no-such-model: .*\./missing: "):
        tlzoo.rank(["no-such-model", "./missing"], target, progress=False)
    from tlzoo.errors import ModalityNotAvailableError

    with pytest.raises(ModalityNotAvailableError, match="'video'"):  # a known model, but no plugin reads it
        tlzoo.rank(["family-video"], target, progress=False,
                   registry=_registry(tmp_path, {"family-video": ("some/model", "video")}))


def test_zoo_patterns(family: dict[str, str], target: Any, tmp_path: Path) -> None:
    registry = _registry(tmp_path, {f"family-{m}": (family[m], "text") for m in ("three-topics", "random")})
    ranking = tlzoo.rank("family-*", target, registry=registry, progress=False)
    assert [row["source"] for row in ranking.rows] == ["family-three-topics", "family-random"]
    assert ranking.rows[0]["hub_id"] == family["three-topics"]
    with pytest.raises(UnknownModelError, match="No zoo entry of modality 'image' matches 'family-\\*'"):
        tlzoo.rank("family-*", target, registry=registry, modality="image", progress=False)


def test_bad_inputs_fail_before_any_model_loads(family: dict[str, str], target: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.ranking import rank as rank_module

    loaded: list[Any] = []
    monkeypatch.setattr(rank_module, "_build_extractor", lambda *args, **kwargs: loaded.append(args))
    source = [family["random"]]
    with pytest.raises(ColumnNotFoundError, match="Label column 'topic' not found"):
        tlzoo.rank(source, target, label_column="topic", progress=False)
    with pytest.raises(DataError, match="No text column"):
        tlzoo.rank(source, target["train"].map(lambda ex: {"text": len(ex["text"])}), progress=False)
    with pytest.raises(ConfigurationError, match="No source models to rank"):
        tlzoo.rank([], target, progress=False)
    with pytest.raises(ConfigurationError, match="Unknown task 'ranking'"):
        tlzoo.rank(source, target, task="ranking", progress=False)
    with pytest.raises(ConfigurationError, match="folds must be an integer of at least 2"):
        tlzoo.rank(source, target, folds=1, progress=False)
    with pytest.raises(ConfigurationError, match="test_size must be a fraction"):  # adapt()'s own check
        tlzoo.rank(source, target, test_size=1.5, progress=False)
    with pytest.raises(DataError, match="does not exist"):
        tlzoo.rank(source, "./no/such/data.csv", progress=False)
    assert loaded == []


def test_regression_and_multi_label_targets(family: dict[str, str]) -> None:
    data = family_target(10, seed=3)
    sources = [family["all-topics"], family["random"]]
    values = data.map(lambda ex: {"score": float(ex["label"] == 0) + 0.1 * len(ex["text"]) / 60})
    ranking = tlzoo.rank(sources, values.remove_columns("label"), label_column="score", progress=False)
    assert ranking.task == "regression" and ranking.metrics["knn"] == "r2"
    assert _name(ranking.best) == "all-topics"
    names = data.features["label"].names
    tags = data.map(lambda ex, i: {"tags": [names[ex["label"]], *([names[(ex["label"] + 1) % 4]] if i % 2 else [])]},
                    with_indices=True)
    ranking = tlzoo.rank(sources, tags.remove_columns("label"), label_column="tags", progress=False)
    assert ranking.task == "multi_label_classification" and ranking.metrics["linear_probe"] == "f1_micro"
    assert _name(ranking.best) == "all-topics" and all(row["error"] is None for row in ranking.rows)


def test_only_the_main_process_logs_and_writes(family: dict[str, str], target: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """Another process of a multi-process run ranks the same, but logs nothing and writes nothing."""
    from tlzoo.training import train

    real = train.make_accelerator

    class OtherProcess:
        def __init__(self, accelerator: Any) -> None:
            self._accelerator = accelerator

        is_main_process = False

        def __getattr__(self, name: str) -> Any:
            return getattr(self._accelerator, name)

    monkeypatch.setattr(train, "make_accelerator", lambda **kwargs: OtherProcess(real(**kwargs)))
    caplog.set_level(logging.INFO, logger="tlzoo.ranking")
    ranking = tlzoo.rank([family["random"], "no-such-model"], target, progress=False, output_dir=tmp_path / "out")
    assert ranking.best == family["random"] and ranking.output_dir == tmp_path / "out"
    assert not (tmp_path / "out").exists()
    assert [r for r in caplog.records if r.name.startswith("tlzoo.ranking")] == []


# --- adapt() of the best candidate ---------------------------------------------------------------
@pytest.fixture
def counted_extraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A fresh feature cache, and the number of examples each backbone run went over."""
    from tlzoo.features import extraction

    monkeypatch.setenv("TLZOO_CACHE", str(tmp_path / "fresh-cache"))
    runs: list[int] = []
    real = extraction._Extraction.__call__
    monkeypatch.setattr(extraction._Extraction, "__call__", lambda self, mine: runs.append(len(mine)) or real(self, mine))
    return runs


def test_the_two_line_flow_extracts_nothing_twice(family: dict[str, str], counted_extraction: list[int]) -> None:
    data = family_target(6, seed=21)  # 24 sentences: 15 train, 4 validation (one per topic), 5 test as adapt() splits them
    candidates = [family["random"], family["all-topics"]]
    result = tlzoo.adapt(tlzoo.rank(candidates, data, progress=False).best, data, strategy="linear_probe",
                         progress=False, save_strategy="no")
    assert result.recipe["source"]["hub_id"] == family["all-topics"]
    assert result.recipe["feature_cache"] == {"cached": 24, "computed": 0}
    assert counted_extraction == [15, 15, 9]  # each candidate's train split, then the winner's held-out splits


def test_adapt_of_candidates_ranks_them_and_adapts_the_best(family: dict[str, str], tmp_path: Path,
                                                           counted_extraction: list[int]) -> None:
    data = family_target(6, seed=21)
    candidates = [family["random"], family["three-topics"], family["all-topics"]]
    result = tlzoo.adapt(candidates, data, strategy="linear_probe", output_dir=tmp_path / "out", progress=False)
    assert result.recipe["source"]["hub_id"] == family["all-topics"]
    ranking = result.recipe["ranking"]
    assert ranking["best"] == ranking["rows"][0]["source"] == family["all-topics"]
    assert {r["source"] for r in ranking["rows"]} == set(candidates) and ranking["data"]["scored_examples"] == 15
    # the features the ranking cached are all adapt() needed: nothing went through a backbone twice
    assert result.recipe["feature_cache"] == {"cached": 24, "computed": 0}
    assert counted_extraction == [15, 15, 15, 9]
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["recipe"]["ranking"]["best"] == family["all-topics"]
    assert (tmp_path / "out" / "ranking" / "ranking.json").is_file()
    assert (tmp_path / "out" / "ranking" / "ranking.png").is_file()
    assert tlzoo.load(tmp_path / "out" / "model").recipe["ranking"]["best"] == family["all-topics"]


def test_adapt_of_a_zoo_pattern(family: dict[str, str], tmp_path: Path) -> None:
    registry = _registry(tmp_path, {f"family-{m}": (family[m], "text") for m in ("three-topics", "random")})
    result = tlzoo.adapt("family-*", family_target(6, seed=21), registry=registry, strategy="linear_probe",
                         progress=False, save_strategy="no")
    assert result.recipe["source"]["name"] == "family-three-topics"
    assert [r["source"] for r in result.recipe["ranking"]["rows"]] == ["family-three-topics", "family-random"]
    assert "ranking" not in tlzoo.adapt(family["random"], family_target(6, seed=21), strategy="linear_probe",
                                        progress=False, save_strategy="no").recipe


def test_adapt_of_candidates_none_of_which_can_be_ranked(family: dict[str, str], tiny_models: Any,
                                                        target: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((Path(family["random"]) / "config.json").read_text())  # no weights
    with pytest.raises(TlzooError, match=f"No candidate source model could be ranked \\({broken}: "):
        tlzoo.adapt([str(broken), "no-such-model"], target, progress=False, output_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "model").exists()
    with pytest.raises(DataError, match="reads image, but the data has no image column"):  # adapt()'s own error
        tlzoo.adapt([str(tiny_models("vit"))], target, progress=False)
    with pytest.raises(ConfigurationError, match="No source models to rank"):
        tlzoo.adapt([], target, progress=False)


def test_candidates_on_the_hub_count_as_needing_it(tmp_path: Path) -> None:
    """adapt() goes offline when the Hub cannot be reached and a source is not on disk: candidates too."""
    from tlzoo.options import AdaptOptions
    from tlzoo.workflow import _uses_hub

    assert _uses_hub([str(tmp_path), "some-org/some-model"], str(tmp_path), AdaptOptions())
    assert not _uses_hub([str(tmp_path), str(tmp_path)], str(tmp_path), AdaptOptions())


# --- the command line -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_target(target: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("target") / "data"
    target.save_to_disk(str(folder))
    return str(folder)


def test_cli_table_and_recommendation(family: dict[str, str], saved_target: str, capsys: Any, tmp_path: Path,
                                      ranked: tlzoo.Ranking) -> None:
    from tlzoo.cli import main

    assert main(["rank", saved_target, family["random"], family["all-topics"], "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["rank", "source", "score", "k-NN"]
    assert lines[2].split()[:3] == ["1", family["all-topics"], "1.000"]
    assert f"written: {tmp_path / 'o'}" in lines
    assert lines[-1] == f"recommended: {family['all-topics']}"
    assert (tmp_path / "o" / "ranking.png").is_file() and (tmp_path / "o" / "ranking.json").is_file()


def test_cli_json_and_best(family: dict[str, str], saved_target: str, capsys: Any, ranked: tlzoo.Ranking) -> None:
    from tlzoo.cli import main

    assert main(["rank", saved_target, family["random"], family["three-topics"], "--json", "--seed", "0"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["source"] for row in rows] == [family["three-topics"], family["random"]]
    assert set(rows[0]) >= {"rank", "source", "score", "knn", "logme", "linear_probe", "seconds", "error"}
    assert main(["rank", saved_target, family["random"], family["three-topics"], "--best"]) == 0
    assert capsys.readouterr().out.strip() == family["three-topics"]


def test_cli_exit_codes(family: dict[str, str], saved_target: str, tiny_models: Any, capsys: Any) -> None:
    from tlzoo.cli import main

    for argv, message in (([], "name the candidate source models"), ([family["random"], "--folds", "1"], "--folds"),
                          ([family["random"], "--test-size", "1.5"], "test_size must be a fraction"),
                          ([family["random"], "--task", "ranking"], "Unknown task 'ranking'")):
        with pytest.raises(SystemExit) as usage:
            main(["rank", saved_target, *argv])
        assert usage.value.code == 2 and message in capsys.readouterr().err
    assert main(["rank", saved_target, family["random"], "--label-column", "topic"]) == 1
    assert "Error: Label column 'topic' not found" in capsys.readouterr().err
    vit = str(tiny_models("vit"))
    assert main(["rank", saved_target, vit, "--modality", "text", "--json"]) == 1  # nothing could be ranked
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["error"] and "No candidate source model could be ranked" in captured.err


def test_cli_prints_on_the_main_process_only(family: dict[str, str], saved_target: str, capsys: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.cli import main
    from tlzoo.cli import rank as rank_command

    monkeypatch.setattr(rank_command, "_is_main_process", lambda: False)
    assert main(["rank", saved_target, family["random"]]) == 0
    assert capsys.readouterr().out == ""


def test_cli_adapt_of_candidates(family: dict[str, str], saved_target: str, capsys: Any, tmp_path: Path) -> None:
    from tlzoo.cli import main

    out = tmp_path / "out"
    code = main(["adapt", f"{family['random']},{family['all-topics']}", saved_target, "--strategy", "linear_probe",
                 "--validation-size", "0", "-o", str(out), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["model_dir"] == str(out / "model")
    recipe = json.loads((out / "results.json").read_text())["recipe"]
    assert recipe["source"]["hub_id"] == family["all-topics"] and recipe["ranking"]["best"] == family["all-topics"]
    assert recipe["feature_cache"]["computed"] == 0
    assert (out / "ranking" / "ranking.png").is_file()
