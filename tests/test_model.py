"""AdaptedModel: predicting, saving atomically, loading back, and refusing broken folders."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import tlzoo
from tlzoo.errors import ConfigurationError, ModelLoadError
from tlzoo.heads import TaskSpec, build_head
from tlzoo.model import CONFIG_NAME, FORMAT_VERSION, HEAD_NAME, AdaptedModel, card, load, split_batch
from tlzoo.plugins import get_modality
from tlzoo.testing import TINY_MODALITIES

LABELS = ["cat", "dog", "bird"]


def make_model(
    tiny_models: Callable[[str], Path],
    family: str,
    *,
    problem_type: str = "single_label_classification",
    num_labels: int = 3,
    head: str | dict[str, Any] = "linear",
    label_names: list[str] | None = None,
    seed: int = 0,
    **options: Any,
) -> AdaptedModel:
    """A tiny backbone + a random head (no training needed)."""
    modality = TINY_MODALITIES[family]
    extractor = get_modality(modality).build_feature_extractor(str(tiny_models(family)), **options)
    task = TaskSpec(problem_type, num_labels)
    torch.manual_seed(seed)
    head_module = build_head(head, extractor.feature_size, task)
    if label_names is None and problem_type != "regression":
        label_names = LABELS[:num_labels] if num_labels <= 3 else [f"c{i}" for i in range(num_labels)]
    return AdaptedModel(
        extractor, head_module, task=task, label_names=label_names, head_spec=head,
        recipe={"strategy": "linear_probe", "reason": "few examples", "epochs": 2, "learning_rate": 1e-3},
        metrics={"test": {"accuracy": 0.5, "f1": 0.4}},
        history=[{"epoch": 1, "train_loss": 1.1}, {"epoch": 2, "train_loss": 0.9}],
        source={"name": "tiny", "hub_id": f"tlzoo-tests/tiny-{family}", "revision": "abc123",
                "license": "apache-2.0", "modality": modality},
    )  # fmt: skip


def image(seed: int, size: tuple[int, int] = (40, 48)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def clip(seed: int, seconds: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)


TEXTS = ["the cat sat on the mat", "a dog barks", "birds sing at dawn"]
EXAMPLES: dict[str, Callable[[], list[Any]]] = {
    "image": lambda: [image(0), image(1, (30, 30)), image(2)],
    "audio": lambda: [clip(0), clip(1, 0.5), clip(2, 0.2)],
    "text": lambda: list(TEXTS),
}


@pytest.fixture(scope="module")
def vit(tiny_models: Callable[[str], Path]) -> AdaptedModel:
    return make_model(tiny_models, "vit")


# --- telling one example from a batch -------------------------------------------------
@pytest.mark.parametrize(
    ("value", "modality", "count", "single"),
    [
        ("some text", "text", 1, True),
        (["a", "b"], "text", 2, False),
        (("a",), "text", 1, False),
        (np.zeros(800, dtype=np.float32), "audio", 1, True),
        (np.zeros((2, 800), dtype=np.float32), "audio", 1, True),  # one stereo clip
        ([np.zeros(800), np.zeros(400)], "audio", 2, False),
        ([0.0, 0.1, 0.2], "audio", 1, True),  # a list of samples is one clip
        ({"array": np.zeros(10), "sampling_rate": 16000}, "audio", 1, True),
        ("clip.wav", "audio", 1, True),
        (np.zeros((8, 8, 3), dtype=np.uint8), "image", 1, True),
        (np.zeros((2, 8, 8, 3), dtype=np.uint8), "image", 2, False),
        ({"bytes": b"...", "path": None}, "image", 1, True),
        (Path("x.png"), "image", 1, True),
    ],
)
def test_split_batch(value: Any, modality: str, count: int, single: bool) -> None:
    from tlzoo.plugins import get_modality

    values, is_single = split_batch(value, get_modality(modality))
    assert (len(values), is_single) == (count, single)


# --- predict ---------------------------------------------------------------------------
def test_predict_single_and_batch(vit: AdaptedModel, tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    image(0).save(path)
    one = vit.predict(image(0))
    assert set(one) == {"label", "score"} and one["label"] in LABELS and 0 < one["score"] <= 1
    batch = vit.predict([image(0), str(path), image(1)])
    assert isinstance(batch, list) and len(batch) == 3
    assert batch[0] == pytest.approx(one) and batch[1] == pytest.approx(one)  # a path reads the same image
    assert vit.predict([image(0)]) == [pytest.approx(one)]  # a list of one is a batch
    assert vit.predict([]) == []
    probs = vit.logits([image(0)]).softmax(-1)[0]
    assert one["score"] == pytest.approx(float(probs.max()), abs=1e-6)


def test_predict_top_k(vit: AdaptedModel) -> None:
    ranked = vit.predict(image(0), top_k=2)
    assert len(ranked) == 2 and ranked[0]["score"] >= ranked[1]["score"]
    assert ranked[0] == pytest.approx(vit.predict(image(0)))
    everything = vit.predict(image(0), top_k=None)
    assert [r["label"] for r in everything] != [] and sorted(r["label"] for r in everything) == sorted(LABELS)
    assert sum(r["score"] for r in everything) == pytest.approx(1.0, abs=1e-5)
    assert len(vit.predict(image(0), top_k=10)) == 3
    batch = vit.predict([image(0), image(1)], top_k=3)
    assert len(batch) == 2 and all(len(r) == 3 for r in batch)
    with pytest.raises(ConfigurationError, match="top_k"):
        vit.predict(image(0), top_k=0)


def test_predict_multi_label(tiny_models: Callable[[str], Path]) -> None:
    model = make_model(tiny_models, "bert", problem_type="multi_label_classification", num_labels=3)
    logits = model.logits(TEXTS[:1])[0]
    threshold = float(logits.sigmoid().median())
    result = model.predict(TEXTS[0], threshold=threshold)
    expected = {LABELS[i] for i, p in enumerate(logits.sigmoid()) if float(p) >= threshold}
    assert {r["label"] for r in result} == expected
    assert [r["score"] for r in result] == sorted((r["score"] for r in result), reverse=True)
    assert model.predict(TEXTS[0], threshold=1.0) == []
    assert len(model.predict(TEXTS[0], threshold=0.0)) == 3
    assert len(model.predict(TEXTS)) == 3


def test_predict_regression(tiny_models: Callable[[str], Path]) -> None:
    one = make_model(tiny_models, "wav2vec2", problem_type="regression", num_labels=1)
    result = one.predict(clip(0))
    assert set(result) == {"value"} and isinstance(result["value"], float)
    assert result["value"] == pytest.approx(float(one.logits([clip(0)])[0, 0]), abs=1e-6)
    two = make_model(tiny_models, "wav2vec2", problem_type="regression", num_labels=2)
    results = two.predict([clip(0), clip(1)])
    assert len(results) == 2 and all(isinstance(r["value"], list) and len(r["value"]) == 2 for r in results)


def test_predict_is_batched_in_eval_mode_without_grad(vit: AdaptedModel) -> None:
    vit.train()
    try:
        values = [image(i) for i in range(5)]
        small = vit.logits(values, batch_size=2)
        assert vit.training  # the mode is restored
    finally:
        vit.eval()
    assert not small.requires_grad
    torch.testing.assert_close(small, vit.logits(values, batch_size=32), atol=1e-5, rtol=1e-5)


# --- save and load ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("family", "options", "head"),
    [
        ("vit", {}, "linear"),  # exported to a transformers classifier
        ("wav2vec2", {}, {"name": "linear", "dropout": 0.2}),
        ("bert", {"pooling": "pooler"}, "linear"),
        ("roberta", {}, {"name": "mlp", "hidden_size": 16}),  # plain backbone, no export
    ],
)
def test_save_then_load_gives_identical_logits(
    tiny_models: Callable[[str], Path], tmp_path: Path, family: str, options: dict[str, Any], head: Any
) -> None:
    model = make_model(tiny_models, family, head=head, **options)
    values = EXAMPLES[TINY_MODALITIES[family]]()
    folder = model.save_pretrained(tmp_path / "model")
    loaded = tlzoo.load(folder)
    assert isinstance(loaded, AdaptedModel) and not loaded.training
    torch.testing.assert_close(loaded.logits(values), model.logits(values), atol=1e-6, rtol=0)
    assert loaded.predict(values) == model.predict(values)
    assert (loaded.label_names, loaded.task, loaded.modality) == (model.label_names, model.task, model.modality)
    assert (loaded.recipe, loaded.metrics, loaded.history) == (model.recipe, model.metrics, model.history)
    assert loaded.extractor.options() == model.extractor.options()


def test_saved_folder_layout_is_safetensors_only(vit: AdaptedModel, tmp_path: Path) -> None:
    folder = vit.save_pretrained(tmp_path / "m")
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    expected = {"config.json", "model.safetensors", "preprocessor_config.json", HEAD_NAME, CONFIG_NAME, "README.md"}
    assert expected <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"))]
    with safe_open(str(folder / HEAD_NAME), framework="pt") as f:
        assert set(f.keys()) == {"weight", "bias"}
        assert tuple(f.get_tensor("weight").shape) == (3, vit.extractor.feature_size)


def test_tlzoo_json_contents(tiny_models: Callable[[str], Path], tmp_path: Path) -> None:
    model = make_model(tiny_models, "bert", pooling="pooler")
    folder = model.save_pretrained(tmp_path / "m")
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["format_version"] == FORMAT_VERSION and config["tlzoo_version"] == tlzoo.__version__
    assert config["labels"] == LABELS and config["num_labels"] == 3
    assert config["task"] == {"problem_type": "single_label_classification", "num_labels": 3}
    assert config["modality"] == "text"
    assert config["source"] == model.source
    assert config["head"]["spec"] == "linear" and config["head"]["in_features"] == 32
    assert config["extractor"]["options"] == {"pooling": "pooler", "max_length": model.extractor.max_length}
    assert config["recipe"]["strategy"] == "linear_probe"
    assert config["metrics"] == {"test": {"accuracy": 0.5, "f1": 0.4}}
    assert [h["epoch"] for h in config["history"]] == [1, 2]
    assert config["pipeline"]["exported"] is True and config["pipeline"]["task"] == "text-classification"


def test_save_is_atomic(
    vit: AdaptedModel, tiny_models: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = vit.save_pretrained(tmp_path / "m")
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    other = make_model(tiny_models, "vit", seed=1)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full while writing the card")

    monkeypatch.setattr(card, "write_model_card", broken)
    with pytest.raises(OSError, match="disk full"):
        other.save_pretrained(folder)
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary or set-aside folder left
    with pytest.raises(OSError):
        other.save_pretrained(tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == ["m"]  # a failed first save leaves nothing at all

    monkeypatch.undo()
    other.save_pretrained(folder)  # replacing works, and leaves nothing behind
    assert sorted(os.listdir(tmp_path)) == ["m"]
    assert (folder / HEAD_NAME).read_bytes() != before[Path(HEAD_NAME)]
    torch.testing.assert_close(load(folder).logits([image(0)]), other.logits([image(0)]))


def test_save_refuses_to_replace_a_folder_that_is_not_a_model(vit: AdaptedModel, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigurationError, match="not a saved tlzoo model"):
        vit.save_pretrained(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["mine"]


def test_save_copies_extra_files_and_the_card_shows_the_plot(vit: AdaptedModel, tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    image(0).save(plot)
    folder = vit.save_pretrained(tmp_path / "m", extra_files={"plots/training_curves.png": plot})
    assert (folder / "plots" / "training_curves.png").read_bytes() == plot.read_bytes()
    assert "![Training curves](plots/training_curves.png)" in (folder / "README.md").read_text()


# --- refusing to load ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tiny_models: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tiny_models, "bert", pooling="pooler").save_pretrained(tmp_path_factory.mktemp("saved") / "m")


def broken_copy(saved: Path, tmp_path: Path, edit: Callable[[Path], None]) -> Path:
    import shutil

    folder = Path(shutil.copytree(saved, tmp_path / "broken"))
    edit(folder)
    return folder


def edit_json(**changes: Any) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        config = json.loads((folder / CONFIG_NAME).read_text())
        config.update(changes)
        (folder / CONFIG_NAME).write_text(json.dumps(config))

    return edit


def wrong_head(folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(5, 32), "bias": torch.zeros(5)}, str(folder / HEAD_NAME))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: (f / CONFIG_NAME).unlink(), r"not a tlzoo model: it has no tlzoo\.json.*plain transformers model"),
        (lambda f: (f / HEAD_NAME).unlink(), r"has no head\.safetensors: the trained head is missing"),
        (wrong_head, r"does not fit the 'linear' head on 32 features for 3 outputs.*size mismatch"),
        (edit_json(modality="smell"), r"smell model.*No installed plugin provides the 'smell' modality.*Install"),
        (edit_json(head={"spec": {"name": "fancy"}}), r"head 'fancy' is not registered.*Install the plugin"),
        (edit_json(format_version=FORMAT_VERSION + 1), r"saved by a newer tlzoo.*pip install -U tlzoo"),
        (lambda f: (f / CONFIG_NAME).write_text("{not json"), r"cannot be read"),
    ],
    ids=["no-tlzoo-json", "no-head", "head-shape", "unknown-modality", "unknown-head", "newer-format", "bad-json"],
)
def test_load_refuses_incomplete_models(
    saved: Path, tmp_path: Path, edit: Callable[[Path], None], message: str
) -> None:
    folder = broken_copy(saved, tmp_path, edit)
    with pytest.raises(ModelLoadError, match=message):
        load(folder)


def test_load_of_a_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="No saved model folder"):
        load(tmp_path / "nowhere")


# --- the model card ----------------------------------------------------------------------
def test_model_card_metadata_and_body(tmp_path: Path) -> None:
    config = {
        "modality": "audio",
        "task": {"problem_type": "single_label_classification", "num_labels": 2},
        "labels": ["yes", "no"],
        "source": {"hub_id": str(tmp_path), "license": None},  # a local folder: no base_model
        "head": {"spec": "linear"},
        "recipe": {  # as tlzoo.workflow writes it
            "source": {"name": "x"}, "strategy": "full_finetune", "strategy_reason": "enough data",
            "requested_strategy": "auto", "hyperparameters": {"learning_rate": 3e-5, "epochs": 3},
            "data": {"dataset": "someone/speech-commands", "split_sizes": {"train": 8, "test": 4}},
        },
        "metrics": {
            "test": {"accuracy": 0.75, "f1": float("nan"),
                     "per_class": {"yes": {"precision": 1.0, "recall": 0.5, "f1": 0.67, "support": 2}},
                     "confusion_matrix": [[1, 1], [0, 2]], "labels": ["yes", "no"]},
            "validation": {"accuracy": 1.0},
        },
        "history": [{"epoch": 1, "train_loss": 0.7}, {"epoch": 2, "train_loss": 0.5, "validation_accuracy": 1.0}],
        "pipeline": {"exported": False, "reason": "not linear"},
    }  # fmt: skip
    made = card.build_model_card(config, model_name="kws")
    data = made.data
    assert data.library_name == "tlzoo" and data.pipeline_tag == "audio-classification"
    assert data.base_model is None and data.license == "other"
    assert data.datasets == ["someone/speech-commands"]
    assert data.tags == ["tlzoo", "audio", "full_finetune", "transfer-learning"]
    assert {(r.dataset_split, r.metric_type, r.metric_value) for r in data.eval_results} == {
        ("test", "accuracy", 0.75),
        ("validation", "accuracy", 1.0),
    }  # NaN is left out
    text = made.text
    assert "| yes | 1 | 0.5 | 0.67 | 2 |" in text and "| no | 0 | 2 |" in text
    assert "Strategy: `full_finetune`. Why: enough data" in text
    assert "| learning_rate | 3e-05 |" in text and "| requested_strategy | auto |" in text
    assert '| data.split_sizes | `{"train": 8, "test": 4}` |' in text and "| source |" not in text
    assert "| 2 | 0.5 | 1 |" in text  # the per-epoch table fills in missing cells
    assert "from transformers import pipeline" not in text and "tlzoo.load(" in text
    card.build_model_card({"modality": "text"}, model_name="bare")  # robust to missing parts


def test_the_card_says_how_to_install_what_loads_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import json as json_lib
    from importlib import metadata

    from tlzoo.model import card as card_module

    config = {"modality": "text", "tlzoo_version": "9.9.9"}
    body = card_module.card_body(config, model_name="m")
    direct = metadata.distribution("tlzoo").read_text("direct_url.json")
    if direct and "dir_info" in json_lib.loads(direct):  # installed here from this checkout, as setup.sh does
        assert "installed from a tlzoo source checkout (`pip install ./ ./plugins/tlzoo-text` there" in body
    else:
        assert f"`pip install tlzoo==9.9.9 tlzoo-text=={metadata.version('tlzoo-text')}`" in body
    monkeypatch.setattr(card_module, "_from_checkout", lambda name: False)
    monkeypatch.setattr(card_module, "_version", lambda name: {"tlzoo-text": "1.2.3"}.get(name))
    assert "(`pip install tlzoo==9.9.9 tlzoo-text==1.2.3`)" in card_module.card_body(config, model_name="m")
