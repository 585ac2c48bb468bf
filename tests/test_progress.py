"""library_progress_bars: each library's bars on, off or left alone inside a block, then put back."""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import huggingface_hub.utils as hub_utils
import pytest
from transformers.utils import logging as transformers_logging

from tlzoo.progress import library_progress_bars


def shown() -> dict[str, bool]:
    return {"hub": not hub_utils.are_progress_bars_disabled(),
            "transformers": transformers_logging.is_progress_bar_enabled(),
            "datasets": datasets.is_progress_bar_enabled()}


@pytest.fixture(autouse=True)
def restore_settings() -> Iterator[None]:
    with library_progress_bars():  # changes nothing, and puts every setting back at the end
        yield


@pytest.mark.parametrize("start", [True, False])
def test_each_library_is_switched_alone_and_restored(start: bool) -> None:
    for switch in (transformers_logging.enable_progress_bar if start else transformers_logging.disable_progress_bar,
                   hub_utils.enable_progress_bars if start else hub_utils.disable_progress_bars,
                   datasets.enable_progress_bars if start else datasets.disable_progress_bars):
        switch()
    before = shown()
    assert before == {"hub": start, "transformers": start, "datasets": start}
    with library_progress_bars(transformers=not start):
        # transformers' own switch flips huggingface_hub's too; the hub setting left alone stays put
        assert shown() == {"hub": start, "transformers": not start, "datasets": start}
    assert shown() == before
    with library_progress_bars(hub=not start, transformers=not start, datasets=not start):
        assert shown() == {"hub": not start, "transformers": not start, "datasets": not start}
    assert shown() == before
    with pytest.raises(RuntimeError), library_progress_bars(hub=not start, datasets=not start):
        raise RuntimeError("restored on errors too")
    assert shown() == before


@pytest.mark.parametrize("columns", [0, 120])
def test_bars_stay_visible_and_leave_the_bar_room_for_its_scores(columns: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import os

    from tlzoo.progress import FALLBACK_WIDTH, progress_bar, short_postfix

    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((columns, 24)))
    out = io.StringIO()
    bar = progress_bar(total=3, desc="linear_probe", unit="epoch", rate=False, file=out, mininterval=0)
    postfix = short_postfix({"train_loss": 0.123456, "validation_accuracy": 0.875, "validation_loss": 0.3141})
    assert postfix == {"loss": "0.1235", "val_accuracy": "0.875", "val_loss": "0.3141"}
    bar.set_postfix(postfix)
    bar.update(3)
    bar.close()
    line = out.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "3/3" in line and "val_accuracy=0.875" in line
    if columns == 0:  # a terminal that reports no width still gets a whole bar
        assert bar.ncols == FALLBACK_WIDTH
    drawn = line.split("|")[1]
    assert len(drawn) >= 10, line  # the bar itself is more than a character or two wide
