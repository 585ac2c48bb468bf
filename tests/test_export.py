"""Saved folders that plain ``transformers.pipeline()`` serves, with tlzoo's own predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from test_model import TEXTS, clip, image, make_model

from tlzoo.model import CONFIG_NAME, export, load
from tlzoo.testing import TINY_MODALITIES

PIPELINE_TASKS = {"image": "image-classification", "audio": "audio-classification", "text": "text-classification"}
OPTIONS: dict[str, dict[str, Any]] = {"bert": {"pooling": "pooler"}, "distilbert": {"pooling": "cls"}}
EXPORTED = ["vit", "convnext", "dinov2", "resnet", "swin", "wav2vec2", "hubert", "wavlm", "bert", "distilbert"]


def inputs_for(modality: str) -> list[Any]:
    return {"image": [image(0), image(1, (30, 52))], "audio": [clip(0), clip(1, 0.45)], "text": TEXTS[:2]}[modality]


@pytest.fixture(scope="module")
def exported(tiny_models: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every exportable family saved once: ``{name: (model, folder)}``, plus multi-label and regression."""
    root = tmp_path_factory.mktemp("exported")
    made: dict[str, Any] = {}
    for family in EXPORTED:
        model = make_model(tiny_models, family, head={"name": "linear", "dropout": 0.1}, **OPTIONS.get(family, {}))
        made[family] = (model, model.save_pretrained(root / family))
    multi = make_model(tiny_models, "convnext", problem_type="multi_label_classification")
    made["multi-label"] = (multi, multi.save_pretrained(root / "multi-label"))
    regression = make_model(tiny_models, "bert", problem_type="regression", num_labels=1, pooling="pooler")
    made["regression"] = (regression, regression.save_pretrained(root / "regression"))
    return made


@pytest.mark.parametrize("family", EXPORTED)
def test_exported_folder_is_a_transformers_classifier(exported: dict[str, Any], family: str) -> None:
    modality = TINY_MODALITIES[family]
    _, folder = exported[family]
    info = json.loads((folder / CONFIG_NAME).read_text())["pipeline"]
    assert info["exported"] is True and info["task"] == PIPELINE_TASKS[modality]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [info["architecture"]]
    assert config["id2label"] == {"0": "cat", "1": "dog", "2": "bird"}
    assert config["problem_type"] == "single_label_classification"
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:  # the backbone, stored once, + the head
        keys = set(f.keys())
    assert set(info["head_keys"]) <= keys and len(keys) > len(info["head_keys"])
    assert sorted(p.name for p in folder.glob("*.safetensors")) == ["head.safetensors", "model.safetensors"]
    processor_files = {"text": "tokenizer.json", "image": "preprocessor_config.json"}
    processor_files["audio"] = processor_files["image"]
    assert (folder / processor_files[modality]).is_file()
    assert f'pipeline("{PIPELINE_TASKS[modality]}"' in (folder / "README.md").read_text()


@pytest.mark.parametrize("family", EXPORTED)
def test_tlzoo_loads_an_exported_folder_quietly(exported: dict[str, Any], family: str, capfd: Any) -> None:
    model, folder = exported[family]
    capfd.readouterr()
    loaded = load(folder)  # tlzoo reads the backbone out of the classifier checkpoint
    assert "LOAD REPORT" not in capfd.readouterr().err  # the skipped classifier keys are expected
    values = inputs_for(TINY_MODALITIES[family])
    torch.testing.assert_close(loaded.logits(values), model.logits(values), atol=1e-5, rtol=0)


NO_TLZOO_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from PIL import Image
    from transformers import pipeline
    out = []
    for case in json.loads(sys.argv[1]):
        classify = pipeline(case["task"], model=case["folder"])
        for value in case["values"]:
            if case["kind"] == "image":
                value = Image.open(value)
            elif case["kind"] == "audio":
                value = np.load(value)
            result = classify(value, top_k=case["top_k"])
            out.append(result if isinstance(result, list) else [result])
    assert not [m for m in sys.modules if m == "tlzoo" or m.startswith(("tlzoo.", "tlzoo_"))], "tlzoo was imported"
    print(json.dumps(out))
    """
)


def test_pipeline_without_tlzoo_gives_tlzoo_predictions(exported: dict[str, Any], tmp_path: Path) -> None:
    """One subprocess that never imports tlzoo runs ``pipeline()`` on every exported folder."""
    cases, expected = [], []
    for name, (model, folder) in exported.items():
        modality = model.modality
        problem = model.task.problem_type
        top_k = None if problem == "multi_label_classification" else 3
        files = []
        for i, raw in enumerate(inputs_for(modality)):
            if modality == "image":
                files.append(str(tmp_path / f"{name}-{i}.png"))
                raw.save(files[-1])
            elif modality == "audio":
                files.append(str(tmp_path / f"{name}-{i}.npy"))
                np.save(files[-1], raw)
            else:
                files.append(raw)
            if problem == "regression":
                expected.append([{"label": "LABEL_0", "score": model.predict(raw)["value"]}])
            elif problem == "multi_label_classification":
                expected.append(model.predict(files[-1] if modality == "image" else raw, threshold=0.0))
            else:
                expected.append(model.predict(files[-1] if modality == "image" else raw, top_k=3))
        task = PIPELINE_TASKS[modality]
        cases.append({"kind": modality, "task": task, "folder": str(folder), "values": files, "top_k": top_k})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TLZOO_SCRIPT, json.dumps(cases)],
        capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert [x["label"] for x in g] == [x["label"] for x in e]
        np.testing.assert_allclose([x["score"] for x in g], [x["score"] for x in e], atol=1e-4)


@pytest.mark.parametrize(
    ("family", "kwargs", "reason"),
    [
        ("vit", {"head": {"name": "mlp", "hidden_size": 8}}, "is not linear"),
        ("roberta", {}, "'roberta' family is not supported"),
        ("bert", {}, "pool with pooler, this model with 'mean'"),
        ("distilbert", {"pooling": "cls", "num_labels": 17}, "holds at most 16 labels exactly, this task has 17"),
    ],
)
def test_no_export_when_it_cannot_be_exact(
    tiny_models: Callable[[str], Path], tmp_path: Path, family: str, kwargs: dict[str, Any], reason: str, caplog: Any
) -> None:
    model = make_model(tiny_models, family, **kwargs)
    with caplog.at_level("INFO", logger="tlzoo.model.export"):
        folder = model.save_pretrained(tmp_path / "m")
    info = json.loads((folder / CONFIG_NAME).read_text())["pipeline"]
    assert info["exported"] is False and reason in info["reason"]
    assert [r.levelname for r in caplog.records if reason in r.getMessage()] == ["INFO"]  # expected, not a problem
    config = json.loads((folder / "backbone" / "config.json").read_text())
    assert config["architectures"][0].endswith("Model")  # the plain backbone, out of pipeline()'s way
    assert not (folder / "config.json").exists() and not (folder / "model.safetensors").exists()
    values = inputs_for(TINY_MODALITIES[family])
    torch.testing.assert_close(load(folder).logits(values), model.logits(values), atol=1e-6, rtol=0)


def test_pipeline_refuses_a_model_it_cannot_serve_exactly(tiny_models: Callable[[str], Path], tmp_path: Path) -> None:
    from transformers import pipeline

    model = make_model(tiny_models, "bert")  # mean pooling: no transformers classifier pools that way
    folder = model.save_pretrained(tmp_path / "m")
    with pytest.raises((OSError, ValueError), match="config.json"):  # rather than a random classifier
        pipeline("text-classification", model=str(folder))
    card = (folder / "README.md").read_text()
    assert "not with transformers' `pipeline()`" in card and "pool with pooler, this model with 'mean'" in card


def test_no_export_when_verification_fails(
    tiny_models: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlzoo_image import pipeline

    from tlzoo.plugins import PipelineFamily

    def misplaced(model: Any, weight: torch.Tensor, bias: torch.Tensor) -> None:
        pipeline.place_plain(model, weight, bias + 1.0)

    monkeypatch.setitem(pipeline.FAMILIES, "vit", PipelineFamily(("cls",), misplaced))
    model = make_model(tiny_models, "vit")
    folder = model.save_pretrained(tmp_path / "m")
    info = json.loads((folder / CONFIG_NAME).read_text())["pipeline"]
    assert info["exported"] is False and "differs from tlzoo by 1.00e+00" in info["reason"]
    assert json.loads((folder / "backbone" / "config.json").read_text())["architectures"] == ["ViTModel"]
    assert 'pipeline("' not in (folder / "README.md").read_text()


def test_only_the_exported_classifier_keys_are_hidden_from_load_reports() -> None:
    import logging

    def report(*rows: tuple[str, str]) -> logging.LogRecord:
        table = "\n".join(f"{key:<20}| \x1b[93m{status}\x1b[0m |  | " for key, status in rows)
        prelude = "\x1b[1mViTModel LOAD REPORT\x1b[0m from: x\nKey | Status |  | \n---+---\n"
        message = f"{prelude}{table}\n\nNotes:\n- UNEXPECTED: ..."
        return logging.LogRecord("transformers.modeling_utils", logging.WARNING, __file__, 1, message, None, None)

    keep = export._HeadKeysFilter(["classifier.weight", "classifier.bias"])
    assert not keep.filter(report(("classifier.weight", "UNEXPECTED"), ("classifier.bias", "UNEXPECTED")))
    assert keep.filter(report(("classifier.weight", "UNEXPECTED"), ("encoder.layer.0.weight", "MISSING")))
    assert keep.filter(report(("pooler.dense.weight", "UNEXPECTED")))
    assert keep.filter(logging.LogRecord("t", logging.WARNING, __file__, 1, "something else", None, None))
