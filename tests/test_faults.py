"""Fault injection: every fault a run meets leaves a clear message and nothing lost or silently wrong.

Each case asserts one of three outcomes: the same result as an undisturbed
run (resume after a kill, recomputation after damage, with a warning naming
the file), a named tlzoo error before any work, or the user's files unchanged.
The kill -9 cases fork the test process, so the killed run is a real process
killed with SIGKILL at a point chosen by a seed; they are marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import colour_images

import tlzoo
from tlzoo.errors import TrainingError
from tlzoo.training.checkpoints import STATE_FILE, scan_checkpoints

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut *path* to a fraction of its length, as a power loss during its write does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_bytes(path: Path) -> None:
    """Invert 8 bytes in the middle of *path*'s data (past a safetensors header): the same size, the same header."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little") if path.suffix == ".safetensors" else 0
    middle = start + (len(data) - start) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def same_result(a: Any, b: Any) -> None:
    """Two adapt() results are the same run, bit for bit: the same losses, head weights and test metrics."""
    assert [h["epoch"] for h in a.history] == [h["epoch"] for h in b.history]
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    for (name, p), q in zip(a.model.head.state_dict().items(), b.model.head.state_dict().values()):
        assert torch.equal(p, q), name
    assert a.metrics["test"] == b.metrics["test"]


# --- checkpoints: damaged files of each kind ------------------------------------------------------
# keep_checkpoints: these tests damage and resume from the checkpoints a finished run leaves
PROBE = {"strategy": "linear_probe", "epochs": 3, "learning_rate": 1e-2, "batch_size": 8, "progress": False,
         "keep_checkpoints": True}


@pytest.fixture(scope="module")
def probe_run(tiny_models: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """A finished 3-epoch run with its checkpoints (epochs 2 and 3), kept pristine: tests copy it."""
    out = tmp_path_factory.mktemp("probe-run") / "out"
    return tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, **PROBE), out


def _copy_run(probe_run: tuple[Any, Path], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(probe_run[1], out)
    return out


DAMAGE: dict[str, Callable[[Path], None]] = {
    "empty trainer state": lambda ck: (ck / STATE_FILE).write_bytes(b""),
    "torn trainer state": lambda ck: truncate(ck / STATE_FILE),
    "trainer state of another kind": lambda ck: (ck / STATE_FILE).write_text('{"epoch": 3}'),
    "truncated model.safetensors": lambda ck: truncate(ck / "model.safetensors", 0.9),
    "garbage safetensors header": lambda ck: (ck / "model.safetensors").write_bytes(
        b"\xff" * 8 + (ck / "model.safetensors").read_bytes()[8:]),
    "truncated optimizer.bin": lambda ck: truncate(ck / "optimizer.bin"),
    "missing optimizer.bin": lambda ck: (ck / "optimizer.bin").unlink(),
    "same-size corrupted model.safetensors": lambda ck: flip_bytes(ck / "model.safetensors"),
    "same-size corrupted optimizer.bin": lambda ck: flip_bytes(ck / "optimizer.bin"),
    "unfinished save (no trainer state)": lambda ck: (ck / STATE_FILE).unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_latest_checkpoint_is_skipped_and_resume_gives_the_same_result(
        damage: str, probe_run: tuple[Any, Path], tiny_models: Any, tmp_path: Path, caplog: Any) -> None:
    out = _copy_run(probe_run, tmp_path)
    latest = out / "checkpoints" / "linear_probe-epoch-0003"
    DAMAGE[damage](latest)
    with caplog.at_level("WARNING", logger="tlzoo.training.checkpoints"):
        resumed = tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, resume_from=True, **PROBE)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(latest) in w for w in warnings), warnings
    assert any("linear_probe-epoch-0002" in w and "latest complete" in w for w in warnings), warnings
    same_result(probe_run[0], resumed)
    # the epoch was trained again and its checkpoint is whole now
    assert latest in scan_checkpoints(out / "checkpoints", warn=False)[0]


def test_no_complete_checkpoint_is_a_training_error_listing_each(probe_run: tuple[Any, Path], tiny_models: Any,
                                                                 tmp_path: Path) -> None:
    out = _copy_run(probe_run, tmp_path)
    DAMAGE["empty trainer state"](out / "checkpoints" / "linear_probe-epoch-0003")
    DAMAGE["truncated model.safetensors"](out / "checkpoints" / "linear_probe-epoch-0002")
    with pytest.raises(TrainingError, match="No complete checkpoint") as info:
        tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, resume_from=True, **PROBE)
    assert "linear_probe-epoch-0002" in str(info.value) and "linear_probe-epoch-0003" in str(info.value)
    assert "truncated" in str(info.value)


def test_resuming_from_a_named_damaged_checkpoint_names_it(probe_run: tuple[Any, Path], tiny_models: Any,
                                                           tmp_path: Path) -> None:
    out = _copy_run(probe_run, tmp_path)
    named = out / "checkpoints" / "linear_probe-epoch-0003"
    DAMAGE["torn trainer state"](named)
    with pytest.raises(TrainingError, match="cannot be resumed from") as info:
        tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, resume_from=str(named), **PROBE)
    assert str(named / STATE_FILE) in str(info.value) and "resume_from=True" in str(info.value)


def test_a_checkpoint_from_before_digests_is_checked_by_size(probe_run: tuple[Any, Path], tmp_path: Path) -> None:
    from tlzoo.training.checkpoints import checkpoint_problem, find_checkpoint

    out = _copy_run(probe_run, tmp_path)
    for checkpoint in scan_checkpoints(out / "checkpoints", warn=False)[0]:
        state = json.loads((checkpoint / STATE_FILE).read_text())
        state["files"] = {name: record["bytes"] for name, record in state["files"].items()}
        (checkpoint / STATE_FILE).write_text(json.dumps(state))
    latest = out / "checkpoints" / "linear_probe-epoch-0003"
    assert find_checkpoint(True, out / "checkpoints") == latest
    truncate(latest / "optimizer.bin")
    assert "truncated" in checkpoint_problem(latest, verify=True)


def test_a_named_checkpoint_changed_in_place_is_refused_by_its_digest(probe_run: tuple[Any, Path], tiny_models: Any,
                                                                      tmp_path: Path) -> None:
    from tlzoo.training.checkpoints import checkpoint_problem

    out = _copy_run(probe_run, tmp_path)
    named = out / "checkpoints" / "linear_probe-epoch-0003"
    flip_bytes(named / "model.safetensors")
    assert checkpoint_problem(named) is None  # sizes and headers agree: only the digest tells
    with pytest.raises(TrainingError, match="cannot be resumed from") as info:
        tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, resume_from=str(named), **PROBE)
    assert str(named / "model.safetensors") in str(info.value) and "SHA-256" in str(info.value)


def test_the_trainer_state_lists_every_file_and_is_written_atomically(probe_run: tuple[Any, Path],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    checkpoint = probe_run[1] / "checkpoints" / "linear_probe-epoch-0003"
    from tlzoo.durable import sha256_file

    state = json.loads((checkpoint / STATE_FILE).read_text())
    on_disk = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in checkpoint.iterdir()
               if p.name != STATE_FILE}
    assert state["files"] == on_disk and "model.safetensors" in on_disk
    import hashlib

    model = checkpoint / "model.safetensors"
    assert on_disk["model.safetensors"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    # a write that fails half-way leaves the old file whole, and no temporary file behind
    from tlzoo import durable

    target = tmp_path / STATE_FILE
    target.write_text('{"old": true}')
    monkeypatch.setattr(durable.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        durable.write_atomic(target, json.dumps({"new": True}))
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]


# --- kill -9 at random points of training ----------------------------------------------------------
LP_FT = {"strategy": "lp_ft", "lp_epochs": 2, "epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "progress": False,
         "keep_checkpoints": True}


class KillPoints:
    """Counts the points where a run writes a file or ends a step; at point *kill_at* the process is killed.

    A kill inside a write first writes half of the file's bytes, as a kill -9
    or a power loss in the middle of that write leaves it.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kill_at: int | None = None) -> None:
        import accelerate.utils.other
        import safetensors.torch
        import transformers.modeling_utils  # noqa: F401 (modules that bind the writers on import: imported unpatched)

        import tlzoo.features.extraction
        import tlzoo.model.adapted
        import tlzoo.training.train  # noqa: F401
        from tlzoo.training import loop

        self.count, self.kill_at, self.names = 0, kill_at, []
        for owner, name in [(torch, "save"), (safetensors.torch, "save_file"), (accelerate.utils.other, "safe_save_file"),
                            (np, "save")]:
            monkeypatch.setattr(owner, name, self._writer(getattr(owner, name), name))
        for owner, name in [(os, "replace"), (loop, "end_of_epoch"), (loop, "_train_epoch"),
                            (loop, "evaluate")]:
            monkeypatch.setattr(owner, name, self._point(getattr(owner, name), name))

    def _hit(self, name: str) -> bool:
        self.count += 1
        self.names.append(name)
        return self.count == self.kill_at

    def _point(self, real: Callable[..., Any], name: str) -> Callable[..., Any]:
        def point(*args: Any, **kwargs: Any) -> Any:
            if self._hit(name):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return point

    def _writer(self, real: Callable[..., Any], name: str) -> Callable[..., Any]:
        def writer(first: Any, second: Any, *args: Any, **kwargs: Any) -> Any:
            file = first if name == "save" and isinstance(first, str | os.PathLike) else second  # np.save(file, array)
            if not self._hit(name) or not isinstance(file, str | os.PathLike):
                return real(first, second, *args, **kwargs)
            real(first, second, *args, **kwargs)
            truncate(Path(file))
            os.kill(os.getpid(), signal.SIGKILL)
        return writer


def run_forked(body: Callable[[], None], timeout: float = 240.0) -> int:
    """Run *body* in a forked child; its wait status (a child that raises exits 3, one that returns 0)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            body()
            code = 0
        except BaseException:  # noqa: BLE001 (the child reports any failure by its exit code)
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"the forked run did not end within {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def lp_ft_run(tiny_models: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, int]:
    """An undisturbed lp_ft run (probe then fine-tuning, checkpoints each epoch) and how many kill points it has."""
    root, source = tmp_path_factory.mktemp("lp-ft"), str(tiny_models("vit"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLZOO_CACHE", str(root / "cache"))
        points = KillPoints(patch)
        result = tlzoo.adapt(source, colour_images(8), output_dir=root / "out", **LP_FT)
    return result, points.count


@pytest.mark.slow
@fork_only
@pytest.mark.parametrize("seed", [1, 3, 4, 11, 27, 39])
def test_kill_9_at_a_random_point_then_resume_gives_the_same_result(seed: int, lp_ft_run: tuple[Any, int],
                                                                     tiny_models: Any, tmp_path: Path) -> None:
    straight, points = lp_ft_run
    kill_at = int(np.random.default_rng(seed).integers(1, points + 1))
    out, cache = tmp_path / "out", tmp_path / "cache"

    def killed_run() -> None:
        os.environ["TLZOO_CACHE"] = str(cache)
        with pytest.MonkeyPatch.context() as patch:
            KillPoints(patch, kill_at)
            tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, **LP_FT)

    status = run_forked(killed_run)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"kill point {kill_at}/{points}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLZOO_CACHE", str(cache))
        if scan_checkpoints(out / "checkpoints", warn=False)[0]:
            again = tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, resume_from=True, **LP_FT)
        else:  # killed before the first checkpoint completed: nothing to resume, a new run starts cleanly
            with pytest.raises(TrainingError, match="checkpoint"):
                tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, resume_from=True, **LP_FT)
            again = tlzoo.adapt(str(tiny_models("vit")), colour_images(8), output_dir=out, **LP_FT)
    same_result(straight, again)
    assert tlzoo.load(out / "model").label_names == straight.model.label_names
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # a killed save's staging is cleaned up


# --- the feature cache: damaged shards are dropped and computed again -------------------------------
def _shard(root: Path, rows: int = 6, width: int = 4) -> tuple[Any, list[bytes], np.ndarray]:
    from tlzoo.features.cache import FeatureCache

    cache = FeatureCache("k" * 32, root)
    digests = [bytes([i]) * 16 for i in range(rows)]
    features = np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    cache.add(digests, features)
    return cache, digests, features


def _files(cache: Any) -> tuple[Path, Path, Path]:
    from tlzoo.features.cache import shard_files, shard_names

    (name,) = shard_names(cache.path)
    return shard_files(cache.path, name)


def _plausible_floats(data: Path) -> None:
    """The same shape, a valid header, other numbers: only the digest tells."""
    array = np.load(data)
    np.save(data, np.full_like(array, 0.5), allow_pickle=False)


CACHE_DAMAGE: dict[str, Callable[[Path, Path, Path], None]] = {
    "overwritten with plausible floats": lambda data, keys, digest: _plausible_floats(data),
    "random bytes": lambda data, keys, digest: data.write_bytes(os.urandom(data.stat().st_size)),
    "truncated shard": lambda data, keys, digest: truncate(data),
    "garbage header": lambda data, keys, digest: data.write_bytes(b"\x00garbage" + data.read_bytes()[8:]),
    "truncated keys file": lambda data, keys, digest: truncate(keys),
    "missing data file": lambda data, keys, digest: data.unlink(),
    "torn digest file": lambda data, keys, digest: truncate(digest),
}


@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_a_damaged_shard_is_dropped_with_a_warning_naming_it(damage: str, tmp_path: Path, caplog: Any) -> None:
    from tlzoo.features import cache as cache_module

    cache, digests, features = _shard(tmp_path)
    data, keys, digest = _files(cache)
    CACHE_DAMAGE[damage](data, keys, digest)
    cache_module._CHECKED.clear()  # another process: nothing checked yet
    fresh = cache_module.FeatureCache(cache.key, tmp_path)
    with caplog.at_level("WARNING", logger="tlzoo.features.cache"):
        assert fresh.missing(digests) == list(range(len(digests)))
    assert any(str(data) in r.getMessage() and "computed again" in r.getMessage() for r in caplog.records)
    assert not any(f.exists() for f in (data, keys, digest))
    fresh.add(digests, features)  # computed again: the table is right
    np.testing.assert_array_equal(fresh.table(digests)[np.arange(len(digests))], features)


def test_a_shard_is_checked_once_per_process_and_not_reread_when_unchanged(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.features import cache as cache_module

    cache, digests, _ = _shard(tmp_path)
    reads: list[Path] = []
    real = cache_module._blake2b
    monkeypatch.setattr(cache_module, "_blake2b", lambda path: reads.append(path) or real(path))
    cache_module.FeatureCache(cache.key, tmp_path).missing(digests)
    assert reads == []  # written by this process: known good
    cache_module._CHECKED.clear()
    for _ in range(2):
        cache_module.FeatureCache(cache.key, tmp_path).missing(digests)
    assert len(reads) == 2  # data and keys, once


def test_unfinished_writes_are_invisible_and_old_leftovers_are_swept(tmp_path: Path) -> None:
    from tlzoo.features.cache import STALE_SECONDS, FeatureCache

    cache, digests, features = _shard(tmp_path)
    data, keys, digest = _files(cache)
    digest.unlink()  # a write killed before its commit record
    assert FeatureCache(cache.key, tmp_path).missing(digests) == list(range(len(digests)))
    assert data.exists()  # it may be a write in progress: left alone while it is young
    tmp = cache.path / ".abc.npy.tmp-1-x"
    tmp.write_bytes(b"half")
    old = time.time() - STALE_SECONDS - 1
    for file in (data, keys, tmp):
        os.utime(file, (old, old))
    again = FeatureCache(cache.key, tmp_path)
    again.add(digests, features)
    assert not any(f.exists() for f in (data, keys, tmp))
    assert len(list(cache.path.glob("*.digest.json"))) == 1


def test_adapt_recomputes_a_tampered_shard_instead_of_training_on_it(tiny_models: Any, feature_cache: Path,
                                                                      caplog: Any) -> None:
    from tlzoo.features import cache as cache_module

    data = colour_images(10)
    first = tlzoo.adapt(str(tiny_models("vit")), data, strategy="linear_probe", epochs=5, progress=False)
    (shard,) = [p for p in feature_cache.rglob("*.npy") if not p.name.endswith(".keys.npy")]
    _plausible_floats(shard)
    cache_module._CHECKED.clear()  # as a new process would
    with caplog.at_level("WARNING", logger="tlzoo.features.cache"):
        second = tlzoo.adapt(str(tiny_models("vit")), data, strategy="linear_probe", epochs=5, progress=False)
    assert second.recipe["feature_cache"] == {"cached": 0, "computed": len(data)}
    assert any(str(shard) in r.getMessage() for r in caplog.records)
    same_result(first, second)


@pytest.mark.slow
@fork_only
def test_two_processes_sharing_one_cache_agree(tiny_models: Any, tmp_path: Path) -> None:
    cache, go = tmp_path / "cache", tmp_path / "go"
    source, data = str(tiny_models("vit")), colour_images(10)

    def run(name: str) -> Callable[[], None]:
        def body() -> None:
            os.environ["TLZOO_CACHE"] = str(cache)
            while not go.exists():  # start together
                time.sleep(0.01)
            result = tlzoo.adapt(source, data, strategy="linear_probe", epochs=5, progress=False)
            head = {k: v.tolist() for k, v in result.model.head.state_dict().items()}
            (tmp_path / f"{name}.json").write_text(json.dumps({"metrics": result.metrics["test"], "head": head,
                                                               "cache": result.recipe["feature_cache"]}))
        return body

    import threading

    statuses: dict[str, int] = {}
    threads = [threading.Thread(target=lambda n=n: statuses.update({n: run_forked(run(n))})) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    go.touch()
    for thread in threads:
        thread.join()
    assert statuses == {"a": 0, "b": 0}
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("a", "b"))
    assert a["metrics"] == b["metrics"] and a["head"] == b["head"]
    assert a["cache"]["cached"] + a["cache"]["computed"] == len(data)
    from tlzoo.features.cache import scan_cache

    (entry,) = scan_cache(cache, verify=True)
    assert entry.problems == [] and entry.rows >= len(data)


# --- loading: every failure is a ModelLoadError naming the folder and the file; no pickle is ever loaded -------
class Marker:
    """Unpickling this creates the folder *path*: proof that a pickle ran code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.path,)


@pytest.fixture(scope="module")
def saved_model(probe_run: tuple[Any, Path]) -> Path:
    return probe_run[1] / "model"


def _tampered(saved_model: Path, tmp_path: Path, change: Callable[[Path], None]) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    change(folder)
    return folder


def _edit_config(folder: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    config = json.loads((folder / "tlzoo.json").read_text())
    edit(config)
    (folder / "tlzoo.json").write_text(json.dumps(config))


def _backbone_as_pickle(folder: Path, marker: Path) -> None:
    """The backbone's weights as ``pytorch_model.bin`` (torch.save), with an object that runs code when unpickled."""
    from safetensors.torch import load_file

    state: dict[str, Any] = dict(load_file(folder / "model.safetensors"))
    state["payload"] = Marker(marker)
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")


TAMPER: dict[str, tuple[Callable[[Path, Path], None], str, str]] = {
    # name: (change(folder, marker), the file the error names, a phrase of the reason)
    "backbone only as a pickle": (_backbone_as_pickle, "pytorch_model.bin", "pickle"),
    "a pickle posing as head.safetensors": (
        lambda f, m: (f / "head.safetensors").write_bytes(__import__("pickle").dumps(Marker(m))),
        "head.safetensors", "pickle"),
    "a pickle posing as model.safetensors": (
        lambda f, m: torch.save({"payload": Marker(m)}, f / "model.safetensors"), "model.safetensors", "pickle"),
    "truncated weights": (lambda f, m: truncate(f / "model.safetensors"), "model.safetensors", "truncated"),
    "truncated head": (lambda f, m: truncate(f / "head.safetensors", 0.9), "head.safetensors", "truncated"),
    "missing model.safetensors": (lambda f, m: (f / "model.safetensors").unlink(), "model.safetensors", "missing"),
    "unknown extractor option in tlzoo.json": (
        lambda f, m: _edit_config(f, lambda c: c["extractor"]["options"].update(colour_boost=2)),
        "tlzoo.json", "colour_boost"),
    "unknown head option in tlzoo.json": (
        lambda f, m: _edit_config(f, lambda c: c["head"].update(spec={"name": "linear", "depth": 3})),
        "tlzoo.json", "depth"),
    "malformed tlzoo.json": (lambda f, m: (f / "tlzoo.json").write_text('{"format": "tlzoo", '), "tlzoo.json",
                             "cannot be read"),
    "damaged config.json": (lambda f, m: (f / "config.json").write_text("{]"), "config.json", "config.json"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_a_tampered_model_folder_is_a_model_load_error_naming_folder_and_file(case: str, saved_model: Path,
                                                                              tmp_path: Path) -> None:
    from tlzoo.errors import ModelLoadError

    change, file, reason = TAMPER[case]
    marker = tmp_path / "pickle-ran-code"
    folder = _tampered(saved_model, tmp_path, lambda f: change(f, marker))
    with pytest.raises(ModelLoadError) as info:
        tlzoo.load(folder)
    message = str(info.value)
    assert str(folder) in message and file in message and reason in message, message
    assert not marker.exists(), "a pickle was loaded"


def test_an_untampered_copy_loads_and_predicts_the_same(saved_model: Path, probe_run: tuple[Any, Path]) -> None:
    model = tlzoo.load(saved_model)
    images = list(colour_images(2)["image"])
    assert model.predict(images) == probe_run[0].model.predict(images)


# --- saving: leftovers of killed saves, permissions, failed writes -------------------------------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def saved_copy(saved_model: Path, tmp_path: Path) -> tuple[Any, Path]:
    """A loaded model and its saved folder, in a folder of its own."""
    folder = tmp_path / "model"
    shutil.copytree(saved_model, folder)
    return tlzoo.load(folder), folder


def test_a_saved_model_follows_the_umask(saved_copy: tuple[Any, Path], tmp_path: Path) -> None:
    model = saved_copy[0]
    old = os.umask(0o002)
    try:
        folder = model.save_pretrained(tmp_path / "shared" / "model")
    finally:
        os.umask(old)
    modes = {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}
    assert modes.pop(".") == 0o775
    assert modes and all(mode == (0o775 if (folder / name).is_dir() else 0o664) for name, mode in modes.items()), modes


def test_everything_a_run_writes_follows_the_umask(tiny_models: Any, tmp_path: Path, feature_cache: Path) -> None:
    old = os.umask(0o007)
    try:
        tlzoo.adapt(str(tiny_models("vit")), colour_images(4), output_dir=tmp_path / "out", **{**PROBE, "epochs": 2})
    finally:
        os.umask(old)
    written = [p for root in (tmp_path / "out", feature_cache) for p in [root, *root.rglob("*")]]
    assert any(p.name == "model.safetensors" for p in written) and any(p.suffix == ".npy" for p in written)
    assert any(p.name == STATE_FILE for p in written)
    modes = {str(p): p.stat().st_mode & 0o777 for p in written}
    assert all(mode == (0o770 if Path(p).is_dir() else 0o660) for p, mode in modes.items()), modes


def test_a_failed_write_leaves_the_previous_model_intact(saved_copy: tuple[Any, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import safetensors.torch

    model, folder = saved_copy
    before = _snapshot(folder)

    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", no_space)
    with pytest.raises(OSError, match="No space left"):
        model.save_pretrained(folder)
    assert _snapshot(folder) == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["model"]  # no staging folder left
    tlzoo.load(folder)


@pytest.mark.slow
@fork_only
def test_a_save_killed_midway_keeps_the_old_model_and_the_next_save_cleans_up(saved_copy: tuple[Any, Path]) -> None:
    import safetensors.torch

    model, folder = saved_copy
    before = _snapshot(folder)

    def killed_save() -> None:
        real = safetensors.torch.save_file

        def torn(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> None:
            real(tensors, filename, *args, **kwargs)
            truncate(Path(filename))
            os.kill(os.getpid(), signal.SIGKILL)

        safetensors.torch.save_file = torn
        model.save_pretrained(folder)

    status = run_forked(killed_save)
    assert os.WIFSIGNALED(status)
    (leftover,) = [p for p in folder.parent.iterdir() if p.name.startswith(".model.tmp-")]
    assert _snapshot(folder) == before
    tlzoo.load(folder)
    # a save in progress elsewhere (its owner alive: this process) is left alone; a dead owner's is removed
    from tlzoo.durable import staging_prefix

    alive = folder.parent / f"{staging_prefix(folder)}inflight"
    alive.mkdir()
    model.save_pretrained(folder)
    assert not leftover.exists() and alive.is_dir()
    assert _snapshot(folder).keys() == before.keys()


def test_leftovers_of_unknown_owners_go_only_once_stale(tmp_path: Path) -> None:
    from tlzoo.durable import STALE_SECONDS, clean_leftovers

    target = tmp_path / "model"
    target.mkdir()
    fresh, stale = tmp_path / ".model.tmp-abc123", tmp_path / ".model.old-1@elsewhere-abc"
    for folder in (fresh, stale):
        (folder / "weights").mkdir(parents=True)
    old = time.time() - STALE_SECONDS - 5
    for path in (stale, stale / "weights"):
        os.utime(path, (old, old))
    other = tmp_path / ".modelx.tmp-abc"  # another folder's staging
    other.mkdir()
    os.utime(other, (old, old))
    clean_leftovers(target)
    assert fresh.is_dir() and not stale.exists() and other.is_dir()


def test_a_kill_between_the_two_renames_restores_the_previous_model(tmp_path: Path) -> None:
    from tlzoo.durable import clean_leftovers

    target = tmp_path / "model"
    aside = tmp_path / ".model.old-999999999@nohost-abcd1234"  # its owner long gone
    aside.mkdir()
    (aside / "tlzoo.json").write_text("{}")
    old = time.time() - 3600
    os.utime(aside, (old, old))
    os.utime(aside / "tlzoo.json", (old, old))
    clean_leftovers(target)
    assert (target / "tlzoo.json").is_file() and not aside.exists()


# --- bad input: a named error before any model loads ---------------------------------------------------------
@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo import workflow

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(workflow, "_build_extractor", refuse)


def test_an_output_dir_below_a_file_is_refused_before_any_work(tiny_models: Any, tmp_path: Path,
                                                               no_model_loads: None) -> None:
    from tlzoo.errors import ConfigurationError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="notes.txt is a file, not a folder"):
        tlzoo.adapt(str(tiny_models("vit")), colour_images(4), output_dir=tmp_path / "notes.txt" / "out", progress=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model").write_text("mine")
    with pytest.raises(ConfigurationError, match="is a file, where tlzoo writes a folder"):
        tlzoo.adapt(str(tiny_models("vit")), colour_images(4), output_dir=tmp_path / "out", progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "out" / "model").read_text() == "mine"


def _with_labels(labels: list[Any], split_labels: dict[str, list[Any]] | None = None) -> Any:
    import datasets

    images = list(colour_images(len(labels))["image"])[: len(labels)]
    train = datasets.Dataset.from_dict({"image": images, "label": labels}).cast_column("image", datasets.Image())
    out = {"train": train}
    for name, values in (split_labels or {}).items():
        out[name] = datasets.Dataset.from_dict({"image": images[: len(values)], "label": values}).cast_column(
            "image", datasets.Image())
    return datasets.DatasetDict(out)


@pytest.mark.parametrize("bad", [float("nan"), None, float("inf"), float("-inf")])
def test_nan_infinite_or_missing_regression_targets_are_refused_when_the_data_are_read(bad: Any, tiny_models: Any,
                                                                             no_model_loads: None) -> None:
    from tlzoo.errors import DataError

    labels = [0.5, 1.5, 2.5, bad, 0.25, 1.0, 3.0, 2.0]
    with pytest.raises(DataError, match=r"targets in the train split: 1 of 8 rows \(rows \[3\]\)"):
        tlzoo.adapt(str(tiny_models("vit")), _with_labels(labels, {"test": [1.0, 2.0]}), task="regression",
                    progress=False)
    with pytest.raises(DataError, match="in the test split"):
        tlzoo.adapt(str(tiny_models("vit")), _with_labels([0.5, 1.5] * 4, {"test": [1.0, bad]}), task="regression",
                    progress=False)


def test_none_in_the_test_labels_is_not_scored_as_a_class_named_none(tiny_models: Any, no_model_loads: None) -> None:
    from tlzoo.errors import DataError

    data = _with_labels(["None", "cat", "dog"] * 3, {"test": ["cat", None, "dog"]})
    with pytest.raises(DataError, match=r"missing labels in the test split: 1 of 3 rows \(rows \[1\]\)"):
        tlzoo.adapt(str(tiny_models("vit")), data, progress=False)
