"""The plugin manager: entry points, in-code plugins, broken plugins, selection."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

import tlzoo
from tlzoo import plugins
from tlzoo.errors import ModalityNotAvailableError
from tlzoo.plugins import Modality


def test_builtin_plugins_are_found_through_entry_points() -> None:
    names = {info.name: info for info in plugins.list_plugins()}
    assert {"image", "audio", "text", "tlzoo.core"} <= set(names)
    assert names["image"].modalities == ["image"]
    assert names["audio"].version == "0.1.0"
    assert names["tlzoo.core"].heads == ["linear", "mlp"]
    assert set(plugins.modalities()) >= {"image", "audio", "text"}


class RowsPlugin:
    """A third-party modality: rows of numbers (tabular data)."""

    @tlzoo.hookimpl
    def register_modalities(self, register: Any) -> None:
        register(
            Modality(
                name="rows",
                build_feature_extractor=lambda source, **kw: RowsExtractor(),
                is_column=lambda feature, values: all(isinstance(v, list) for v in values),
                model_types=frozenset({"rows-model"}),
            )
        )

    @tlzoo.hookimpl
    def register_source_models(self, register: Any) -> None:
        register({
            "name": "rows-identity", "hub_id": "example/rows-identity", "modality": "rows", "license": "mit",
            "params": 1, "feature_size": 3, "description": "Rows as they are.", "tags": ["tabular"],
        })


def RowsExtractor() -> Any:
    import torch

    from tlzoo.features import FeatureExtractor

    class _Rows(FeatureExtractor):
        modality = "rows"

        def preprocess(self, values: Sequence[Any]) -> dict[str, Any]:
            return {"x": torch.tensor(values, dtype=torch.float32)}

        def forward(self, **batch: Any) -> Any:
            return self.backbone(batch["x"])

        @property
        def feature_size(self) -> int:
            return 3

    backbone = torch.nn.Linear(3, 3)
    with torch.no_grad():
        backbone.weight.copy_(torch.eye(3))
        backbone.bias.zero_()
    return _Rows(backbone, processor=None, source="example/rows-identity")


def test_third_party_modality_plugin_works_through_the_same_api(register_plugin: Any) -> None:
    register_plugin(RowsPlugin(), name="rows-plugin")
    assert "rows" in plugins.modalities()
    info = {i.name: i for i in plugins.list_plugins()}["rows-plugin"]
    assert info.modalities == ["rows"]
    assert info.hooks == ["register_modalities", "register_source_models"]
    entry = tlzoo.resolve_source("rows-identity")
    assert entry.modality == "rows"
    extractor = plugins.get_modality("rows").build_feature_extractor(entry.hub_id)
    features = extractor.extract([[1, 2, 3], [4, 5, 6]])
    assert features.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert [m.name for m in tlzoo.list_models(modality="rows")] == ["rows-identity"]


class RaisingPlugin:
    @tlzoo.hookimpl
    def register_modalities(self, register: Any) -> None:
        register(Modality(name="half", build_feature_extractor=lambda s: None, is_column=lambda f, v: False))
        raise RuntimeError("boom in hook")


def test_plugin_raising_in_hook_is_skipped_and_reported(register_plugin: Any, caplog: Any) -> None:
    register_plugin(RaisingPlugin(), name="raising")
    mods = plugins.modalities()
    assert "half" not in mods  # nothing half-registered
    assert {"image", "audio", "text"} <= set(mods)
    assert "boom in hook" in plugins.plugin_errors()["raising"]
    assert "raising" in caplog.text
    info = {i.name: i for i in plugins.list_plugins()}["raising"]
    assert "RuntimeError: boom in hook" in info.error


class BadReturnPlugin:
    @tlzoo.hookimpl
    def register_modalities(self, register: Any) -> None:
        register("not a modality")


def test_plugin_registering_garbage_is_reported(register_plugin: Any) -> None:
    register_plugin(BadReturnPlugin(), name="garbage")
    assert {"image", "text"} <= set(plugins.modalities())
    assert "not a tlzoo.plugins.Modality" in plugins.plugin_errors()["garbage"]


def test_registering_a_plugin_twice_is_a_plugin_error(register_plugin: Any) -> None:
    from tlzoo.errors import PluginError

    plugin = RowsPlugin()
    register_plugin(plugin, name="rows-once")
    with pytest.raises(PluginError, match="already registered.*unregister_plugin"):
        plugins.register_plugin(plugin, name="rows-again")
    with pytest.raises(PluginError, match="already registered"):
        plugins.register_plugin(RowsPlugin(), name="rows-once")


class NarrowPlugin:
    """A hook implementation that takes fewer arguments than the spec offers, as pluggy allows."""

    calls: ClassVar[list[str]] = []

    @tlzoo.hookimpl
    def register_source_models(self) -> None:
        NarrowPlugin.calls.append("called")


def test_hooks_are_called_through_pluggy(register_plugin: Any) -> None:
    NarrowPlugin.calls.clear()
    register_plugin(NarrowPlugin(), name="narrow")
    plugins.source_model_entries()
    assert NarrowPlugin.calls == ["called"]
    assert "narrow" not in plugins.plugin_errors()


def test_unregister_removes_contributions(register_plugin: Any) -> None:
    name = register_plugin(RowsPlugin(), name="rows-temp")
    assert "rows" in plugins.modalities()
    plugins.unregister_plugin(name)
    assert "rows" not in plugins.modalities()


def test_missing_modality_names_the_plugin_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLZOO_LOAD_PLUGINS", "image,text")
    plugins.reset()
    try:
        assert set(plugins.modalities()) == {"image", "text"}
        with pytest.raises(ModalityNotAvailableError, match="tlzoo install tlzoo-audio"):
            plugins.get_modality("audio")
    finally:
        monkeypatch.delenv("TLZOO_LOAD_PLUGINS")
        plugins.reset()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tlzoo", *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_load_plugins_env_selects_plugins() -> None:
    out = _cli("plugins", "--json", env={"TLZOO_LOAD_PLUGINS": "image"})
    assert out.returncode == 0, out.stderr
    names = {p["name"] for p in json.loads(out.stdout)}
    assert names == {"tlzoo.core", "image"}
    out = _cli("plugins", "--json", env={"TLZOO_LOAD_PLUGINS": ""})
    assert {p["name"] for p in json.loads(out.stdout)} == {"tlzoo.core"}


def _write_wheel(folder: Any, dist: str, module: str, source: str) -> Any:
    """A minimal, valid wheel of a one-module plugin (no build backend needed)."""
    import base64
    import hashlib
    import zipfile

    version = "1.0"
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{module}.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tlzoo-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[tlzoo]\n{module} = {module}\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    path = folder / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


BROKEN_SOURCE = "raise ImportError('this plugin needs libfoo')\n"


def test_broken_plugin_import_leaves_cli_working_and_is_reported(tmp_path: Any) -> None:
    wheel = _write_wheel(tmp_path, "tlzoo-broken-example", "tlzoo_broken_example", BROKEN_SOURCE)
    installed = _cli("install", "--no-deps", "--index-url", "http://127.0.0.1:9/simple", str(wheel))
    try:
        assert installed.returncode == 0, installed.stderr
        out = _cli("plugins", "--json")
        assert out.returncode == 0, out.stderr
        plugins_json = {p["name"]: p for p in json.loads(out.stdout)}
        assert "needs libfoo" in plugins_json["tlzoo_broken_example"]["error"]
        assert plugins_json["image"]["error"] is None
        assert "tlzoo_broken_example" in out.stderr  # warned by name
        models = _cli("models", "--modality", "text")
        assert models.returncode == 0 and "all-minilm-l6-v2" in models.stdout
    finally:
        removed = _cli("uninstall", "-y", "tlzoo-broken-example")
    assert removed.returncode == 0, removed.stderr
    out = _cli("plugins", "--json")
    assert "tlzoo_broken_example" not in {p["name"] for p in json.loads(out.stdout)}
