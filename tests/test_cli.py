"""The CLI's zoo and plugin commands, exit codes and help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tlzoo.cli import build_parser, main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlzoo", *args], capture_output=True, text=True, timeout=120)


def test_models_table_and_json(capsys: Any) -> None:
    assert main(["models", "*vit*", "--modality", "image"]) == 0
    out = capsys.readouterr().out
    assert "vit-base-in21k" in out and "google/vit-base-patch16-224-in21k" in out and "86M" in out
    assert main(["models", "--modality", "audio", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["modality"] for d in data} == {"audio"} and len(data) >= 5
    assert main(["models", "nothing-like-this*"]) == 0
    assert "No source models match" in capsys.readouterr().out


def test_plugins_json(capsys: Any) -> None:
    assert main(["plugins", "--json"]) == 0
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert data["text"]["modalities"] == ["text"] and data["text"]["error"] is None


def test_usage_error_exits_2_and_tlzoo_error_exits_1(tmp_path: Path) -> None:
    bad = run("models", "--no-such-flag")
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr
    registry = tmp_path / "r.yaml"
    registry.write_text("models: 3\n")
    failed = run("models", "--registry", str(registry))
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: ") and "Traceback" not in failed.stderr
    debug = run("--debug", "models", "--registry", str(registry))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_every_command_has_help_with_examples() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"models", "plugins", "install", "uninstall"} <= set(sub.choices)
    for name, command in sub.choices.items():
        assert "examples:" in (command.epilog or ""), name
        assert command.description, name


def test_help_is_fast() -> None:
    out = run("--help")
    assert out.returncode == 0 and "tlzoo" in out.stdout
    # not a timing assertion: heavy libraries must simply not be imported
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, tlzoo, tlzoo.cli; tlzoo.cli.build_parser();"
         "print(sorted(m for m in ('torch','transformers','datasets','accelerate') if m in sys.modules))"],
        capture_output=True, text=True, timeout=60,
    )
    assert probe.stdout.strip() == "[]", probe.stdout


@pytest.mark.parametrize("args", [["models"], ["plugins"]])
def test_console_script_entry_point(args: list[str]) -> None:
    assert run(*args).returncode == 0


TEARDOWN_PROBE = """
import atexit, sys
import tlzoo.cli

class Teardown:
    def __del__(self):
        sys.stdout.write("torn down\\n")

probe = Teardown()  # freed only by Python's teardown of this module
atexit.register(lambda: sys.stdout.write("exit handlers ran\\n"))
sys.stdout.write("x" * 100000)  # buffered output must still arrive whole
sys.argv = ["tlzoo", *sys.argv[1:]]
tlzoo.cli.run()
"""


@pytest.mark.parametrize("full_exit", ["", "1"])
def test_the_command_ends_without_the_interpreter_teardown(full_exit: str) -> None:
    """Exit handlers run and output is flushed; Python's module teardown is skipped unless TLZOO_FULL_EXIT=1."""
    import os

    env = {**os.environ, "TLZOO_FULL_EXIT": full_exit}
    for args, code in ((["plugins", "--json"], 0), (["models", "--no-such-flag"], 2)):
        done = subprocess.run([sys.executable, "-c", TEARDOWN_PROBE, *args], capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == code, done.stderr
        assert done.stdout.startswith("x" * 100000) and "exit handlers ran" in done.stdout
        assert ("torn down" in done.stdout) == bool(full_exit)


def test_the_installed_console_script_runs() -> None:
    """The ``tlzoo`` executable that ``pip install`` puts beside the interpreter (``[project.scripts]``)."""
    import shutil

    script = shutil.which("tlzoo", path=str(Path(sys.executable).parent))
    assert script is not None, "the tlzoo console script is not installed beside this Python"
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("tlzoo ")
    listed = subprocess.run([script, "models", "--modality", "text", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert listed.returncode == 0
    assert {row["modality"] for row in json.loads(listed.stdout)} == {"text"}


def test_a_misspelled_flag_names_the_command_and_the_close_flag(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["adapt", "src", "data", "--epoch", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "tlzoo adapt: error: unrecognized arguments: --epoch 3" in err
    assert "did you mean --epochs?" in err and "usage: tlzoo adapt" in err


def test_flags_are_not_abbreviated(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        main(["adapt", "src", "data", "--learning", "3"])  # not taken for --learning-rate
    assert "unrecognized arguments: --learning" in capsys.readouterr().err


def test_a_run_without_an_output_folder_is_named_after_its_source(tmp_path: Path, monkeypatch: Any) -> None:
    from tlzoo.cli.adapt import default_output_dir

    monkeypatch.chdir(tmp_path)
    assert Path(default_output_dir("sentence-transformers/all-MiniLM-L6-v2")).name.startswith("all-MiniLM-L6-v2-")
    assert Path(default_output_dir("./models/my-vit/")).name.startswith("my-vit-")
    for candidates in ("./a,./b", "*minilm*"):  # the source is chosen by the ranking, later
        folder = Path(default_output_dir(candidates))
        assert folder.parent == Path("tlzoo-runs") and folder.name.startswith("ranked-"), folder


def test_the_trial_log_lines_say_what_each_trial_did() -> None:
    from tlzoo.cli.adapt import _trial

    assert _trial({"strategy": "lp_ft", "skipped": True, "why": "over the budget"}) == "lp_ft not run: over the budget"
    assert _trial({"strategy": "lp_ft", "diverged": True, "learning_rate": 0.1, "why": "NaN"}).startswith(
        "lp_ft diverged at learning rate 0.1")
    tuned = {"strategy": "lp_ft", "kept": True, "seconds": 2.04, "validation_loss": 0.0421, "why": "the best"}
    assert _trial(tuned) == "lp_ft (kept, 2.0 s; validation loss 0.0421): the best"
    judged = {**tuned, "kept": False, "cross_validation": {"folds": 3, "examples": 120, "seconds": 0.9, "metric": "loss",
                                                           "fine_tuned": 0.301, "linear_probe": 0.283,
                                                           "kept": "linear_probe"}}
    assert _trial(judged).endswith("[cross-validation, 3 folds of 120 examples, 0.9 s: loss 0.301 fine-tuned, "
                                   "0.283 probe]")
    settled = {**tuned, "cross_validation": {"skipped": True, "why": "the validation split settles it"}}
    assert _trial(settled).endswith("[cross-validation not run: the validation split settles it]")
