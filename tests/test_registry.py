"""The zoo: validation, merging, wildcards, resolving sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import tlzoo
from tlzoo.errors import HubError, ModalityNotAvailableError, RegistryError, UnknownModelError
from tlzoo.registry import builtin_registry_path, load_registry, read_registry_file, resolve_source

ENTRY = """
version: 1
models:
  - name: {name}
    hub_id: me/{name}
    modality: text
    license: mit
    params: {params}
    feature_size: 32
    description: My own encoder.
    tags: [mine]
"""


def test_shipped_registry_has_five_models_per_modality_across_families() -> None:
    assert builtin_registry_path().is_file()
    entries = read_registry_file(builtin_registry_path())
    for modality in ("image", "audio", "text"):
        of_modality = [e for e in entries if e.modality == modality]
        assert len(of_modality) >= 5
        families = {e.tags[0] for e in of_modality}
        assert len(families) >= 4, families
        assert all(e.feature_size and e.params and e.license and e.description for e in of_modality)


def test_wildcards_and_modality_filter() -> None:
    names = [m.name for m in tlzoo.list_models("*vit*")]
    assert "vit-base-in21k" in names and "vit-base-224" in names
    assert all("vit" in m.name or "vit" in m.hub_id for m in tlzoo.list_models("*vit*"))
    assert [m.name for m in tlzoo.list_models("DINOV2*")] == ["dinov2-base", "dinov2-small"]
    audio = tlzoo.list_models(modality="audio")
    assert audio and {m.modality for m in audio} == {"audio"}
    assert tlzoo.list_models("facebook/*", modality="text") == []
    assert {m.name for m in tlzoo.list_models("facebook/*")} >= {"dinov2-small", "wav2vec2-base"}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("params", -3, "field 'params' must be a positive integer"),
        ("license", None, "missing required field 'license'"),
        ("tags", "oops", "field 'tags' must be a list"),
        ("featuresize", 3, "unknown field 'featuresize'. Did you mean 'feature_size'"),
    ],
)
def test_bad_entry_names_file_entry_and_field(tmp_path: Path, field: str, value: Any, message: str) -> None:
    data = yaml.safe_load(ENTRY.format(name="bad-one", params=5))
    data["models"][0][field] = value
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert str(path) in str(info.value)
    assert "'bad-one'" in str(info.value)
    assert message in str(info.value)


def test_user_file_overrides_builtin_and_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(ENTRY.format(name="bert-base-uncased", params=7) + ENTRY.format(name="mine", params=1).split("models:")[1])
    monkeypatch.setenv("TLZOO_REGISTRY", str(path))
    caplog.set_level("INFO")
    zoo = load_registry()
    assert zoo["bert-base-uncased"].hub_id == "me/bert-base-uncased"
    assert zoo["bert-base-uncased"].params == 7
    assert "mine" in zoo and "all-minilm-l6-v2" in zoo
    assert "overrides" in caplog.text


def test_plugin_entries_sit_between_builtin_and_user(tmp_path: Path, register_plugin: Any) -> None:
    class ZooPlugin:
        @tlzoo.hookimpl
        def register_source_models(self, register: Any) -> None:
            register({"name": "roberta-base", "hub_id": "plugin/roberta", "modality": "text", "license": "mit",
                      "params": 3, "feature_size": 8, "description": "From a plugin."})
            register({"name": "plugin-only", "hub_id": "plugin/only", "modality": "text", "license": "mit",
                      "params": 3, "feature_size": 8, "description": "From a plugin."})

    register_plugin(ZooPlugin(), name="zoo-plugin")
    zoo = load_registry()
    assert zoo["roberta-base"].hub_id == "plugin/roberta"
    path = tmp_path / "mine.yaml"
    path.write_text(ENTRY.format(name="plugin-only", params=9))
    assert load_registry(path)["plugin-only"].hub_id == "me/plugin-only"


def test_plugin_with_bad_entry_is_named(register_plugin: Any) -> None:
    class BadZoo:
        @tlzoo.hookimpl
        def register_source_models(self, register: Any) -> None:
            register({"name": "x", "hub_id": "a/b", "modality": "text"})

    register_plugin(BadZoo(), name="bad-zoo")
    with pytest.raises(RegistryError, match="plugin bad-zoo, entry 'x': missing required field 'license'"):
        load_registry()


def test_unknown_name_gets_close_matches() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_source("dinov2-smal")
    assert "Did you mean 'dinov2-small'" in str(info.value)


def test_zoo_name_and_hub_id_resolve_without_network() -> None:
    assert resolve_source("wav2vec2-base").modality == "audio"
    assert resolve_source("google/vit-base-patch16-224-in21k").name == "vit-base-in21k"
    assert resolve_source("roberta-base", revision="abc").revision == "abc"


@pytest.mark.parametrize(("family", "modality"), [("vit", "image"), ("convnext", "image"), ("wav2vec2", "audio"),
                                                  ("hubert", "audio"), ("bert", "text"), ("roberta", "text")])
def test_local_folder_modality_comes_from_config(tiny_models: Any, family: str, modality: str) -> None:
    source = resolve_source(tiny_models(family))
    assert source.modality == modality
    assert source.origin == "local folder"


def test_missing_local_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="does not exist"):
        resolve_source(str(tmp_path / "nope"))


def test_modality_without_plugin_says_what_to_install(tiny_models: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo import plugins

    folder = tiny_models("wav2vec2")
    monkeypatch.setenv("TLZOO_LOAD_PLUGINS", "image,text")
    plugins.reset()
    try:
        with pytest.raises(ModalityNotAvailableError, match="tlzoo install tlzoo-audio"):
            resolve_source(folder)
    finally:
        monkeypatch.delenv("TLZOO_LOAD_PLUGINS")
        plugins.reset()


def test_hub_id_offline_and_not_cached_says_so_and_suggests_zoo_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what a user without network sets
    with pytest.raises(HubError) as info:
        resolve_source("google/vit-base-patch16-224-in22k")
    message = str(info.value)
    assert "HF_HUB_OFFLINE is set" in message and constants.HF_HUB_CACHE in message
    assert "local model folder" in message
    assert "Did you mean 'google/vit-base-patch16-224-in21k'" in message


def test_hub_id_unreachable_names_the_endpoint_and_the_fix(online: None, no_backoff_sleep: list[float]) -> None:
    with pytest.raises(HubError) as info:  # the tests' Hub endpoint is a closed local port
        resolve_source("someone/some-encoder")
    message = str(info.value)
    assert "could not be reached (ConnectError" in message and "http://127.0.0.1:9" in message
    assert "Working offline? Set HF_HUB_OFFLINE=1" in message
    assert "Check the network connection (or HF_ENDPOINT)" in message
    assert no_backoff_sleep, "huggingface_hub's retries ran (their sleeps made instant)"
