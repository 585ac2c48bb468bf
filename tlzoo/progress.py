"""Which progress bars of the Hugging Face libraries show while tlzoo works.

tlzoo draws its own bars (feature extraction, training). Around them, the
libraries it uses draw theirs: huggingface_hub while it downloads, transformers
while it loads or writes weights ("Loading weights", "Writing model shards"),
datasets while it reads and maps data. :func:`library_progress_bars` turns
each on or off for a block and puts every setting back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
