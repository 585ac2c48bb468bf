"""Your own zoo: registering model folders by name, and which entries load offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import tlzoo
from tlzoo.cli import main
from tlzoo.errors import ConfigurationError, RegistryError
from tlzoo.local_zoo import local_registry_path


@pytest.fixture(autouse=True)
def own_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "tlzoo-home"
    monkeypatch.setenv("TLZOO_HOME", str(home))
    return home


def test_a_registered_folder_is_a_zoo_name_that_adapt_and_models_know(tiny_models: Any, own_zoo: Path,
                                                                      feature_cache: Path) -> None:
    from conftest import colour_images

    folder = tiny_models("vit")
    entry = tlzoo.register_model("my-vit", folder, description="a tiny ViT", tags=["mine"])
    assert local_registry_path() == own_zoo / "registry.yaml" and local_registry_path().is_file()
    assert (entry.name, entry.modality, entry.hub_id) == ("my-vit", "image", str(Path(folder).resolve()))
    import safetensors.torch

    weights = safetensors.torch.load_file(str(Path(folder) / "model.safetensors"))
    assert entry.params == sum(t.numel() for t in weights.values())  # counted from the headers alone
    import transformers

    assert entry.feature_size == transformers.AutoConfig.from_pretrained(folder).hidden_size
    listed = {m.name: m for m in tlzoo.list_models("my-*")}
    assert listed["my-vit"].description == "a tiny ViT" and listed["my-vit"].tags == ("mine",)
    result = tlzoo.adapt("my-vit", colour_images(6), strategy="linear_probe", epochs=2, progress=False)
    assert result.recipe["source"]["name"] == "my-vit"


def test_a_taken_name_is_refused_unless_overwritten_and_removal_is_yours_only(tiny_models: Any) -> None:
    tlzoo.register_model("mine", tiny_models("vit"))
    before = local_registry_path().read_text()
    with pytest.raises(ConfigurationError, match="'mine' is already in your zoo.*overwrite=True"):
        tlzoo.register_model("mine", tiny_models("bert"))
    assert local_registry_path().read_text() == before  # nothing the user had is changed
    assert tlzoo.register_model("mine", tiny_models("bert"), overwrite=True).modality == "text"
    tlzoo.unregister_model("mine")
    assert not tlzoo.list_models("mine")
    with pytest.raises(RegistryError, match="'dinov2-small' is not in your zoo"):
        tlzoo.unregister_model("dinov2-small")  # a built-in entry is never removed
    with pytest.raises(ConfigurationError, match="without '/'"):
        tlzoo.register_model("org/name", tiny_models("vit"))


def test_register_command_and_models_offline_column(tiny_models: Any, capsys: Any) -> None:
    folder = tiny_models("bert")
    assert main(["register", "my-bert", str(folder), "--description", "tiny", "--tags", "a,b"]) == 0
    out = capsys.readouterr().out
    assert "Registered 'my-bert' (text" in out and "tlzoo adapt my-bert DATA" in out
    assert main(["register", "my-bert", str(folder)]) == 1
    assert "pass --overwrite to replace it" in capsys.readouterr().err  # the flag, on the command line
    assert main(["models", "--offline", "--json"]) == 0
    offline = {m["name"]: m["offline"] for m in json.loads(capsys.readouterr().out)}
    assert offline == {"my-bert": "local"}  # the built-in Hub entries are not in this (empty) cache
    assert main(["models", "my-bert"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[-1] == "offline" and table.splitlines()[2].split()[-1] == "local"
    assert main(["models", "dinov2-small", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["offline"] is None
    assert main(["register", "my-bert", "--remove"]) == 0
    assert "Removed 'my-bert' from your zoo" in capsys.readouterr().out
    assert main(["models", "my-bert", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []


def test_a_cached_hub_model_shows_as_cached(wide_bert: Path, tmp_path: Path, capsys: Any) -> None:
    from conftest import in_hub_cache

    registry = tmp_path / "r.yaml"
    registry.write_text("models:\n  - {name: zoo-bert, hub_id: alice/zoo-bert, modality: text, license: mit, "
                        "params: 1000, feature_size: 128, description: cached}\n")
    with in_hub_cache(wide_bert, "alice/zoo-bert"):
        assert main(["models", "zoo-bert", "--registry", str(registry), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["offline"] == "cached"
