"""``tlzoo adapt``, ``tlzoo predict`` and ``tlzoo push``: the summary, --json, plots, exit codes, the Hub."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import keyword_sentences
from hub_server import HubServer

from tlzoo.cli import SELF_HANDLED, main

TOKEN = "hf_alice"
NOISY = ("transformers", "datasets", "accelerate", "huggingface_hub", "httpx", "filelock", "urllib3")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def cli_side_effects(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``main()`` quiets some loggers and sets verbosity variables; undo that after each test."""
    for name in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    levels = {name: logging.getLogger(name).level for name in NOISY}
    propagate = {name: logging.getLogger(name).propagate for name in SELF_HANDLED}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for name, value in propagate.items():
        logging.getLogger(name).propagate = value


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV whose columns have names the CLI cannot guess: ``review`` (text) and ``topic`` (label)."""
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    keyword_sentences(30).rename_columns({"text": "review", "label": "topic"}).to_csv(path, index=False)
    return path


ADAPT = ["--input-column", "review", "--label-column", "topic", "--strategy", "linear_probe", "--epochs", "40",
         "--learning-rate", "0.01", "--batch-size", "16"]  # fmt: skip


@pytest.fixture(scope="module")
def adapted(wide_bert: Path, reviews: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``tlzoo adapt`` run with a summary, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("adapted") / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["adapt", str(wide_bert), str(reviews), *ADAPT, "-o", str(out)])
    return {"code": code, "stdout": stdout.getvalue(), "out": out}


def test_adapt_without_an_output_dir_keeps_the_model_and_says_where(wide_bert: Path, reviews: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["adapt", str(wide_bert), str(reviews), *ADAPT, "--epochs", "2"]) == 0
    runs = list((tmp_path / "tlzoo-runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("bert-")
    assert (runs[0] / "model" / "tlzoo.json").is_file()
    assert f"model: {Path('tlzoo-runs') / runs[0].name / 'model'} (no --output-dir given: saved here" in stdout.getvalue()


def test_adapt_prints_a_summary_and_saves_the_model_with_its_plots(adapted: dict[str, Any]) -> None:
    assert adapted["code"] == 0
    out, stdout = adapted["out"], adapted["stdout"]
    results = json.loads((out / "results.json").read_text())
    test = results["metrics"]["test"]
    assert test["accuracy"] >= 0.8  # the keyword classes are learnable by a linear probe on random features
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("split"))
    assert header.split()[:3] == ["split", "accuracy", "f1"]
    test_row = next(line.split() for line in lines if line.startswith("test "))
    assert float(test_row[1]) == pytest.approx(test["accuracy"], abs=1e-4)
    assert "strategy: linear_probe (" in stdout and "time: " in stdout
    model_dir = out / "model"
    assert f"model: {model_dir}" in stdout
    for name in ("training_curves.png", "confusion_matrix.png"):
        assert f"plot: {model_dir / 'plots' / name}" in stdout
        assert (model_dir / "plots" / name).read_bytes().startswith(PNG)
    card = (model_dir / "README.md").read_text()
    assert "![Training curves](plots/training_curves.png)" in card
    assert "![Confusion matrix](plots/confusion_matrix.png)" in card


def test_adapt_json_is_the_only_stdout(wide_bert: Path, reviews: Path, tmp_path: Path, capsys: Any) -> None:
    code = main(["adapt", str(wide_bert), str(reviews), *ADAPT, "--epochs", "2", "--json", "-o", str(tmp_path / "o")])
    assert code == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # nothing but the JSON document on stdout
    assert report["strategy"] == "linear_probe" and report["strategy_reason"]
    assert set(report["metrics"]) == {"validation", "test"}
    assert 0 <= report["metrics"]["test"]["accuracy"] <= 1 and report["seconds"] > 0
    test = report["metrics"]["test"]  # the per-class scores and the confusion matrix, as in results.json
    assert set(test["per_class"]) == set(test["labels"]) and "f1" in next(iter(test["per_class"].values()))
    matrix = test["confusion_matrix"]
    assert len(matrix) == len(test["labels"]) and sum(map(sum, matrix)) == test["num_examples"]
    assert report["model_dir"] == str(tmp_path / "o" / "model")
    assert report["plots"] == ["plots/confusion_matrix.png", "plots/training_curves.png"]
    assert "%|" not in captured.err  # --json turns progress bars off


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--head-options", "{not json"], "argument --head-options: must be a JSON object"),
        (["--epochs", "many"], "invalid int value"),
        (["--weight-decay", "-1"], "weight_decay must be a number from 0"),
        (["--metric-for-best-model", "bleu", "--early-stopping", "2"], "pass --greater-is-better or --no-greater-is-better"),
        (["--mixed-precision", "fp64"], "invalid choice"),
        (["--strategy", "linear_prob"], "Did you mean 'linear_probe'"),
        (["--task", "regresion"], "Unknown task 'regresion'"),
        (["--epochs", "0"], "must be a positive integer, got 0"),
        (["--batch-size", "-4"], "must be a positive integer, got -4"),
        (["--test-size", "1.5"], "must be a fraction from 0 up to 1"),
        (["--class-weights", "1,two"], "argument --class-weights: must be 'balanced' or comma-separated numbers"),
    ],
)
def test_adapt_usage_errors_exit_2(wide_bert: Path, reviews: Path, tmp_path: Path, capsys: Any, args: list[str],
                                   message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["adapt", str(wide_bert), str(reviews), *args, "-o", str(tmp_path / "o")])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_adapt_bad_data_exits_1_with_the_message_only(wide_bert: Path, reviews: Path, tmp_path: Path,
                                                      capsys: Any, caplog: Any) -> None:
    out = tmp_path / "o"
    assert main(["adapt", str(wide_bert), str(reviews), "--label-column", "stars", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "stars" in err and "topic" in err  # names the column and the choices
    assert "Traceback" not in err and not out.exists()  # raised before any work, nothing written
    caplog.clear()
    assert main(["--debug", "adapt", str(wide_bert), str(reviews), "--label-column", "stars", "-o", str(out)]) == 1
    assert any(record.exc_info for record in caplog.records)  # --debug logs the traceback


def test_advice_names_flags_on_the_command_line_and_arguments_in_python(wide_bert: Path, tmp_path: Path,
                                                                       capsys: Any) -> None:
    import tlzoo
    from tlzoo.errors import ColumnNotFoundError

    unguessable = tmp_path / "notes.csv"  # neither column looks like labels
    unguessable.write_text("note,stars\n" + "".join(f"note {i},{i % 2}\n" for i in range(12)))
    assert main(["adapt", str(wide_bert), str(unguessable), "--input-column", "note", "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "pass --label-column ..." in err and "label_column=" not in err
    with pytest.raises(ColumnNotFoundError, match=r"pass label_column=\.\.\.") as raised:
        tlzoo.adapt(str(wide_bert), str(unguessable), input_column="note")
    assert "--label-column" not in str(raised.value)  # the command's words do not leak into Python afterwards


def test_adapt_without_the_hub_exits_1_with_advice_and_writes_nothing(
    reviews: Path, tmp_path: Path, capsys: Any, online: None, no_backoff_sleep: list[float]
) -> None:
    passed_on: list[logging.LogRecord] = []
    catcher = logging.Handler()
    catcher.emit = passed_on.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(catcher)
    try:  # a zoo entry, not cached, and the tests' Hub endpoint is a closed port
        code = main(["adapt", "all-minilm-l6-v2", str(reviews), *ADAPT, "-o", str(tmp_path / "out")])
    finally:
        logging.getLogger().removeHandler(catcher)
    err = capsys.readouterr().err
    assert code == 1
    assert "Cannot load the source model 'sentence-transformers/all-MiniLM-L6-v2': the Hub at http://127.0.0.1:9 " \
           "cannot be reached" in err
    assert "local model folder" in err and "Traceback" not in err
    assert not no_backoff_sleep, "huggingface_hub retried although one try showed the Hub cannot be reached"
    # its retry warnings print once, through its own handler, not a second time through the root one
    assert not [r for r in passed_on if r.name.startswith("huggingface_hub")]
    assert not (tmp_path / "out").exists()


def test_adapt_refuses_to_overwrite_a_model(adapted: dict[str, Any], wide_bert: Path, reviews: Path,
                                            capsys: Any) -> None:
    model = adapted["out"] / "model"
    before = {p: p.read_bytes() for p in model.rglob("*") if p.is_file()}
    assert main(["adapt", str(wide_bert), str(reviews), *ADAPT, "-o", str(adapted["out"])]) == 1
    err = capsys.readouterr().err
    assert "already holds a model" in err and "--overwrite-output-dir" in err and "--resume" in err
    assert {p: p.read_bytes() for p in model.rglob("*") if p.is_file()} == before


def test_predict_texts_table_and_json(adapted: dict[str, Any], capsys: Any) -> None:
    import tlzoo

    model_dir = str(adapted["out"] / "model")
    texts = ["football goal coach referee", "rain snow storm wind"]
    assert main(["predict", model_dir, *texts, "--json", "--top-k", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["input"] for row in rows] == texts
    expected = tlzoo.load(model_dir).predict(texts, top_k=2)
    assert [row["prediction"] for row in rows] == json.loads(json.dumps(expected))
    assert all(len(row["prediction"]) == 2 for row in rows)
    assert main(["predict", model_dir, texts[0]]) == 0
    table = capsys.readouterr().out
    assert texts[0] in table and f"{expected[0][0]['label']} ({expected[0][0]['score']:.3f})" in table


def test_predict_a_missing_model_exits_1(tmp_path: Path, capsys: Any) -> None:
    assert main(["predict", str(tmp_path / "nowhere"), "some text"]) == 1
    assert "No saved model folder" in capsys.readouterr().err


@pytest.fixture
def hub(hub_server: Callable[..., HubServer]) -> HubServer:
    return hub_server()


def test_push_then_predict_from_the_hub(adapted: dict[str, Any], hub: HubServer, capsys: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tlzoo

    model_dir = adapted["out"] / "model"
    with monkeypatch.context() as patch:  # no token, a namespace not the user's: said before the model loads
        patch.setattr(tlzoo, "load", lambda *a, **k: pytest.fail("the model was loaded before the token was checked"))
        assert main(["push", str(model_dir), "alice/topics", "--endpoint", hub.endpoint]) == 1  # no token anywhere
        assert "needs a token" in capsys.readouterr().err and not hub.repo_exists("alice/topics")
        assert main(["push", str(model_dir), "bob/topics", "--token", TOKEN, "--endpoint", hub.endpoint]) == 1
        assert "bob" in capsys.readouterr().err and not hub.repo_exists("bob/topics")
        assert main(["push", str(adapted["out"] / "nowhere"), "alice/topics", "--token", TOKEN]) == 1
        assert "is not a folder" in capsys.readouterr().err

    # the output folder of tlzoo adapt stands for its model/, as for predict and evaluate
    assert main(["push", str(adapted["out"]), "alice/topics", "--token", TOKEN, "--endpoint", hub.endpoint]) == 0
    assert "Pushed" in capsys.readouterr().out
    files = hub.repo_files("alice/topics")
    assert files["plots/training_curves.png"] == (model_dir / "plots" / "training_curves.png").read_bytes()
    assert files["plots/confusion_matrix.png"].startswith(PNG)
    assert b"![Confusion matrix](plots/confusion_matrix.png)" in files["README.md"]
    assert b"alice/topics" in files["README.md"]  # the card's usage example names the repo

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["predict", "alice/topics", "rain snow storm", "--endpoint", hub.endpoint, "--json"]) == 0
    from_hub = json.loads(capsys.readouterr().out)
    assert main(["predict", str(model_dir), "rain snow storm", "--json"]) == 0
    assert from_hub[0]["prediction"] == json.loads(capsys.readouterr().out)[0]["prediction"]


def test_adapt_push_to_hub(wide_bert: Path, reviews: Path, hub: HubServer, capsys: Any) -> None:
    args = ["adapt", str(wide_bert), str(reviews), *ADAPT, "--epochs", "2", "--json", "--endpoint", hub.endpoint,
            "--token", TOKEN]  # fmt: skip
    assert main([*args, "--push-to-hub", "alice/quick"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["commit_url"].startswith(hub.endpoint) and report["model_dir"] is None
    assert len(hub.commits("alice/quick")) == 1
    assert {"head.safetensors", "README.md", "plots/training_curves.png"} <= set(hub.repo_files("alice/quick"))
    assert main([*args, "--push-to-hub", "bob/not-mine"]) == 1  # checked before training: alice cannot write there
    assert "bob" in capsys.readouterr().err and not hub.repo_exists("bob/not-mine")


def test_evaluate_scores_a_saved_model_on_new_labelled_data(adapted: dict[str, Any], reviews: Path, tmp_path: Path,
                                                            capsys: Any) -> None:
    import pandas as pd

    import tlzoo

    model = tlzoo.load(adapted["out"] / "model")
    frame = pd.read_csv(reviews)
    expected = model.predict(list(frame["review"]))
    accuracy = sum(p["label"] == str(t) for p, t in zip(expected, frame["topic"])) / len(frame)
    assert main(["evaluate", str(adapted["out"]), str(reviews), "--input-column", "review", "--label-column",
                 "topic", "--json"]) == 0  # the output folder of tlzoo adapt: its model/ is used
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["train"]
    assert report["train"]["accuracy"] == pytest.approx(accuracy)
    assert report["train"]["num_examples"] == len(frame)
    assert set(report["train"]["per_class"]) == set(model.label_names)
    worst = report["train"]["hardest"][0]  # the row of the data file, its text and its true label
    assert frame["review"][worst["index"]] == worst["input"] and frame["topic"][worst["index"]] == worst["label"]
    assert main(["evaluate", str(adapted["out"] / "model"), str(reviews), "--input-column", "review",
                 "--label-column", "topic"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "per class" in out and "precision" in out
    assert "Hardest train examples (highest loss first):" in out and worst["input"][:40] in out

    unknown = tmp_path / "unknown.csv"
    frame.assign(topic="astronomy").to_csv(unknown, index=False)
    assert main(["evaluate", str(adapted["out"]), str(unknown), "--input-column", "review", "--label-column",
                 "topic"]) == 1
    assert "'astronomy'" in capsys.readouterr().err


def test_predict_reads_text_files_and_long_texts_and_data_files(adapted: dict[str, Any], reviews: Path,
                                                                tmp_path: Path, capsys: Any) -> None:
    import pandas as pd

    import tlzoo

    model = tlzoo.load(adapted["out"] / "model")
    frame = pd.read_csv(reviews)
    text = frame["review"][0]
    (tmp_path / "note.txt").write_text(text + "\n")
    long_text = " ".join([text] * 40)  # longer than a file name may be
    assert len(long_text) > 300
    assert main(["predict", str(adapted["out"]), str(tmp_path / "note.txt"), long_text, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row, expected in zip(rows, [model.predict(text), model.predict(long_text)]):  # the file's text, not its name
        assert row["prediction"]["label"] == expected["label"]
        assert row["prediction"]["score"] == pytest.approx(expected["score"], abs=1e-5)  # batched with padding

    out = tmp_path / "preds.csv"
    assert main(["predict", str(adapted["out"]), str(reviews), "--input-column", "review", "--output", str(out)]) == 0
    written = pd.read_csv(out)
    assert list(written["review"]) == list(frame["review"]) and list(written["topic"]) == list(frame["topic"])
    assert list(written["prediction"]) == [p["label"] for p in model.predict(list(frame["review"]))]


def test_the_summary_and_the_card_show_the_hardest_test_examples(adapted: dict[str, Any], reviews: Path) -> None:
    import pandas as pd

    topic_of = dict(pd.read_csv(reviews).itertuples(index=False, name=None))  # review -> topic
    results = json.loads((adapted["out"] / "results.json").read_text())
    test = results["metrics"]["test"]
    hardest = test["hardest"]
    assert len(hardest) == min(5, test["num_examples"])
    losses = [row["loss"] for row in hardest]
    assert losses == sorted(losses, reverse=True) and losses[-1] > 0
    for row in hardest:  # each row names the real test example: its text, its true label, the model's answer
        assert topic_of[row["input"]] == row["label"]
        assert row["predicted"] in test["labels"] and 0 < row["probability"] <= 1
        if row["predicted"] == row["label"]:
            assert row["loss"] == pytest.approx(-math.log(row["probability"]), rel=1e-4)
    assert "Hardest test examples (highest loss first):" in adapted["stdout"]
    assert hardest[0]["input"][:40] in adapted["stdout"]
    card = (adapted["out"] / "model" / "README.md").read_text()
    assert "Hardest examples (highest loss first):" in card and hardest[0]["input"][:40] in card
