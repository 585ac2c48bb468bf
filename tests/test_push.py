"""push_to_hub against the local fake Hub: one commit, a valid card, clear errors, safe retries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import huggingface_hub
import pytest
import torch
from hub_server import HubServer
from huggingface_hub import ModelCard
from test_model import TEXTS, make_model

from tlzoo.errors import HubError
from tlzoo.hub import check_push_target
from tlzoo.model import AdaptedModel, load

TOKEN = "hf_alice"


@pytest.fixture
def hub(hub_server: Callable[..., HubServer]) -> HubServer:
    return hub_server(orgs={"acme": ["alice"]})


@pytest.fixture(autouse=True)
def no_stored_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HF_TOKEN and no `hf auth login` token (HF_HOME is a fresh folder in tests)."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    assert huggingface_hub.get_token() is None


@pytest.fixture(scope="module")
def model(tiny_models: Callable[[str], Path]) -> AdaptedModel:
    return make_model(tiny_models, "bert", pooling="pooler")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_push_then_load_round_trip(
    model: AdaptedModel, hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = model.push_to_hub("alice/tiny-text", token=TOKEN, endpoint=hub.endpoint)
    commits = hub.commits("alice/tiny-text")
    assert len(commits) == 1
    assert url.startswith(hub.endpoint) and "alice/tiny-text" in url

    local = tree(model.save_pretrained(tmp_path / "local"))
    pushed = hub.repo_files("alice/tiny-text")
    assert set(pushed) == set(local)  # every file, in that one commit
    assert pushed["head.safetensors"] == local["head.safetensors"]

    loaded = load("alice/tiny-text", endpoint=hub.endpoint, token=TOKEN, cache_dir=tmp_path / "cache")
    assert loaded.predict(TEXTS) == model.predict(TEXTS)
    torch.testing.assert_close(loaded.logits(TEXTS), model.logits(TEXTS), atol=1e-6, rtol=0)

    readme = tmp_path / "README.md"
    readme.write_bytes(pushed["README.md"])
    card = ModelCard.load(readme)
    assert card.data.library_name == "transformers"  # the folder serves pipeline("text-classification")
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.base_model == "tlzoo-tests/tiny-bert" and card.data.license == "apache-2.0"
    assert {"tlzoo", "text", "linear_probe", "transfer-learning"} <= set(card.data.tags)
    assert {(r.dataset_split, r.metric_type, r.metric_value) for r in card.data.eval_results} == {
        ("test", "accuracy", 0.5),
        ("test", "f1", 0.4),
    }
    assert 'tlzoo.load("alice/tiny-text")' in card.text
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
    card.validate()  # the Hub's own /api/validate-yaml
    assert hub.requests_for("validate_yaml")[-1].status == 200


def test_push_uses_hf_token_and_a_new_push_is_one_more_commit(
    model: AdaptedModel, tiny_models: Callable[[str], Path], hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    first = model.push_to_hub("alice/m", endpoint=hub.endpoint)
    assert model.push_to_hub("alice/m", endpoint=hub.endpoint) == first  # unchanged: no empty commit
    hub.seed_repo("alice/m", {"pytorch_model.bin": b"stale pickle", "notes.md": b"mine"})  # an older upload
    retrained = make_model(tiny_models, "bert", pooling="pooler", seed=1)
    second = retrained.push_to_hub("alice/m", endpoint=hub.endpoint, commit_message="Retrained")
    assert second != first
    commits = hub.commits("alice/m")
    assert commits[-1]["message"] == "Retrained"
    files = hub.repo_files("alice/m")
    assert "pytorch_model.bin" not in files and files["notes.md"] == b"mine"  # stale weights go, the rest stays


def test_no_token_fails_before_any_request(model: AdaptedModel, hub: HubServer) -> None:
    with pytest.raises(HubError, match=r"needs a token.*hf auth login.*HF_TOKEN"):
        model.push_to_hub("alice/m", endpoint=hub.endpoint)
    assert hub.requests == []


def test_invalid_token(model: AdaptedModel, hub: HubServer) -> None:
    with pytest.raises(HubError, match=r"rejected the token \(401 Unauthorized\).*hf auth login"):
        model.push_to_hub("alice/m", token="hf_wrong", endpoint=hub.endpoint)
    assert not hub.repo_exists("alice/m")


def test_someone_elses_namespace(model: AdaptedModel, hub: HubServer) -> None:
    with pytest.raises(HubError, match=r"you cannot write to bob/m \(403 Forbidden\)"):
        model.push_to_hub("bob/m", token=TOKEN, endpoint=hub.endpoint)
    assert not hub.repo_exists("bob/m")
    # bob's existing repo: created by bob, still not writable by alice
    model.push_to_hub("bob/m", token="hf_bob", endpoint=hub.endpoint)
    with pytest.raises(HubError, match=r"you cannot write to bob/m"):
        model.push_to_hub("bob/m", token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.commits("bob/m")) == 1


@pytest.mark.parametrize(
    ("route", "count"),
    [("lfs_upload", 1000), ("preupload", 6), ("commit", 1)],
    ids=["mid-upload", "preupload", "commit"],
)
def test_dropped_connection_then_retry(
    model: AdaptedModel, hub: HubServer, tmp_path: Path, no_backoff_sleep: list[float], route: str, count: int
) -> None:
    local = model.save_pretrained(tmp_path / "my-model")
    before = tree(local)
    hub.fail_next(route, drop=True, count=count)
    with pytest.raises(HubError, match=rf"could not reach {hub.endpoint}.*nothing was committed.*retry"):
        model.push_to_hub("alice/m", token=TOKEN, endpoint=hub.endpoint)
    assert hub.commits("alice/m") == []
    assert any(r.route == route and r.status is None for r in hub.requests)
    assert tree(local) == before  # the user's folder is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-model"]

    hub.clear_faults()
    model.push_to_hub("alice/m", token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.commits("alice/m")) == 1
    assert set(hub.repo_files("alice/m")) == set(before)


def test_server_error_on_commit(model: AdaptedModel, hub: HubServer) -> None:
    hub.fail_next("commit", status=500)
    with pytest.raises(HubError, match=r"answered HTTP 500.*Retry"):
        model.push_to_hub("alice/m", token=TOKEN, endpoint=hub.endpoint)
    assert hub.commits("alice/m") == []
    model.push_to_hub("alice/m", token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.commits("alice/m")) == 1


def test_load_of_a_missing_repo(hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(HubError, match=r"no model repo 'alice/nothing'"):
        load("alice/nothing", endpoint=hub.endpoint, token=TOKEN, cache_dir=tmp_path)


def test_load_when_the_hub_is_unreachable(online: None, tmp_path: Path) -> None:
    with pytest.raises(HubError, match=r"the Hub at http://127.0.0.1:9 cannot be reached"):
        load("alice/anything", endpoint="http://127.0.0.1:9", cache_dir=tmp_path)


def test_push_in_offline_mode(model: AdaptedModel, hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match=r"HF_HUB_OFFLINE is set"):
        model.push_to_hub("alice/m", token=TOKEN, endpoint=hub.endpoint)
    assert hub.requests == []


def test_check_push_target_before_training(hub: HubServer) -> None:
    assert check_push_target("alice/m", token=TOKEN, endpoint=hub.endpoint) == "alice"
    assert check_push_target("acme/m", token=TOKEN, endpoint=hub.endpoint) == "alice"  # an org of alice
    expected = r"You cannot write to bob/m: your token belongs to 'alice' \(member of acme\), not to 'bob'"
    with pytest.raises(HubError, match=expected):
        check_push_target("bob/m", token=TOKEN, endpoint=hub.endpoint)
    with pytest.raises(HubError, match=r"rejected the token \(401"):
        check_push_target("alice/m", token="hf_wrong", endpoint=hub.endpoint)
    with pytest.raises(HubError, match="not a valid Hub repo id"):
        check_push_target("alice/bad name", token=TOKEN, endpoint=hub.endpoint)
    before = len(hub.requests)
    with pytest.raises(HubError, match="needs a token"):
        check_push_target("alice/m", endpoint=hub.endpoint)
    assert len(hub.requests) == before
    assert not hub.repo_exists("alice/m")  # a check creates nothing


def test_push_with_a_plot_into_an_org(model: AdaptedModel, hub: HubServer, tmp_path: Path) -> None:
    from test_model import image

    plot = tmp_path / "curves.png"
    image(0).save(plot)
    model.push_to_hub("acme/m", token=TOKEN, endpoint=hub.endpoint, extra_files={"plots/training_curves.png": plot})
    files = hub.repo_files("acme/m")
    assert files["plots/training_curves.png"] == plot.read_bytes()
    assert b"![Training curves](plots/training_curves.png)" in files["README.md"]
