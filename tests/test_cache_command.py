"""``tlzoo cache``: list, size, verify and clear the feature cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tlzoo.cli import main
from tlzoo.features.cache import FeatureCache, shard_files, shard_names


def fill(root: Path, key: str, source: str, rows: int = 5, shards: int = 1) -> FeatureCache:
    cache = FeatureCache(key, root, info={"source": source, "modality": "image", "feature_size": 4})
    for s in range(shards):
        digests = [bytes([s, i]) * 8 for i in range(rows)]
        cache.add(digests, np.ones((rows, 4), np.float32))
    return cache


@pytest.fixture
def two_sets(tmp_path: Path) -> tuple[Path, FeatureCache, FeatureCache]:
    root = tmp_path / "cache"
    return root, fill(root, "a" * 32, "google/vit-base", shards=2), fill(root, "b" * 32, "/models/tiny-bert")


def test_list_shows_each_feature_set_with_its_source_rows_and_size(two_sets: Any, capsys: Any) -> None:
    root = two_sets[0]
    assert main(["cache", "list", "--cache-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "google/vit-base" in out and "/models/tiny-bert" in out and "aaaaaaaaaaaa" in out
    assert "Scanned 2 feature set(s)" in out and str(root / "features") in out
    assert main(["cache", "list", "--cache-dir", str(root), "--json"]) == 0
    listed = {e["source"]: e for e in json.loads(capsys.readouterr().out)}
    assert listed["google/vit-base"]["rows"] == 10 and listed["google/vit-base"]["shards"] == 2
    assert listed["/models/tiny-bert"]["problems"] == [] and listed["/models/tiny-bert"]["size_on_disk"] > 0


def test_list_of_an_empty_or_missing_cache(tmp_path: Path, capsys: Any) -> None:
    assert main(["cache", "list", "--cache-dir", str(tmp_path / "none")]) == 0
    assert "Scanned 0 feature set(s)" in capsys.readouterr().out


def test_size_is_the_bytes_on_disk(two_sets: Any, capsys: Any) -> None:
    root = two_sets[0]
    assert main(["cache", "size", "--cache-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["size_on_disk"] == sum(
        p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert main(["cache", "size", "--cache-dir", str(root)]) == 0
    assert str(root) in capsys.readouterr().out


def test_verify_names_a_damaged_shard_fails_and_fix_removes_it(two_sets: Any, capsys: Any) -> None:
    from tlzoo.features import cache as cache_module

    root, vit, _ = two_sets
    assert main(["cache", "verify", "--cache-dir", str(root)]) == 0
    assert "Checked 3 shard(s)" in capsys.readouterr().out
    data = shard_files(vit.path, shard_names(vit.path)[0])[0]
    array = np.load(data)
    np.save(data, array * 2, allow_pickle=False)  # same size, same header: only the digest tells
    cache_module._CHECKED.clear()
    assert main(["cache", "verify", "--cache-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert str(data) in out and "digest" in out
    assert main(["cache", "verify", "--cache-dir", str(root), "--fix", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["file"] for p in report["problems"]] == [str(data)] and not data.exists()
    assert main(["cache", "verify", "--cache-dir", str(root)]) == 0
    assert "all match their digests" in capsys.readouterr().out


def test_clear_asks_first_and_deletes_only_what_is_named(two_sets: Any, capsys: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, vit, bert = two_sets
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(SystemExit) as info:  # not a terminal and no --yes: a usage error, nothing deleted
        main(["cache", "clear", "--cache-dir", str(root)])
    assert info.value.code == 2 and vit.path.is_dir() and bert.path.is_dir()
    assert main(["cache", "clear", "*vit*", "--cache-dir", str(root), "--dry-run"]) == 0
    assert "Dry run" in capsys.readouterr().out and vit.path.is_dir()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert main(["cache", "clear", "*vit*", "--cache-dir", str(root)]) == 0
    assert vit.path.is_dir()
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(["cache", "clear", "*vit*", "--cache-dir", str(root)]) == 0
    assert not vit.path.exists() and bert.path.is_dir()
    assert "freed" in capsys.readouterr().out
    assert main(["cache", "clear", "bbbb", "--cache-dir", str(root), "--yes"]) == 0  # a key prefix
    assert not bert.path.exists()


def test_clear_of_an_unknown_selector_is_an_error_with_close_matches(two_sets: Any, capsys: Any) -> None:
    root = two_sets[0]
    assert main(["cache", "clear", "google/vit-bas", "--cache-dir", str(root), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "No cached features match 'google/vit-bas'" in err and "google/vit-base" in err
    assert len(list((root / "features").iterdir())) == 2


def test_the_cache_root_defaults_to_tlzoo_cache(two_sets: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLZOO_CACHE", str(two_sets[0]))
    assert main(["cache", "list"]) == 0
    assert "google/vit-base" in capsys.readouterr().out
