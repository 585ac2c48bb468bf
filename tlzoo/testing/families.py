"""Graded families of tiny source models, for testing and benchmarking ``tlzoo.rank``.

Every member is the same tiny BERT (:func:`tlzoo.testing.build_tiny_bert`,
one vocabulary for all), pre-trained with ``tlzoo.adapt(strategy="full")`` on
a source task of its own, its backbone saved as a plain source-model folder.
The target task (:func:`family_target`) sorts sentences into the four topics
of :data:`tlzoo.demo.tasks.TEXT_TOPICS` (sports, weather, food, music), each
sentence naming two of that topic's 17 keywords, so a few training sentences
name only some keywords and a source model helps as far as it already knows
which topic the others belong to. The members know that to different degrees
(and in different ways: Singh et al., 2025, show that a family ordered along
one axis alone flatters transferability estimates):

``all-topics``
    pre-trained on the four target topics: the target task itself.
``three-topics``, ``two-topics``
    on three, then two, of the target topics (the others it never saw).
``one-topic``
    on one target topic against four unrelated ones (animals, colours, tools, places).
``other-topics``
    on the four unrelated topics only: a trained network, nothing of the target.
``shuffled-topics``
    on the target keywords dealt into four topics at random: related words,
    the wrong grouping.
``random``
    random weights.

The expected order is the order above down to ``one-topic``; the last three
know nothing of the target topics, and their fine-tuned accuracies are near
chance (measured, not assumed, wherever an order is asserted).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["FAMILY", "OTHER_TOPICS", "build_text_family", "family_target", "family_vocabulary", "target_topics"]

#: Four topics that share no word with the target's.
OTHER_TOPICS: dict[str, tuple[str, ...]] = {
    "animals": ("cat", "dog", "horse", "cow", "sheep", "tiger", "rabbit", "eagle"),
    "colours": ("red", "green", "blue", "yellow", "purple", "orange", "violet", "crimson"),
    "tools": ("hammer", "saw", "drill", "wrench", "pliers", "chisel", "shovel", "ladder"),
    "places": ("city", "village", "island", "desert", "forest", "valley", "harbour", "canyon"),
}
#: Every member, in the expected order of transferability (the last three tie at the bottom).
FAMILY: tuple[str, ...] = ("all-topics", "three-topics", "two-topics", "one-topic", "other-topics",
                           "shuffled-topics", "random")


def target_topics() -> dict[str, list[str]]:
    """The target topics and all their keywords (train, validation and test pools of the demo together)."""
    from tlzoo.demo.tasks import TEXT_TOPICS

    return {topic: [word for pool in pools for word in pool] for topic, pools in TEXT_TOPICS.items()}


def family_vocabulary() -> list[str]:
    """The words of every member's tokenizer: the target's and the unrelated topics' keywords and the fillers."""
    from tlzoo.demo.synthetic import sentence_vocabulary

    return sentence_vocabulary({**target_topics(), **OTHER_TOPICS})


def _source_topics(member: str) -> dict[str, Sequence[str]]:
    topics = target_topics()
    names = list(topics)
    if member == "all-topics":
        return topics
    if member == "three-topics":
        return {name: topics[name] for name in names[:3]}
    if member == "two-topics":
        return {name: topics[name] for name in names[:2]}
    if member == "one-topic":
        return {names[0]: topics[names[0]], **OTHER_TOPICS}
    if member == "other-topics":
        return dict(OTHER_TOPICS)
    if member == "shuffled-topics":
        words = [word for name in names for word in topics[name]]
        random.Random(0).shuffle(words)
        return {f"group{i}": words[i :: len(names)] for i in range(len(names))}
    raise ValueError(f"unknown family member {member!r}; expected one of {', '.join(FAMILY)}")


def family_target(n_per_class: int, *, seed: int = 0) -> Any:
    """The target task: ``n_per_class`` sentences of each of the four target topics (a ``datasets.Dataset``)."""
    from tlzoo.demo.synthetic import make_sentences

    return make_sentences(n_per_class, target_topics(), seed=seed)


def build_text_family(
    folder: str | os.PathLike[str], members: Sequence[str] = FAMILY, *, seed: int = 0,
    examples_per_class: int = 60, epochs: int = 10, learning_rate: float = 3e-3, **bert: Any,
) -> dict[str, Path]:
    """Build and pre-train *members* of the family under *folder*; returns member -> source-model folder.

    Each member starts from the same random weights (``seed``) and is
    pre-trained on ``examples_per_class`` sentences per source topic for
    ``epochs`` epochs (about a second each for the default 32-wide, 2-layer
    model on one core); ``random`` is those weights untrained. *bert* are
    :func:`tlzoo.testing.build_tiny_bert` overrides (``hidden_size=...``).
    """
    import tlzoo
    from tlzoo.demo.synthetic import make_sentences
    from tlzoo.progress import library_progress_bars
    from tlzoo.testing.builders import build_tiny_bert

    root = Path(folder)
    vocab = family_vocabulary()
    init = build_tiny_bert(root / "init", vocab=vocab, seed=seed, **bert)
    out: dict[str, Path] = {}
    for member in members:
        if member == "random":
            out[member] = build_tiny_bert(root / member, vocab=vocab, seed=seed, **bert)
            continue
        data = make_sentences(examples_per_class, _source_topics(member), seed=seed + 1)
        result = tlzoo.adapt(str(init), data, strategy="full", epochs=epochs, learning_rate=learning_rate,
                             layer_decay=1.0,
                             batch_size=32, test_size=0.1, validation_size=0.0, seed=seed, save_strategy="no",
                             progress=False)
        with library_progress_bars(transformers=False):  # no "Writing model shards"
            result.model.extractor.save_pretrained(root / member)  # a plain source-model folder, with its tokenizer
        out[member] = root / member
    return out
