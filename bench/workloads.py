"""The workloads the benchmarks time: tiny-but-not-trivial models, data, and the baselines.

Three source models are built offline with :mod:`tlzoo.testing` (random weights
are as costly to run as trained ones): a ViT on 64 px images, a BERT on short
sentences and a wav2vec2 on short tone clips, each with hidden size 192 and 6
layers in the full benchmark (and the 32-wide, 2-layer defaults in ``--quick``).

The baselines are written the way a user would write them *without* tlzoo, from
transformers and accelerate alone, and on the *same* backbone, pooling, linear
head, preprocessing (the same processor objects read from the same folder),
data, batch size and optimizer:

* :class:`HandLoop` -- a minimal Accelerate training loop (AdamW, linear
  schedule with 10 % warm-up, gradient clipping at 1.0: the defaults tlzoo and
  ``transformers.Trainer`` also use, so all three do the same work per step),
  run epoch by epoch in turn with tlzoo's own loop (:func:`interleaved_finetune`);
* :func:`trainer_loop` -- ``transformers.Trainer`` with the same settings;
* :func:`plain_forward` -- one ``torch.no_grad()`` pass of the backbone over a
  dataset, batch by batch, preprocessing included.

tlzoo itself is run through its public entry point, :func:`tlzoo.adapt`
(:func:`run_adapt`), and timed from the timings and per-epoch history it returns.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from common import Sizes
from torch import nn

#: Learning rate, weight decay, warm-up and clipping shared by tlzoo's
#: fine-tuning defaults, the hand loop and the Trainer run.
LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01
WARMUP_RATIO = 0.1
MAX_GRAD_NORM = 1.0


@dataclass
class Workload:
    """A source model folder and a way to make labelled data for it."""

    name: str
    modality: str
    folder: Path
    input_column: str
    make_data: Callable[[int, int], Any]  # (n examples, seed) -> datasets.Dataset
    sizes: Sizes

    def data(self, n: int, seed: int = 0) -> Any:
        """*n* labelled examples (3 balanced classes), as a user would pass them to ``adapt``."""
        return self.make_data(n, seed)


def build_workloads(root: Path, sizes: Sizes, names: tuple[str, ...] = ("vit", "bert", "wav2vec2")) -> dict[str, Workload]:
    """Build the source models *names* under *root* and return their workloads."""
    from tlzoo import testing
    from tlzoo.demo import synthetic

    out: dict[str, Workload] = {}
    over = sizes.overrides()
    if "vit" in names:
        folder = testing.build_tiny_vit(root / "vit", image_size=sizes.image_size, patch_size=sizes.patch_size, **over)

        def images(n: int, seed: int) -> Any:
            return synthetic.make_shapes(math.ceil(n / 3), size=sizes.image_size, seed=seed).select(range(n))

        out["vit"] = Workload("vit", "image", folder, "image", images, sizes)
    if "bert" in names:
        folder = testing.build_tiny_bert(root / "bert", **over)

        def sentences(n: int, seed: int) -> Any:
            return synthetic.make_sentences(math.ceil(n / 3), seed=seed).select(range(n))

        out["bert"] = Workload("bert", "text", folder, "text", sentences, sizes)
    if "wav2vec2" in names:
        folder = testing.build_tiny_wav2vec2(root / "wav2vec2", **over)

        def tones(n: int, seed: int) -> Any:
            return synthetic.make_tones(math.ceil(n / 3), duration=sizes.audio_seconds, seed=seed).select(range(n))

        out["wav2vec2"] = Workload("wav2vec2", "audio", folder, "audio", tones, sizes)
    return out


# ---------------------------------------------------------------------------
# tlzoo
# ---------------------------------------------------------------------------


def run_adapt(work: Workload, data: Any, *, cache_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
    """``tlzoo.adapt(work.folder, data, **kwargs)`` with quiet output and the feature cache in *cache_dir*.

    A fresh temporary cache is used when *cache_dir* is ``None``.
    """
    import tlzoo

    with tempfile.TemporaryDirectory(prefix="tlzoo-bench-cache-") as fresh:
        os.environ["TLZOO_CACHE"] = os.fspath(cache_dir or fresh)
        kwargs.setdefault("progress", False)
        kwargs.setdefault("seed", 0)
        return tlzoo.adapt(str(work.folder), data, **kwargs)


# ---------------------------------------------------------------------------
# the hand-written baselines
# ---------------------------------------------------------------------------


def undecoded(work: Workload, ds: Any) -> Any:
    """*ds* with images/audio left as ``{"bytes", "path"}`` (what both sides decode themselves)."""
    import datasets

    feature = ds.features[work.input_column]
    if isinstance(feature, datasets.Image) and feature.decode:
        return ds.cast_column(work.input_column, datasets.Image(decode=False))
    if isinstance(feature, datasets.Audio) and feature.decode:
        return ds.cast_column(work.input_column, datasets.Audio(sampling_rate=feature.sampling_rate, decode=False))
    return ds


class HandCollate:
    """Decode + preprocess a list of rows with the model's own processor; labels as a tensor."""

    def __init__(self, work: Workload, processor: Any, *, flat: bool = False) -> None:
        self.work = work
        self.processor = processor
        self.flat = flat  # Trainer wants the inputs at the top level of the batch

    def inputs(self, values: list[Any]) -> dict[str, torch.Tensor]:
        """The backbone's inputs for raw values of the input column."""
        if self.work.modality == "image":
            from PIL import Image

            images = [Image.open(io.BytesIO(v["bytes"])).convert("RGB") for v in values]
            return dict(self.processor(images=images, return_tensors="pt"))
        if self.work.modality == "text":
            return dict(self.processor(list(values), truncation=True, max_length=self.processor.model_max_length,
                                       padding=True, return_tensors="pt"))
        import soundfile

        clips = [soundfile.read(io.BytesIO(v["bytes"]), dtype="float32")[0] for v in values]
        return dict(self.processor(clips, sampling_rate=self.processor.sampling_rate, padding=True,
                                   return_attention_mask=True, return_tensors="pt"))

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        inputs = self.inputs([r[self.work.input_column] for r in rows])
        labels = torch.tensor([r["label"] for r in rows], dtype=torch.long)
        if self.flat:
            return {**inputs, "labels": labels}
        return {"inputs": inputs, "labels": labels}


class HandClassifier(nn.Module):
    """Backbone + the pooling tlzoo uses for the modality + a linear head."""

    def __init__(self, backbone: nn.Module, modality: str, num_labels: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.modality = modality
        self.head = nn.Linear(backbone.config.hidden_size, num_labels)

    def features(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Pooled features: CLS token for ViT, masked mean over tokens / frames otherwise."""
        hidden = self.backbone(**inputs).last_hidden_state
        if self.modality == "image":
            return hidden[:, 0]
        if self.modality == "text":
            mask = inputs["attention_mask"]
        else:
            mask = self.backbone._get_feature_vector_attention_mask(hidden.shape[1], inputs["attention_mask"])
        mask = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, labels: torch.Tensor | None = None, **inputs: torch.Tensor) -> Any:
        logits = self.head(self.features(**inputs))
        if labels is None:
            return logits
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def load_hand(work: Workload, num_labels: int = 3) -> tuple[HandClassifier, Any]:
    """The baseline model (backbone via ``AutoModel``, no pooler) and its processor."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel, AutoTokenizer

    kwargs = {"add_pooling_layer": False} if work.modality in ("image", "text") else {}
    torch.manual_seed(0)
    backbone = AutoModel.from_pretrained(work.folder, **kwargs)
    loader = {"image": AutoImageProcessor, "text": AutoTokenizer, "audio": AutoFeatureExtractor}[work.modality]
    return HandClassifier(backbone, work.modality, num_labels), loader.from_pretrained(work.folder)


class HandLoop:
    """Fine-tuning of backbone + head with a minimal Accelerate loop, one epoch per :meth:`epoch` call.

    The one-time setup (loading, ``prepare``) happens in the constructor, untimed.
    """

    def __init__(self, work: Workload, ds: Any, *, epochs: int, batch_size: int) -> None:
        from accelerate import Accelerator
        from torch.utils.data import DataLoader
        from transformers import get_scheduler

        self.accelerator = Accelerator()
        model, processor = load_hand(work)
        loader = DataLoader(undecoded(work, ds), batch_size=batch_size, shuffle=True,
                            collate_fn=HandCollate(work, processor), generator=torch.Generator().manual_seed(0))
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        total = len(loader) * epochs
        scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(WARMUP_RATIO * total),
                                  num_training_steps=total)
        self.model, self.optimizer, self.loader, self.scheduler = self.accelerator.prepare(
            model, optimizer, loader, scheduler)
        self.loss_fn = nn.CrossEntropyLoss()

    def epoch(self) -> tuple[float, float]:
        """One epoch -- data loading, preprocessing, forward, backward, clipping, AdamW and scheduler
        steps; returns its ``(wall, cpu)`` seconds."""
        started = clock()
        self.model.train()
        for batch in self.loader:
            loss = self.loss_fn(self.model(**batch["inputs"]), batch["labels"])
            self.accelerator.backward(loss)
            self.accelerator.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        ended = clock()
        return ended[0] - started[0], ended[1] - started[1]

    def close(self) -> None:
        """Drop the references ``prepare`` keeps."""
        self.accelerator.free_memory()


def interleaved_finetune(work: Workload, ds: Any, *, epochs: int, batch_size: int) -> list[dict[str, float]]:
    """tlzoo and the hand loop fine-tuning in turn, epoch by epoch: tlzoo 1, hand 1, tlzoo 2, hand 2, ...

    ``tlzoo.adapt(strategy="full")`` runs *epochs* epochs; at the end of each,
    through ``tlzoo.training.loop.end_of_epoch`` (the loop's seam, which the test suite
    uses too), one epoch of a :class:`HandLoop` set up beforehand runs. Each
    tlzoo epoch is timed from the end of the hand epoch before it to its own
    end, so it covers everything tlzoo's loop does per epoch. The first epoch
    of each is the warm-up and is dropped.

    :returns: one ``{"tlzoo_wall", "tlzoo_cpu", "hand_wall", "hand_cpu"}`` (seconds per epoch)
        for each timed epoch.
    """
    from tlzoo.training import loop

    hand = HandLoop(work, ds, epochs=epochs, batch_size=batch_size)
    records: list[dict[str, float]] = []
    resumed: list[tuple[float, float]] = []
    original = loop.end_of_epoch

    def between(phase: str, epoch: int) -> None:
        ended = clock()
        original(phase, epoch)
        hand_wall, hand_cpu = hand.epoch()
        if resumed:
            records.append({"tlzoo_wall": ended[0] - resumed[-1][0], "tlzoo_cpu": ended[1] - resumed[-1][1],
                            "hand_wall": hand_wall, "hand_cpu": hand_cpu})
        resumed.append(clock())

    loop.end_of_epoch = between
    try:
        run_adapt(work, ds, strategy="full", epochs=epochs, batch_size=batch_size, test_size=0, validation_size=0)
    finally:
        loop.end_of_epoch = original
        hand.close()
    return records


def clock() -> tuple[float, float]:
    """``(wall, cpu)``: ``perf_counter`` and this process's CPU time (``process_time``)."""
    return time.perf_counter(), time.process_time()


def per_step(stamps: list[tuple[float, float]], steps_per_epoch: int) -> dict[str, float]:
    """Wall and CPU seconds per step between the first and the last epoch stamp (the first epoch is the warm-up)."""
    if len(stamps) < 2:
        raise ValueError(f"need at least 2 epoch stamps (a warm-up and a timed epoch), got {len(stamps)}")
    steps = steps_per_epoch * (len(stamps) - 1)
    return {"wall": (stamps[-1][0] - stamps[0][0]) / steps, "cpu": (stamps[-1][1] - stamps[0][1]) / steps}


def trainer_loop(work: Workload, ds: Any, *, epochs: int, batch_size: int,
                 use_cpu: bool = True) -> list[tuple[float, float]]:
    """Fine-tune the same model with ``transformers.Trainer``; :func:`clock` at each ``on_epoch_end``."""
    from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

    stamps: list[tuple[float, float]] = []

    class EpochClock(TrainerCallback):
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(clock())

    model, processor = load_hand(work)
    with tempfile.TemporaryDirectory(prefix="tlzoo-bench-trainer-") as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, num_train_epochs=epochs,
            learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, warmup_steps=WARMUP_RATIO,
            lr_scheduler_type="linear", max_grad_norm=MAX_GRAD_NORM, use_cpu=use_cpu, report_to="none",
            save_strategy="no", eval_strategy="no", logging_strategy="no", disable_tqdm=True,
            dataloader_num_workers=0, dataloader_pin_memory=False, remove_unused_columns=False, seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=undecoded(work, ds),
                          data_collator=HandCollate(work, processor, flat=True), callbacks=[EpochClock()])
        trainer.remove_callback(PrinterCallback)  # it prints the final metrics to stdout
        trainer.train()
    return stamps


@torch.no_grad()
def plain_forward(model: HandClassifier, collate: HandCollate, ds: Any, *, batch_size: int) -> float:
    """Seconds of one eval-mode pass of the backbone (+ pooling) over *ds*, preprocessing included."""
    model.eval()
    column = collate.work.input_column
    started = time.perf_counter()
    for start in range(0, len(ds), batch_size):
        values = ds[start : start + batch_size][column]
        model.features(**collate.inputs(values))
    return time.perf_counter() - started


def fresh_cache_dir() -> tempfile.TemporaryDirectory[str]:
    """An empty directory for ``TLZOO_CACHE`` (removed when the object is cleaned up)."""
    return tempfile.TemporaryDirectory(prefix="tlzoo-bench-cache-")
