"""Run adapt() under torchrun and write the metrics (rank 0); used by test_distributed.py."""

from __future__ import annotations

import json
import sys

from conftest import colour_images, leave_process_group

import tlzoo


def main(source: str, strategy: str, out: str, cache: str) -> None:
    import os

    os.environ["TLZOO_CACHE"] = cache  # one cache shared by the processes (conftest made its own per process)
    result = tlzoo.adapt(source, colour_images(8), strategy=strategy, epochs=2, learning_rate=1e-3, batch_size=8,
                         progress=False)
    if result.recipe["num_processes"] and __import__("os").environ.get("RANK", "0") == "0":
        test = result.metrics["test"]
        with open(out, "w") as f:
            json.dump({"accuracy": test["accuracy"], "f1": test["f1"], "loss": test["loss"],
                       "num_examples": test["num_examples"], "num_processes": result.recipe["num_processes"]}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
    leave_process_group()
