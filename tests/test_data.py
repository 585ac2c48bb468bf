"""Target data: every accepted form, column and task detection, and every bad input's error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pytest
from conftest import colour_images, keyword_sentences

import tlzoo
from tlzoo.data import load_target_data
from tlzoo.errors import ColumnNotFoundError, ConfigurationError, DataError, UnreadableExampleError
from tlzoo.plugins import get_modality


def text() -> Any:
    return get_modality("text")


def test_forms_of_tabular_data(tmp_path: Path) -> None:
    ds = keyword_sentences(10)
    frame = ds.to_pandas()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "d.parquet")
    folder = tmp_path / "hubstyle"
    folder.mkdir()
    frame.iloc[:20].to_csv(folder / "train.csv", index=False)
    frame.iloc[20:].to_csv(folder / "test.csv", index=False)
    for data in (ds, frame, str(tmp_path / "d.csv"), str(tmp_path / "d.jsonl"), str(tmp_path / "d.parquet")):
        target = load_target_data(data, text(), validation_size=0)
        assert target.input_column == "text" and target.label_column == "label"
        assert target.label_names == ["food", "sports", "weather"]
        assert len(target.splits["train"]) + len(target.splits["test"]) == 30
    hub_style = load_target_data(str(folder), text(), validation_size=0)  # the load_dataset path of a Hub id
    assert len(hub_style.splits["test"]) == 10 and hub_style.made_splits == []


def test_image_and_audio_folders(tmp_path: Path) -> None:
    from tlzoo.demo.synthetic import make_tones

    images = colour_images(4)
    for i, row in enumerate(images):
        folder = tmp_path / "images" / row["label"]
        folder.mkdir(parents=True, exist_ok=True)
        row["image"].save(folder / f"{i}.png")
    target = load_target_data(str(tmp_path / "images"), get_modality("image"), validation_size=0, test_size=0.25)
    assert target.label_names == ["blue", "green", "red"] and target.input_column == "image"
    tones = make_tones(3)
    for i, row in enumerate(tones):
        folder = tmp_path / "audio" / tones.features["label"].int2str(row["label"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.wav").write_bytes(row["audio"]["bytes"])
    audio = load_target_data(str(tmp_path / "audio"), get_modality("audio"), validation_size=0, test_size=3)
    assert audio.input_column == "audio" and audio.num_labels == 3


def test_given_splits_are_used_and_labels_cast() -> None:
    ds = keyword_sentences(10)
    dd = datasets.DatasetDict({"train": ds.select(range(24)), "valid": ds.select(range(24, 30))})
    target = load_target_data(dd, text(), test_size=0.2)
    assert len(target.splits["validation"]) == 6 and target.made_splits == ["test"]
    assert isinstance(target.splits["train"].features["label"], datasets.ClassLabel)
    ints = datasets.Dataset.from_dict({"text": ["a b", "c d", "e f", "g h"] * 3, "label": [3, 7, 3, 7] * 3})
    assert load_target_data(ints, text(), test_size=0, validation_size=0).label_names == ["3", "7"]


def test_a_fraction_too_small_for_every_class_holds_out_one_of_each(caplog: Any) -> None:
    """10 % of 24 sentences in 3 topics is 2.4: a stratified split of 2 cannot hold out every topic, so 3 are."""
    rows = datasets.Dataset.from_dict({"text": [f"sentence {i}" for i in range(24)],
                                       "label": ["food", "sports", "weather"] * 8})
    with caplog.at_level("WARNING", logger="tlzoo"):
        target = load_target_data(rows, text(), test_size=0, validation_size=0.1)
    assert sorted(column(target.splits["validation"])) == ["food", "sports", "weather"]
    assert len(target.splits["train"]) == 21 and "random" not in caplog.text
    # a class with one example cannot be on both sides: a random split, with the reason
    lone = rows.select(range(23))  # weather: 7, food: 8, sports: 8
    lone = datasets.concatenate_datasets([lone, datasets.Dataset.from_dict({"text": ["x"], "label": ["snow"]})])
    with caplog.at_level("WARNING", logger="tlzoo"):
        target = load_target_data(lone, text(), test_size=0, validation_size=0.1)
    assert "splitting at random" in caplog.text and len(target.splits["validation"]) == 3


def column(ds: Any) -> list[str]:
    names = ds.features["label"].names
    return [names[i] for i in ds["label"]]


def test_task_detection() -> None:
    multi = datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"] * 5, "labels": [["x"], ["y"], ["x", "y"], []] * 5})
    assert load_target_data(multi, text(), validation_size=0).task == "multi_label_classification"
    reg = datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"] * 5, "target": [0.5, 1.25, 3.5, 2.0] * 5})
    target = load_target_data(reg, text(), validation_size=0)
    assert target.task == "regression" and target.label_names is None
    with pytest.raises(ConfigurationError, match="Unknown task"):
        load_target_data(reg, text(), task="clasification")


def test_imbalance_warns_and_balanced_weights(caplog: Any) -> None:
    from tlzoo.data import class_weights

    ds = datasets.Dataset.from_dict({"text": ["x"] * 40 + ["y"] * 8, "label": ["a"] * 40 + ["b"] * 8})
    target = load_target_data(ds, text(), test_size=0, validation_size=0)
    assert "imbalanced" in caplog.text
    assert class_weights(target) == pytest.approx([48 / 80, 48 / 16])


BAD_INPUTS = [
    ("misspelled label column", lambda: keyword_sentences(5), {"label_column": "lable"}, ColumnNotFoundError, "Did you mean 'label'"),
    ("misspelled input column", lambda: keyword_sentences(5), {"input_column": "txt"}, ColumnNotFoundError, "Did you mean 'text'"),
    ("modality mismatch", lambda: keyword_sentences(5), {}, DataError, "reads image, but the data has no image column"),
    ("one class", lambda: datasets.Dataset.from_dict({"image": colour_images(3)["image"][:6], "label": ["red"] * 6}), {}, DataError, "only one class"),
    ("empty split", lambda: datasets.DatasetDict({"train": colour_images(3), "test": colour_images(1).select([])}), {}, DataError, "test split is empty"),
    ("labels absent from train", lambda: datasets.DatasetDict({"train": colour_images(3).filter(lambda r: r["label"] != "blue"), "test": colour_images(1)}), {}, DataError, "never appear in the train split"),
    ("unknown strategy", lambda: colour_images(3), {"strategy": "linear-probe"}, ConfigurationError, "Did you mean 'linear_probe'"),
    ("unknown head", lambda: colour_images(3), {"head": "mpl"}, ConfigurationError, "Did you mean 'mlp'"),
]


@pytest.mark.parametrize(("case", "make", "kwargs", "error", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_fails_before_loading_and_writes_nothing(case: str, make: Any, kwargs: dict[str, Any], error: type,
                                                           message: str, tiny_models: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.features import extractor

    loaded: list[str] = []
    monkeypatch.setattr(extractor, "load_backbone", lambda *a, **k: loaded.append("model") or pytest.fail("model loaded"))
    out = tmp_path / "out"
    with pytest.raises(error, match=message):
        tlzoo.adapt(str(tiny_models("vit")), make(), output_dir=out, progress=False, **kwargs)
    assert not out.exists() and loaded == []


BAD_FILES = [
    ("header only", "reviews.csv", "text,label\n", r"'.*reviews.csv' holds no examples; add labelled examples"),
    ("empty file", "reviews.csv", "", r"Cannot read the target data '.*reviews.csv': EmptyDataError"),
    ("empty JSON list", "reviews.json", "[]", r"'.*reviews.json' holds no examples"),
    ("broken JSON", "reviews.json", '{"text": "a", "label": }', r"Cannot read the target data '.*reviews.json': .*JSON"),
]


@pytest.mark.parametrize(("case", "name", "content", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_data_files_are_named_before_loading(case: str, name: str, content: str, message: str, tiny_models: Any,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo.features import extractor

    monkeypatch.setattr(extractor, "load_backbone", lambda *a, **k: pytest.fail("model loaded"))
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        tlzoo.adapt(str(tiny_models("bert")), str(path), output_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_unreadable_file_is_named_before_loading(tmp_path: Path, tiny_models: Any) -> None:
    images = colour_images(3)
    root = tmp_path / "imgs"
    for i, row in enumerate(images):
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        row["image"].save(root / row["label"] / f"{i}.png")
    paths = sorted(str(p) for p in root.rglob("*.png"))
    broken = root / "red" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    ds = datasets.Dataset.from_dict({"image": [*paths, str(broken)], "label": [Path(p).parent.name for p in paths] + ["red"]})
    with pytest.raises(UnreadableExampleError, match="broken.png"):
        tlzoo.adapt(str(tiny_models("vit")), ds, output_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_diverging_loss_stops_with_a_clear_error(tiny_models: Any, tmp_path: Path) -> None:
    """A learning rate far too high sends the loss to inf: the loop's guard stops before a model is saved."""
    from tlzoo.errors import TrainingError

    ds = datasets.Dataset.from_dict({"text": ["a b", "c d", "e f", "g h"] * 4, "target": [1.5, 4.25, 2.5, 3.75] * 4})
    with pytest.raises(TrainingError, match="loss became inf in linear_probe epoch 2.*Lower the learning rate"):
        tlzoo.adapt(str(tiny_models("bert")), ds, strategy="linear_probe", epochs=2, batch_size=4, learning_rate=1e30,
                    output_dir=tmp_path / "o", validation_size=0, progress=False)
    assert not (tmp_path / "o" / "model").exists()


@pytest.mark.parametrize("bad", [float("inf"), float("-inf")])
def test_infinite_regression_targets_are_refused_when_the_data_are_read(bad: float) -> None:
    ds = datasets.Dataset.from_dict({"text": ["a b", "c d", "e f", "g h"] * 4,
                                     "target": [1.5, 4.25, 2.5, 3.75] * 3 + [1.5, bad, 2.5, bad]})
    with pytest.raises(DataError, match=r"'target' has missing, NaN, infinite or non-numeric targets in the train "
                                        r"split: 2 of 16 rows \(rows \[13, 15\]\)"):
        load_target_data(ds, text(), task="regression", validation_size=0, test_size=0)


@pytest.mark.parametrize("path", ["data/no_such", "./no_such", "no_such.csv", "a/b/c"])
def test_a_missing_local_path_fails_at_once_and_is_not_taken_for_a_hub_id(path: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    from tlzoo.data.reading import read_data
    from tlzoo.errors import DataError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()

    def no_hub(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the Hub was asked for {args}")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    with pytest.raises(DataError, match="does not exist"):
        read_data(path)


def test_class_folders_of_a_modality_without_a_datasets_builder(tmp_path: Path) -> None:
    """Text files in class folders, read by the text plugin's read_file (one file, one example)."""
    from tlzoo.data.reading import read_data
    from tlzoo.plugins import get_modality

    for label, texts in {"math": ["sum of two numbers", "a square root"], "os": ["list the files", "make a dir"]}.items():
        for i, text in enumerate(texts):
            (tmp_path / "train" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "train" / label / f"{i}.txt").write_text(text + "\n")
    (tmp_path / "train" / "math" / ".hidden.txt").write_text("not an example")
    splits = read_data(tmp_path, modality=get_modality("text"))
    train = splits["train"]
    assert train.features["label"].names == ["math", "os"]
    assert sorted(zip(train["text"], train["label"])) == [("a square root", 0), ("list the files", 1),
                                                          ("make a dir", 1), ("sum of two numbers", 0)]


# --- files that cannot be decoded: named, with the fix, before any model loads ---------------------------------
def _image_folder(root: Path, n_per_class: int = 6) -> Path:
    for i, row in enumerate(colour_images(n_per_class)):
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        row["image"].save(root / row["label"] / f"{i:03d}.png")
    return root


def _audio_folder(root: Path, n_per_class: int = 6) -> Path:
    from tlzoo.demo.synthetic import make_tones

    tones = make_tones(n_per_class)
    for i, row in enumerate(tones):
        folder = root / tones.features["label"].int2str(row["label"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:03d}.wav").write_bytes(row["audio"]["bytes"])
    return root


def _half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


@pytest.fixture
def no_backbone_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from tlzoo import workflow

    monkeypatch.setattr(workflow, "_build_extractor", lambda *a, **k: pytest.fail("the model was loaded"))


UNDECODABLE = [
    # (case, model, folder maker, class folder, file name, its bytes from a good file of the folder)
    ("0-byte image sniffed first", "vit", _image_folder, "blue", "000-empty.png", lambda good: b""),
    ("0-byte image late in the data", "vit", _image_folder, "red", "zzz-empty.png", lambda good: b""),
    ("truncated PNG late in the data", "vit", _image_folder, "red", "zzz-half.png", _half),
    ("0-byte WAV sniffed first", "wav2vec2", _audio_folder, "220hz", "000-empty.wav", lambda good: b""),
    ("0-byte WAV late in the data", "wav2vec2", _audio_folder, "880hz", "zzz-empty.wav", lambda good: b""),
    ("WAV header without samples", "wav2vec2", _audio_folder, "880hz", "zzz-header.wav", lambda good: good.read_bytes()[:44]),
]


@pytest.mark.parametrize(("case", "model", "make", "label", "name", "content"), UNDECODABLE, ids=[c[0] for c in UNDECODABLE])
def test_an_undecodable_file_in_a_folder_is_named_with_the_fix_before_loading(
        case: str, model: str, make: Any, label: str, name: str, content: Any, tiny_models: Any, tmp_path: Path,
        no_backbone_loads: None) -> None:
    root = make(tmp_path / "data")
    good = sorted((root / label).iterdir())[0]
    bad = root / label / name
    bad.write_bytes(content(good))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(UnreadableExampleError) as info:
        tlzoo.adapt(str(tiny_models(model)), str(root), output_dir=tmp_path / "out", progress=False)
    message = str(info.value)
    assert str(bad) in message and "Remove or replace that file" in message, message
    assert "train split, row" in message
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # the user's files unchanged


def test_every_undecodable_example_is_counted_and_the_first_ones_named(tmp_path: Path) -> None:
    images = [row["image"] for row in colour_images(3)]
    blobs = []
    for image in images:
        buffer = __import__("io").BytesIO()
        image.save(buffer, format="PNG")
        blobs.append(buffer.getvalue())
    broken = [0, 2, 3, 4, 5, 6, 8]  # the first rows are the ones column detection samples
    values = [{"bytes": b"" if i in broken else blob, "path": f"img{i}.png"} for i, blob in enumerate(blobs)]
    ds = datasets.Dataset.from_dict({"image": values, "label": ["a", "b", "c"] * 3}).cast_column("image", datasets.Image())
    with pytest.raises(UnreadableExampleError, match=r"^7 examples cannot be read \(train split, row 0: Cannot read "
                                                     r"image file 'img0.png': the file is empty; .* row 5: .*'img5.png'"
                                                     r": the file is empty; and 2 more\)\. Remove or replace"):
        load_target_data(ds, get_modality("image"))


def test_an_undecodable_text_file_in_class_folders_is_named(tmp_path: Path) -> None:
    for label in ("math", "os"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "a.txt").write_text(f"{label} words")
    bad = tmp_path / "os" / "b.txt"
    bad.write_bytes(b"\xff\xfe\x00 not utf-8 \xc3")
    with pytest.raises(UnreadableExampleError, match=rf"{bad}'.*UnicodeDecodeError.*Remove or replace that file"):
        load_target_data(str(tmp_path), text())


def test_an_image_that_fails_only_when_decoded_is_named_with_the_fix(tiny_models: Any, tmp_path: Path,
                                                                     feature_cache: Path) -> None:
    """A truncated JPEG passes the header check; decoding it while features are computed names it and the fix."""
    root = tmp_path / "data"
    for i, row in enumerate(colour_images(6)):
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        row["image"].save(root / row["label"] / f"{i:03d}.jpg", quality=95)
    bad = root / "red" / "zzz-half.jpg"
    bad.write_bytes(_half(root / "red" / "000.jpg"))
    with pytest.raises(UnreadableExampleError, match=rf"Cannot read image file '{bad}': .*truncated.*Remove or replace it"):
        tlzoo.adapt(str(tiny_models("vit")), str(root), strategy="linear_probe", output_dir=tmp_path / "out",
                    progress=False)
    assert not (tmp_path / "out" / "model").exists()


@pytest.mark.parametrize("modality", ["image", "text"])
def test_a_folder_with_one_class_folder_is_the_one_class_error(modality: str, tmp_path: Path) -> None:
    cat = tmp_path / "photos" / "train" / "cat"  # a split folder above the class folder is no class
    cat.mkdir(parents=True)
    for i in range(4):
        if modality == "image":
            colour_images(1)["image"][0].save(cat / f"{i}.png")
        else:
            (cat / f"{i}.txt").write_text(f"a cat sat on mat number {i}")
    with pytest.raises(DataError, match=r"only one class \('cat'\).*add a sub-folder per class"):
        load_target_data(str(tmp_path / "photos"), get_modality(modality))
