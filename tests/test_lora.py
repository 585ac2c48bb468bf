"""The ``lora`` strategy: frozen backbone, peft adapters + head in the one loop, merged before saving."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import colour_images, keyword_sentences
from safetensors import safe_open

import tlzoo
from tlzoo.errors import ConfigurationError, TrainingError
from tlzoo.features import load_backbone

FAST = {"epochs": 3, "learning_rate": 5e-3, "batch_size": 8, "progress": False}


def test_only_adapters_and_head_train_and_the_base_weights_stay(tiny_models: Any, feature_cache: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.training import train as training

    source = str(tiny_models("vit"))
    original = {k: v.clone() for k, v in load_backbone(source).state_dict().items()}
    seen: dict[str, Any] = {}

    def merge_and_record(extractor: Any) -> None:
        peft_model = extractor.backbone
        seen["trainable"] = sorted(n for n, p in peft_model.named_parameters() if p.requires_grad)
        seen["state"] = {k: v.detach().clone() for k, v in peft_model.get_base_model().state_dict().items()}
        merge(extractor)

    merge = training.merge_lora
    monkeypatch.setattr(training, "merge_lora", merge_and_record)
    result = tlzoo.adapt(source, colour_images(8), strategy="lora", lora_rank=4, **FAST)

    assert seen["trainable"] and all(".lora_A." in n or ".lora_B." in n for n in seen["trainable"])
    adapters = {k: v for k, v in seen["state"].items() if ".lora_" in k}
    assert any(v.abs().sum() > 0 for k, v in adapters.items() if ".lora_B." in k)  # the adapters did learn
    base = {k.replace(".base_layer.", "."): v for k, v in seen["state"].items() if ".lora_" not in k}
    assert base.keys() == original.keys()
    for name, weight in original.items():  # the un-merged base weights are the pretrained ones, bit for bit
        assert torch.equal(base[name], weight), name
    # merged: only the adapted linear weights moved, each by a rank <= 4 update; everything else is untouched
    merged = result.model.extractor.backbone.state_dict()
    assert merged.keys() == original.keys()
    moved = [k for k in original if not torch.equal(merged[k], original[k])]
    assert moved and all(k.endswith(".weight") and merged[k].ndim == 2 for k in moved)
    assert all(torch.linalg.matrix_rank(merged[k] - original[k]) <= 4 for k in moved)
    assert not any(p.requires_grad for p in result.model.extractor.parameters())

    hyper = result.recipe["hyperparameters"]
    head = sum(p.numel() for p in result.model.head.parameters())
    assert hyper["backbone_parameters"] == sum(v.numel() for v in original.values())
    assert hyper["trainable_parameters"] == sum(v.numel() for v in adapters.values()) + head
    ratio = (hyper["trainable_parameters"] - head) / hyper["backbone_parameters"]
    assert ratio < 0.2, ratio
    # lora never uses the feature cache: the backbone's output changes while it trains
    assert result.recipe["feature_cache"] == {} and not any(feature_cache.rglob("*.npy"))


def test_save_load_predict_is_the_same_plain_model(wide_bert: Path, tmp_path: Path) -> None:
    data = keyword_sentences(10)
    result = tlzoo.adapt(str(wide_bert), data, strategy="lora", lora_rank=4, lora_target_modules=["query", "value"],
                         output_dir=tmp_path / "out", **FAST)
    folder = tmp_path / "out" / "model"
    files = sorted(p.name for p in folder.rglob("*"))
    assert not [f for f in files if "adapter" in f or "peft" in f], files
    backbone = folder / "backbone"  # mean pooling: not a pipeline() classifier, so the backbone is in backbone/
    with safe_open(str(backbone / "model.safetensors"), "pt") as weights:
        assert not [k for k in weights.keys() if "lora_" in k or "base_layer" in k]  # noqa: SIM118 - safe_open
    assert "peft" not in (backbone / "config.json").read_text()
    config = json.loads((folder / "tlzoo.json").read_text())
    hyper = config["recipe"]["hyperparameters"]
    assert config["recipe"]["strategy"] == "lora"
    assert (hyper["lora_rank"], hyper["lora_alpha"], hyper["lora_target_modules"]) == (4, 8, ["query", "value"])

    loaded = tlzoo.load(folder)
    texts = data["text"][:12]
    assert loaded.predict(texts, top_k=None) == result.model.predict(texts, top_k=None)
    torch.testing.assert_close(loaded.logits(texts), result.model.logits(texts), rtol=0, atol=0)


BAD = [
    ({"lora_rank": 0}, "lora_rank must be a positive integer"),
    ({"lora_dropout": 1.5}, "lora_dropout must be a probability"),
    ({"lora_alpha": -2}, "lora_alpha must be a positive number"),
    ({"lora_target_modules": []}, "non-empty list of module names"),
    ({"lora_target_modules": ["query"]}, r"not found in the base model.*can adapt are named: .*q_proj"),
    ({"lora_target_modules": ["q_proj", "vproj"]}, r"'vproj' match no module.*Did you mean 'v_proj'"),
    ({"lora_target_modules": "query"}, "A string is a regular expression"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD, ids=[str(next(iter(k.values()))) for k, _ in BAD])
def test_bad_lora_arguments_fail_before_any_model_loads(kwargs: dict[str, Any], message: str, tiny_models: Any,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.features import extractor

    source = str(tiny_models("vit"))
    monkeypatch.setattr(extractor, "load_backbone", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ConfigurationError, match=message):
        tlzoo.adapt(source, colour_images(3), strategy="lora", output_dir=tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_backbone_without_linear_layers_needs_named_targets(tiny_models: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.features import extractor

    source = str(tiny_models("resnet"))
    with monkeypatch.context() as patch:
        patch.setattr(extractor, "load_backbone", lambda *a, **k: pytest.fail("model loaded"))
        with pytest.raises(ConfigurationError, match=r"found no linear layer.*\['convolution'\]"):
            tlzoo.adapt(source, colour_images(3), strategy="lora", progress=False)
    result = tlzoo.adapt(source, colour_images(4), strategy="lora", lora_target_modules=["convolution"], **FAST)
    assert result.recipe["hyperparameters"]["lora_target_modules"] == ["convolution"]


def test_resume_continues_to_the_same_result(tiny_models: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.training import loop

    source, data = str(tiny_models("vit")), colour_images(6)
    kwargs: dict[str, Any] = {"strategy": "lora", "lora_rank": 4, "lora_dropout": 0.1, **FAST}
    straight = tlzoo.adapt(source, data, output_dir=tmp_path / "straight", **kwargs)

    def interrupt(phase: str, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "end_of_epoch", interrupt)
        with pytest.raises(KeyboardInterrupt):
            tlzoo.adapt(source, data, output_dir=tmp_path / "resumed", **kwargs)
    with pytest.raises(TrainingError, match="does not fit this model"):  # other adapters than the checkpoint's
        tlzoo.adapt(source, data, output_dir=tmp_path / "resumed", resume_from=True, **{**kwargs, "lora_rank": 2})
    resumed = tlzoo.adapt(source, data, output_dir=tmp_path / "resumed", resume_from=True, **kwargs)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    for name, weight in straight.model.state_dict().items():
        torch.testing.assert_close(weight, resumed.model.state_dict()[name], msg=name)
    # merged, the model is a plain ViT + linear head: it exports to a transformers classifier as any other
    assert json.loads((tmp_path / "resumed" / "model" / "tlzoo.json").read_text())["pipeline"]["exported"] is True


def test_cli_passes_the_lora_flags(wide_bert: Path, tmp_path: Path) -> None:
    from tlzoo.cli import main

    data = tmp_path / "reviews.csv"
    keyword_sentences(6).to_csv(data, index=False)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["adapt", str(wide_bert), str(data), "--strategy", "lora", "--lora-rank", "2", "--lora-alpha", "3",
                     "--lora-dropout", "0.1", "--lora-target-modules", "query, value", "--epochs", "1", "--json",
                     "-o", str(tmp_path / "out")])
    assert code == 0 and json.loads(stdout.getvalue())["strategy"] == "lora"
    hyper = json.loads((tmp_path / "out" / "results.json").read_text())["recipe"]["hyperparameters"]
    assert {k: v for k, v in hyper.items() if k.startswith("lora_")} == {
        "lora_rank": 2, "lora_alpha": 3, "lora_dropout": 0.1, "lora_target_modules": ["query", "value"]}


@pytest.mark.slow
def test_two_processes_match_one(tmp_path: Path, tiny_models: Any) -> None:
    """peft's modules are ordinary modules: accelerate's DDP trains them on two processes as on one."""
    from test_distributed import run

    one = run(tmp_path, tiny_models("vit"), "lora", 1)
    two = run(tmp_path, tiny_models("vit"), "lora", 2)
    assert one["num_processes"] == 1 and two["num_processes"] == 2
    assert two["num_examples"] == one["num_examples"] == 5
    assert two["accuracy"] == one["accuracy"] and two["f1"] == pytest.approx(one["f1"])
