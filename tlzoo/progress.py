"""Which progress bars of the Hugging Face libraries show while tlzoo works.

tlzoo draws its own bars (feature extraction, training). Around them, the
libraries it uses draw theirs: huggingface_hub while it downloads, transformers
while it loads or writes weights ("Loading weights", "Writing model shards"),
datasets while it reads and maps data. :func:`library_progress_bars` turns
each on or off for a block and puts every setting back afterwards.
:func:`progress_bar` makes tlzoo's own bars, visible on any terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def library_progress_bars(
    *, hub: bool | None = None, transformers: bool | None = None, datasets: bool | None = None
) -> Iterator[None]:
    """Show (``True``) or hide (``False``) each library's progress bars inside the block, then restore them.

    ``None`` (the default) leaves that library's setting as it is.

    ``hub`` covers downloads, the one wait long enough to want a bar even when
    the others are hidden: ``library_progress_bars(transformers=False,
    datasets=False)`` keeps download bars and hides the rest.
    """
    import datasets as datasets_lib
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as transformers_logging

    was = {
        "hub": not hub_utils.are_progress_bars_disabled(),
        "transformers": transformers_logging.is_progress_bar_enabled(),
        "datasets": datasets_lib.is_progress_bar_enabled(),
    }
    _set(hub=hub, transformers=transformers, datasets=datasets)
    try:
        yield
    finally:
        _set(**was)


def _set(*, hub: bool | None, transformers: bool | None, datasets: bool | None) -> None:
    """Switch only what differs, so a setting fixed by an environment variable gives no warning."""
    import datasets as datasets_lib
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as transformers_logging

    if hub is None:  # transformers' switch flips huggingface_hub's too: keep it where it was
        hub = not hub_utils.are_progress_bars_disabled()
    if transformers is not None and transformers_logging.is_progress_bar_enabled() != transformers:
        (transformers_logging.enable_progress_bar if transformers else transformers_logging.disable_progress_bar)()
    if hub_utils.are_progress_bars_disabled() == hub:
        (hub_utils.enable_progress_bars if hub else hub_utils.disable_progress_bars)()
    if datasets is not None and datasets_lib.is_progress_bar_enabled() != datasets:
        (datasets_lib.enable_progress_bars if datasets else datasets_lib.disable_progress_bars)()


#: Narrower than this (a zero-width pseudo-terminal, a tiny pane), a bar is drawn :data:`FALLBACK_WIDTH` wide.
MIN_WIDTH = 40
FALLBACK_WIDTH = 100
#: tqdm's layout without the rate (``3.2epoch/s``): room for the bar beside a postfix of scores.
WITHOUT_RATE = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


def progress_bar(iterable: Any = None, *, rate: bool = True, **options: Any) -> Any:
    """A tqdm bar (``tqdm.auto``) that stays visible whatever the terminal says its width is.

    tqdm sizes a bar to the terminal; a terminal that reports no width (some
    CI logs, a detached pane) gives a bar of zero columns, that is no bar. Below
    :data:`MIN_WIDTH` columns the bar is drawn :data:`FALLBACK_WIDTH` wide
    instead. ``rate=False`` leaves out the items per second, for bars whose
    postfix carries scores. *options* are tqdm's.
    """
    import shutil

    from tqdm.auto import tqdm

    columns = shutil.get_terminal_size(fallback=(FALLBACK_WIDTH, 24)).columns
    if columns < MIN_WIDTH:
        options.update(dynamic_ncols=False, ncols=FALLBACK_WIDTH)
    else:
        options.setdefault("dynamic_ncols", True)
    if not rate:
        options.setdefault("bar_format", WITHOUT_RATE)
    return tqdm(iterable, **options)


def short_postfix(scores: dict[str, Any]) -> dict[str, str]:
    """Scores for a bar's postfix, in few characters: ``train_loss`` as ``loss``, ``validation_x`` as ``val_x``.

    Long names squeeze the bar itself to a character or two on a usual
    terminal; the full names are in the epoch log and the history.
    """
    renamed = {}
    for key, value in scores.items():
        short = "loss" if key == "train_loss" else key.replace("validation_", "val_", 1)
        renamed[short] = f"{value:.4g}" if isinstance(value, int | float) else str(value)
    return renamed
