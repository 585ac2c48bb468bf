"""``tlzoo.rank`` and the shared feature cache under torchrun; used by test_distributed.py.

    python -m torch.distributed.run --nproc_per_node=N distributed_rank.py MODE OUT CACHE SOURCE...

``rank``: rank the sources on the colour images, writing the output folder ``OUT-ranking``.
``cache``: fill the feature cache of the first source while process 1 arrives 3 s late
(as when its model loads more slowly), then read it again. Every process writes
``OUT.<process index>.json``: what it got, and how many examples it ran through the backbone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from conftest import colour_images, leave_process_group

import tlzoo
from tlzoo.features import extraction


def main(mode: str, out: str, cache: str, *sources: str) -> None:
    os.environ["TLZOO_CACHE"] = cache  # one cache shared by the processes (conftest made its own per process)
    shares: list[int] = []
    real = extraction._Extraction.__call__

    def counting(self: Any, mine: list[int]) -> None:
        shares.append(len(mine))
        real(self, mine)

    extraction._Extraction.__call__ = counting
    if mode == "rank":
        ranking = tlzoo.rank(list(sources), colour_images(8), progress=False, output_dir=f"{out}-ranking")
        record: dict[str, Any] = {"rows": ranking.rows, "best": ranking.best}
    else:
        from tlzoo.plugins import get_modality
        from tlzoo.training.train import make_accelerator

        accelerator = make_accelerator(mixed_precision=None, gradient_accumulation_steps=1, report_to=None,
                                       output_dir=None, seed=0)
        modality = get_modality("image")
        extractor = modality.build_feature_extractor(sources[0])
        splits = {"train": colour_images(8), "test": colour_images(4, seed=1)}
        if accelerator.process_index == 1:
            time.sleep(3)  # late: the main process has written its share by the time this one looks
        _, first = extraction.cached_features(extractor, modality, splits, "image", accelerator, batch_size=4,
                                              progress=False)
        _, second = extraction.cached_features(extractor, modality, splits, "image", accelerator, batch_size=4,
                                               progress=False)
        record = {"first": first, "second": second}
    record.update(shares=shares, num_processes=int(os.environ.get("WORLD_SIZE", "1")))
    with open(f"{out}.{os.environ.get('RANK', '0')}.json", "w") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
    leave_process_group()
