"""Test-suite set-up: offline by construction, tiny models, no leaked plugins.

The environment is set before any Hugging Face library is imported: the Hub
endpoint points at a closed loopback port, so a stray download fails at once
instead of reaching the internet, and a socket guard refuses any connection
that is not to the loopback interface.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_HOME = tempfile.mkdtemp(prefix="tlzoo-tests-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = os.path.join(_HOME, "hf")
os.environ["TLZOO_CACHE"] = os.path.join(_HOME, "tlzoo-cache")
os.environ["TLZOO_HOME"] = os.path.join(_HOME, "tlzoo-home")  # your own zoo: never the real ~/.config/tlzoo
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ.pop("TLZOO_LOAD_PLUGINS", None)
os.environ.pop("TLZOO_REGISTRY", None)

import pytest

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConnectionRefusedError(f"tests may not reach the network (tried {address!r})")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and far faster than with two on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talking to a local Hub: offline mode off, whatever the environment or another test set."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


@pytest.fixture
def hub_server(online: None) -> Iterator[Callable[..., Any]]:
    """Start local Hubs (``tests/hub_server.py``) with offline mode off; every one is stopped after the test.

    ``hub_server(tokens=..., orgs=..., lfs_threshold=...)`` returns a running
    :class:`HubServer`; the default tokens are ``hf_alice`` (user ``alice``) and
    ``hf_bob`` (``bob``).
    """
    from hub_server import HubServer

    started: list[Any] = []

    def start(**options: Any) -> Any:
        options.setdefault("tokens", {"hf_alice": "alice", "hf_bob": "bob"})
        server = HubServer(**options)
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


@pytest.fixture
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make huggingface_hub's retry sleeps instant; returns the list of requested sleep durations."""
    import time
    import types

    import huggingface_hub.file_download
    import huggingface_hub.utils._http

    sleeps: list[float] = []
    attributes = {name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    fake_time = types.SimpleNamespace(**{**attributes, "sleep": sleeps.append})
    monkeypatch.setattr(huggingface_hub.utils._http, "time", fake_time)
    monkeypatch.setattr(huggingface_hub.file_download, "time", fake_time)
    return sleeps


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., str]]:
    """Register plugins for one test; they are unregistered afterwards."""
    from tlzoo import plugins

    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        registered = plugins.register_plugin(plugin, name=name)
        names.append(registered)
        return registered

    try:
        yield register
    finally:
        for name in names:
            plugins.unregister_plugin(name)
        plugins.reset()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_models("vit")`` builds (once per session) a tiny model folder."""
    from tlzoo import testing

    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = testing.build_tiny(name, root / name)
        return built[name]

    return get


@pytest.fixture
def feature_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty feature cache for one test."""
    path = tmp_path / "feature-cache"
    monkeypatch.setenv("TLZOO_CACHE", str(path))
    return path


# --- made-up target tasks that a tiny model can learn -------------------------------------
COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def leave_process_group() -> None:
    """End of a torchrun test script: leave the process group, so a gloo group torn down at interpreter exit
    cannot abort a process whose work is done."""
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    state.destroy_process_group()


def colour_images(n_per_class: int, seed: int = 0) -> Any:
    """Noisy images whose label is their dominant colour."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n_per_class * len(COLOURS)):
        name = list(COLOURS)[i % len(COLOURS)]
        centre = np.array(COLOURS[name]) + rng.normal(0, 30, 3)
        pixels = np.clip(rng.normal(0, 40, (32, 32, 3)) + centre, 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels))
        labels.append(name)
    return datasets.Dataset.from_dict({"image": images, "label": labels}).cast_column("image", datasets.Image())


def keyword_sentences(n_per_class: int, seed: int = 0) -> Any:
    """Short sentences of class keywords and a few filler words."""
    import datasets
    import numpy as np

    from tlzoo.demo.synthetic import DEFAULT_SENTENCE_CLASSES, FILLER_WORDS

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    names = list(DEFAULT_SENTENCE_CLASSES)
    for i in range(n_per_class * len(names)):
        name = names[i % len(names)]
        words = list(rng.choice(DEFAULT_SENTENCE_CLASSES[name], 4)) + list(rng.choice(FILLER_WORDS, 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(name)
    return datasets.Dataset.from_dict({"text": texts, "label": labels})


@pytest.fixture(scope="session")
def wide_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT wide enough (128) for random features to separate keyword classes."""
    from tlzoo import testing

    return testing.build_tiny_bert(tmp_path_factory.mktemp("wide-bert") / "bert", hidden_size=128,
                                   num_attention_heads=2, intermediate_size=128)


@contextmanager
def in_hub_cache(folder: Path, repo_id: str) -> Iterator[str]:
    """*folder*'s files in the local Hugging Face cache as a download of *repo_id* leaves them; removed after."""
    import shutil

    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    try:
        yield repo_id
    finally:
        shutil.rmtree(repo)
