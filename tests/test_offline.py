"""No network: a Hub that cannot be reached is noticed in one try, cached models still load, the rest fails at once.

The tests' Hub endpoint is a closed loopback port (see conftest), so the Hub is
unreachable here exactly as on a machine with no network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import in_hub_cache, keyword_sentences

import tlzoo
from tlzoo.cli import main
from tlzoo.errors import HubError


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    keyword_sentences(8).to_csv(path, index=False)
    return path


@pytest.fixture
def cached_bert(wide_bert: Path, online: None) -> Iterator[str]:
    """A Hub id whose files are in the local Hugging Face cache, as a download leaves them."""
    with in_hub_cache(wide_bert, "alice/cached-bert") as repo_id:
        yield repo_id


def test_an_unreachable_hub_fails_at_once_before_the_data_are_read(reviews: Path, tmp_path: Path, capsys: Any,
                                                                      caplog: Any, online: None,
                                                                      no_backoff_sleep: list[float]) -> None:
    from huggingface_hub import constants

    code = main(["adapt", "all-minilm-l6-v2", str(reviews), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "working offline, from local folders and the cache" in caplog.text
    assert ("Cannot load the source model 'sentence-transformers/all-MiniLM-L6-v2': the Hub at http://127.0.0.1:9 "
            "cannot be reached, and the local cache") in err
    assert not no_backoff_sleep, "huggingface_hub retried although the Hub had been found unreachable"
    assert "Target data" not in caplog.text and not (tmp_path / "out").exists()  # failed before the data were read
    assert constants.HF_HUB_OFFLINE is False  # the offline switch is for the run only


def test_a_cached_model_loads_and_trains_while_the_hub_cannot_be_reached(cached_bert: str, reviews: Path,
                                                                          no_backoff_sleep: list[float],
                                                                          caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, logger="tlzoo.hub"):
        result = tlzoo.adapt(cached_bert, str(reviews), strategy="linear_probe", progress=False)
    assert result.recipe["source"]["hub_id"] == cached_bert and result.metrics["test"]["accuracy"] >= 0
    assert not no_backoff_sleep  # read from the cache at once, no retries first
    assert any("cannot be reached: working offline" in r.getMessage() for r in caplog.records)


def test_offline_mode_set_by_the_user_fails_before_the_data_are_read(reviews: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: Any, caplog: Any) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set, so only the local cache"):
        tlzoo.adapt("someone/not-cached", str(reviews))
    assert main(["adapt", "all-minilm-l6-v2", str(reviews)]) == 1
    err = capsys.readouterr().err
    assert "HF_HUB_OFFLINE is set" in err and "Target data" not in caplog.text


def test_local_work_does_not_ask_for_the_hub(wide_bert: Path, reviews: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tlzoo.hub

    monkeypatch.setattr(tlzoo.hub, "hub_reachable", lambda *a, **k: pytest.fail("asked for the Hub"))
    result = tlzoo.adapt(str(wide_bert), str(reviews), strategy="linear_probe", progress=False)
    assert result.metrics["test"]["num_examples"] > 0


def test_a_hub_dataset_id_fails_at_once_when_the_hub_cannot_be_reached(wide_bert: Path, capsys: Any, online: None,
                                                                        no_backoff_sleep: list[float]) -> None:
    assert main(["adapt", str(wide_bert), "someone/reviews"]) == 1
    err = capsys.readouterr().err
    assert ("Cannot load dataset 'someone/reviews': the Hub at http://127.0.0.1:9 cannot be reached, and the local "
            "cache does not hold it") in err and "HF_HUB_OFFLINE" not in err and "Traceback" not in err
    assert not no_backoff_sleep


def test_hub_reachable_asks_once_and_respects_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.hub import hub_reachable

    assert hub_reachable("http://127.0.0.1:9") is False  # a closed port: refused at once
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub_reachable("http://127.0.0.1:9") is True  # behind a proxy the libraries' own requests decide


def test_a_hub_model_to_predict_with_fails_at_once_when_the_hub_cannot_be_reached(capsys: Any, online: None,
                                                                                 no_backoff_sleep: list[float]) -> None:
    assert main(["predict", "someone/topics", "some text"]) == 1
    err = capsys.readouterr().err
    assert "Cannot download someone/topics: the Hub at http://127.0.0.1:9 cannot be reached" in err
    assert not no_backoff_sleep
