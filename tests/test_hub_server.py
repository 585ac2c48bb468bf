"""Tests of the fake Hub (`tests/hub_server.py`), driven only by the real `huggingface_hub` client."""

from __future__ import annotations

import os

# Must happen before `huggingface_hub` is imported: both are read once into `huggingface_hub.constants`.
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")  # never the real Hub, even if an endpoint= is missed

import threading
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import CommitOperationDelete, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:  # `tests/` is a rootdir-less directory (pytest puts it on sys.path) ...
    from hub_server import HubServer
except ImportError:  # ... unless it becomes a package
    from tests.hub_server import HubServer  # type: ignore[no-redef]

ALICE = "hf_alice_token"
BOB = "hf_bob_token"
THRESHOLD = 1024
SMALL = {"config.json": b'{"hidden": 8}\n', "nested/deep/notes.txt": b"regular file\n", "empty.txt": b""}
LARGE = {"model.safetensors": os.urandom(3 * THRESHOLD), "nested/weights.bin": os.urandom(THRESHOLD)}


@pytest.fixture
def hub(hub_server: Callable[..., HubServer]) -> HubServer:
    return hub_server(tokens={ALICE: "alice", BOB: "bob"}, orgs={"acme": ["alice"]}, lfs_threshold=THRESHOLD)


@pytest.fixture
def alice(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=ALICE)


@pytest.fixture
def bob(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=BOB)


def make_folder(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "upload", {**SMALL, **LARGE})


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------ lifecycle


def test_server_binds_localhost_and_stops_on_exit() -> None:
    before = {t.name for t in threading.enumerate()}
    with HubServer() as server:
        endpoint = server.endpoint
        assert endpoint.startswith("http://127.0.0.1:")
        assert server.storage_endpoint.startswith("http://127.0.0.1:")
        assert server.storage_endpoint != endpoint
    assert not any(t.name.startswith("HubServer-") and t.name not in before for t in threading.enumerate())
    with pytest.raises(httpx2.TransportError):  # raw HTTP: works whatever HF_HUB_OFFLINE says
        httpx2.get(f"{endpoint}/api/models/alice/anything", timeout=5)


def test_unknown_route_is_a_loud_404(hub: HubServer, alice: HfApi) -> None:
    alice.create_repo("alice/m")
    with pytest.raises(HfHubHTTPError) as exc_info:
        alice.list_repo_refs("alice/m")  # /api/models/alice/m/refs is not implemented
    assert exc_info.value.response.status_code == 404
    assert not isinstance(exc_info.value, RepositoryNotFoundError)  # no X-Error-Code: not mistaken for a missing repo
    assert "no route" in str(exc_info.value)
    assert hub.requests[-1].route == "unknown"


def test_fail_next_validates_arguments(hub: HubServer) -> None:
    with pytest.raises(ValueError):
        hub.fail_next("nope", status=500)
    with pytest.raises(ValueError):
        hub.fail_next("commit")  # neither status nor drop
    with pytest.raises(ValueError):
        hub.fail_next("commit", status=500, drop=True)
    hub.fail_next("commit", status=500, count=3)
    assert hub.pending_faults("commit") == 3
    hub.clear_faults()
    assert hub.pending_faults() == 0


# ------------------------------------------------------------------------------------------ auth & repos


def test_whoami(hub: HubServer, alice: HfApi) -> None:
    me = alice.whoami()
    assert me["name"] == "alice"
    assert [org["name"] for org in me["orgs"]] == ["acme"]
    with pytest.raises(HfHubHTTPError) as exc_info:
        HfApi(endpoint=hub.endpoint).whoami(token="hf_wrong")
    assert exc_info.value.response.status_code == 401


def test_create_repo_new_and_exist_ok(hub: HubServer, alice: HfApi) -> None:
    url = alice.create_repo("alice/m")
    assert url == f"{hub.endpoint}/alice/m"
    assert url.repo_id == "alice/m"
    assert hub.repo_exists("alice/m")
    assert hub.commits("alice/m") == []  # unlike the real Hub, no initial commit by default

    again = alice.create_repo("alice/m", exist_ok=True)
    assert again.repo_id == "alice/m"
    assert [r.status for r in hub.requests_for("create")] == [200, 409]

    dataset_url = alice.create_repo("acme/data", repo_type="dataset", private=True)  # org namespace
    assert dataset_url == f"{hub.endpoint}/datasets/acme/data"
    assert hub.repo_exists("acme/data", repo_type="dataset")


def test_create_repo_conflict_without_exist_ok(hub: HubServer, alice: HfApi) -> None:
    alice.create_repo("alice/m")
    with pytest.raises(HfHubHTTPError) as exc_info:
        alice.create_repo("alice/m")
    assert exc_info.value.response.status_code == 409
    assert exc_info.value.response.json()["url"] == f"{hub.endpoint}/alice/m"


def test_create_repo_in_someone_elses_namespace(hub: HubServer, alice: HfApi, bob: HfApi) -> None:
    with pytest.raises(HfHubHTTPError) as exc_info:
        bob.create_repo("alice/stolen")
    assert exc_info.value.response.status_code == 403
    assert "You don't have the rights" in str(exc_info.value)
    assert not hub.repo_exists("alice/stolen")

    # Like the real client against the real Hub: exist_ok=True turns a 403 into a repo_info look-up.
    alice.create_repo("alice/public")
    assert bob.create_repo("alice/public", exist_ok=True).repo_id == "alice/public"
    assert hub.requests[-1].route == "info"
    with pytest.raises(HfHubHTTPError) as exc_info:
        bob.create_repo("alice/missing", exist_ok=True)
    assert exc_info.value.response.status_code == 403


def test_create_repo_with_bad_token(hub: HubServer) -> None:
    with pytest.raises(HfHubHTTPError) as exc_info:
        HfApi(endpoint=hub.endpoint, token="hf_wrong").create_repo("alice/m")
    assert exc_info.value.response.status_code == 401
    assert "Invalid credentials" in str(exc_info.value)
    assert not hub.repo_exists("alice/m")


def test_create_repo_injected_failure_is_not_retried(hub: HubServer, alice: HfApi) -> None:
    hub.fail_next("create", status=503)
    with pytest.raises(HfHubHTTPError) as exc_info:
        alice.create_repo("alice/m")
    assert exc_info.value.response.status_code == 503
    assert [r.status for r in hub.requests_for("create")] == [503]
    assert not hub.repo_exists("alice/m")
    assert alice.create_repo("alice/m", exist_ok=True).repo_id == "alice/m"


# ------------------------------------------------------------------------------------------ upload & read


def test_upload_folder_regular_and_lfs_in_one_commit(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    info = alice.upload_folder(repo_id="alice/m", folder_path=folder, commit_message="first upload")

    commits = hub.commits("alice/m")
    assert len(commits) == 1
    assert commits[0]["message"] == "first upload"
    assert commits[0]["author"] == "alice"
    assert info.oid == commits[0]["oid"]
    assert info.commit_url == f"{hub.endpoint}/alice/m/commit/{info.oid}"
    assert info.repo_url.repo_id == "alice/m"

    assert hub.repo_files("alice/m") == {**SMALL, **LARGE}
    assert hub.lfs_files("alice/m") == set(LARGE)
    assert len(hub.requests_for("commit")) == 1
    assert len(hub.requests_for("lfs_upload")) == len(LARGE)
    assert len(hub.requests_for("lfs_verify")) == len(LARGE)


def test_info_and_listing(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    commit = alice.upload_folder(repo_id="alice/m", folder_path=folder)

    info = alice.model_info("alice/m", files_metadata=True)
    assert info.id == "alice/m"
    assert info.sha == commit.oid
    assert info.private is False
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == set(SMALL) | set(LARGE)
    big = siblings["model.safetensors"]
    assert big.lfs is not None and big.lfs.size == len(LARGE["model.safetensors"])
    assert siblings["config.json"].lfs is None and siblings["config.json"].size == len(SMALL["config.json"])

    assert alice.repo_info("alice/m", revision=commit.oid).sha == commit.oid
    assert sorted(alice.list_repo_files("alice/m")) == sorted([*SMALL, *LARGE])
    top_level = {entry.path: type(entry).__name__ for entry in alice.list_repo_tree("alice/m")}
    assert top_level == {
        "config.json": "RepoFile",
        "empty.txt": "RepoFile",
        "model.safetensors": "RepoFile",
        "nested": "RepoFolder",
    }
    assert {e.path for e in alice.list_repo_tree("alice/m", path_in_repo="nested")} == {
        "nested/deep",
        "nested/weights.bin",
    }
    with pytest.raises(RevisionNotFoundError):
        alice.model_info("alice/m", revision="0" * 40)


def test_snapshot_download_into_empty_cache(hub: HubServer, alice: HfApi, folder: Path, tmp_path: Path) -> None:
    alice.create_repo("alice/m")
    commit = alice.upload_folder(repo_id="alice/m", folder_path=folder)
    cache = tmp_path / "cache"
    cache.mkdir()

    local = snapshot_download("alice/m", endpoint=hub.endpoint, cache_dir=cache, token=ALICE)

    assert Path(local).name == commit.oid
    assert tree_bytes(Path(local)) == {**SMALL, **LARGE}
    # LFS files are fetched from the storage origin after the 302, regular ones straight from /resolve.
    assert len(hub.requests_for("cdn_download")) == len(LARGE)
    assert {r.status for r in hub.requests_for("resolve") if r.method == "HEAD"} == {200, 302}


def test_hf_hub_download_regular_and_lfs(hub: HubServer, alice: HfApi, folder: Path, tmp_path: Path) -> None:
    alice.create_repo("alice/m")
    alice.upload_folder(repo_id="alice/m", folder_path=folder)

    for name in ("nested/deep/notes.txt", "nested/weights.bin"):
        path = hf_hub_download("alice/m", name, endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=False)
        assert Path(path).read_bytes() == {**SMALL, **LARGE}[name]
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("alice/m", "missing.txt", endpoint=hub.endpoint, cache_dir=tmp_path / "c", token=False)


def test_unchanged_upload_creates_no_commit(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    first = alice.upload_folder(repo_id="alice/m", folder_path=folder)
    second = alice.upload_folder(repo_id="alice/m", folder_path=folder)  # preupload reports identical oids
    assert second.oid == first.oid
    assert len(hub.commits("alice/m")) == 1

    (folder / "config.json").write_bytes(b'{"hidden": 16}\n')
    third = alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert third.oid != first.oid
    assert hub.repo_files("alice/m")["config.json"] == b'{"hidden": 16}\n'
    assert hub.repo_files("alice/m", revision=first.oid)["config.json"] == SMALL["config.json"]


def test_private_repo_not_readable_by_another_token(hub: HubServer, alice: HfApi, bob: HfApi, tmp_path: Path) -> None:
    alice.create_repo("alice/secret", private=True)
    alice.upload_file(path_or_fileobj=b"classified", path_in_repo="secret.txt", repo_id="alice/secret")
    assert alice.model_info("alice/secret").private is True

    with pytest.raises(RepositoryNotFoundError):
        bob.model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.endpoint, token=False).model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "secret.txt", endpoint=hub.endpoint, cache_dir=tmp_path, token=BOB)
    with pytest.raises(RepositoryNotFoundError):
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/secret")
    assert len(hub.commits("alice/secret")) == 1
    assert [r.status for r in hub.requests_for("info")][-2:] == [404, 401]  # as the Hub: 404 with a token, 401 without


def test_dataset_repo_in_org_namespace(hub: HubServer, alice: HfApi, bob: HfApi, folder: Path, tmp_path: Path) -> None:
    alice.create_repo("acme/data", repo_type="dataset", private=True)
    alice.upload_folder(repo_id="acme/data", repo_type="dataset", folder_path=folder)
    assert hub.repo_files("acme/data", repo_type="dataset") == {**SMALL, **LARGE}
    assert any(r.path == "/datasets/acme/data.git/info/lfs/objects/batch" for r in hub.requests_for("lfs_batch"))

    path = hf_hub_download(
        "acme/data", "model.safetensors", repo_type="dataset", endpoint=hub.endpoint, cache_dir=tmp_path, token=ALICE
    )
    assert Path(path).read_bytes() == LARGE["model.safetensors"]
    with pytest.raises(RepositoryNotFoundError):
        bob.dataset_info("acme/data")


def test_seed_repo_and_initial_commit(tmp_path: Path, hub_server: Callable[..., HubServer]) -> None:
    server = hub_server(tokens={ALICE: "alice"}, lfs_threshold=THRESHOLD, initial_commit=True)
    oid = server.seed_repo("alice/seeded", {**SMALL, **LARGE})
    assert server.lfs_files("alice/seeded") == set(LARGE)
    local = snapshot_download("alice/seeded", endpoint=server.endpoint, cache_dir=tmp_path, token=False)
    assert Path(local).name == oid
    assert tree_bytes(Path(local)) == server.repo_files("alice/seeded")
    assert set(server.repo_files("alice/seeded")) == {".gitattributes", *SMALL, *LARGE}

    HfApi(endpoint=server.endpoint, token=ALICE).create_repo("alice/fresh")
    assert [c["message"] for c in server.commits("alice/fresh")] == ["initial commit"]
    assert set(server.repo_files("alice/fresh")) == {".gitattributes"}


def test_deletions_and_stale_parent_commit(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    first = alice.upload_folder(repo_id="alice/m", folder_path=folder)
    alice.upload_file(path_or_fileobj=b"v2", path_in_repo="extra.txt", repo_id="alice/m")

    with pytest.raises(HfHubHTTPError) as exc_info:
        alice.create_commit(
            "alice/m",
            operations=[CommitOperationDelete("config.json")],
            commit_message="stale",
            parent_commit=first.oid,
        )
    assert exc_info.value.response.status_code == 412
    assert len(hub.commits("alice/m")) == 2

    alice.create_commit(
        "alice/m",
        operations=[CommitOperationDelete("config.json"), CommitOperationDelete("nested/", is_folder=True)],
        commit_message="cleanup",
    )
    assert set(hub.repo_files("alice/m")) == {"empty.txt", "extra.txt", "model.safetensors"}
    with pytest.raises(RemoteEntryNotFoundError):
        alice.delete_file("does-not-exist.txt", repo_id="alice/m")
    assert len(hub.commits("alice/m")) == 3


# ------------------------------------------------------------------------------------------ failures


def test_commit_401(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    with pytest.raises(HfHubHTTPError) as exc_info:
        HfApi(endpoint=hub.endpoint, token="hf_wrong").upload_folder(repo_id="alice/m", folder_path=folder)
    assert exc_info.value.response.status_code == 401  # rejected before anything is uploaded
    assert hub.requests_for("lfs_upload") == []

    hub.fail_next("commit", status=401)
    with pytest.raises(HfHubHTTPError) as exc_info:
        alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert exc_info.value.response.status_code == 401
    assert [r.status for r in hub.requests_for("commit")] == [401]
    assert hub.commits("alice/m") == []


def test_commit_500_is_not_retried(hub: HubServer, alice: HfApi, folder: Path, no_backoff_sleep: list[float]) -> None:
    alice.create_repo("alice/m")
    hub.fail_next("commit", status=500, count=2)
    with pytest.raises(HfHubHTTPError) as exc_info:
        alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert exc_info.value.response.status_code == 500
    assert [r.status for r in hub.requests_for("commit")] == [500]  # create_commit posts the commit once
    assert no_backoff_sleep == []
    assert hub.commits("alice/m") == []
    assert hub.pending_faults("commit") == 1


def test_preupload_500_is_retried_with_backoff(
    hub: HubServer, alice: HfApi, folder: Path, no_backoff_sleep: list[float]
) -> None:
    alice.create_repo("alice/m")
    hub.fail_next("preupload", status=500, count=2)
    alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert [r.status for r in hub.requests_for("preupload")] == [500, 500, 200]
    assert no_backoff_sleep == [1, 2]  # http_backoff: exponential, starting at 1 s
    assert len(hub.commits("alice/m")) == 1


def test_dropped_lfs_upload_then_retry(
    hub: HubServer, alice: HfApi, folder: Path, no_backoff_sleep: list[float]
) -> None:
    alice.create_repo("alice/m")
    # Each LFS file is PUT in its own thread, with 1 attempt + 5 http_backoff retries: drop all of them.
    hub.fail_next("lfs_upload", drop=True, count=6 * len(LARGE))

    with pytest.raises(RuntimeError, match="Error while uploading"):
        alice.upload_folder(repo_id="alice/m", folder_path=folder)

    assert hub.commits("alice/m") == []
    assert hub.requests_for("commit") == []
    assert [r.status for r in hub.requests_for("lfs_upload")] == [None] * 6 * len(LARGE)
    assert sorted(no_backoff_sleep) == sorted([1, 2, 4, 8, 8] * len(LARGE))
    assert hub.pending_faults() == 0

    alice.upload_folder(repo_id="alice/m", folder_path=folder)
    commits = hub.commits("alice/m")
    assert len(commits) == 1
    assert commits[0]["files"] == {**SMALL, **LARGE}


def test_dropped_lfs_upload_absorbed_by_client_retry(
    hub: HubServer, alice: HfApi, folder: Path, no_backoff_sleep: list[float]
) -> None:
    alice.create_repo("alice/m")
    hub.fail_next("lfs_upload", drop=True)
    alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert [r.status for r in hub.requests_for("lfs_upload")].count(None) == 1
    assert no_backoff_sleep == [1]
    assert hub.repo_files("alice/m") == {**SMALL, **LARGE}


def test_dropped_commit_leaves_no_partial_commit(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    hub.fail_next("commit", drop=True)
    with pytest.raises(httpx2.RemoteProtocolError):  # not retried, not wrapped in HfHubHTTPError
        alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert hub.commits("alice/m") == []
    assert [r.status for r in hub.requests_for("commit")] == [None]

    # A commit that landed but whose answer was lost: the retry makes a second commit.
    hub.fail_next("commit", drop=True, after_apply=True)
    with pytest.raises(httpx2.RemoteProtocolError):
        alice.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id="alice/m")
    assert hub.repo_files("alice/m") == {"a.txt": b"v1"}
    assert len(hub.commits("alice/m")) == 1


def test_commit_referencing_missing_lfs_object_is_rejected(hub: HubServer, alice: HfApi, folder: Path) -> None:
    alice.create_repo("alice/m")
    hub.fail_next("lfs_upload", status=403, count=1)  # 4xx: not retried, object never stored
    with pytest.raises(RuntimeError):
        alice.upload_folder(repo_id="alice/m", folder_path=folder)
    assert hub.commits("alice/m") == []


def test_resolve_500_fallback_and_retries(
    hub: HubServer, alice: HfApi, tmp_path: Path, no_backoff_sleep: list[float]
) -> None:
    alice.create_repo("alice/m")
    alice.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id="alice/m")

    # The first HEAD is not retried; as the file is not cached, hf_hub_download tries again with http_backoff.
    hub.fail_next("resolve", status=500)
    path = hf_hub_download("alice/m", "a.txt", endpoint=hub.endpoint, cache_dir=tmp_path / "a", token=ALICE)
    assert Path(path).read_bytes() == b"hello"
    assert [(r.method, r.status) for r in hub.requests_for("resolve")] == [("HEAD", 500), ("HEAD", 200), ("GET", 200)]
    assert no_backoff_sleep == []

    hub.fail_next("resolve", status=500, count=7)  # 1 + (1 attempt + 5 retries)
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download("alice/m", "a.txt", endpoint=hub.endpoint, cache_dir=tmp_path / "b", token=ALICE)
    assert [r.status for r in hub.requests_for("resolve")][3:] == [500] * 7
    assert no_backoff_sleep == [1, 2, 4, 8, 8]


def test_dropped_downloads(
    hub: HubServer, alice: HfApi, folder: Path, tmp_path: Path, no_backoff_sleep: list[float]
) -> None:
    alice.create_repo("alice/m")
    alice.upload_folder(repo_id="alice/m", folder_path=folder)

    hub.fail_next("cdn_download", drop=True, count=2)  # http_get resumes by itself, 1 s apart
    path = hf_hub_download("alice/m", "model.safetensors", endpoint=hub.endpoint, cache_dir=tmp_path, token=ALICE)
    assert Path(path).read_bytes() == LARGE["model.safetensors"]
    assert [r.status for r in hub.requests_for("cdn_download")] == [None, None, 200]
    assert no_backoff_sleep == [1, 1]

    hub.fail_next("resolve", drop=True)  # a dropped HEAD is not caught by hf_hub_download
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download("alice/m", "config.json", endpoint=hub.endpoint, cache_dir=tmp_path, token=ALICE)
