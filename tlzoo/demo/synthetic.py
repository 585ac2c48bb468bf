"""Small, learnable, made-up labelled datasets.

These generators are what the test suite, the offline demo and the benchmarks
train on, so they need no network and no downloaded data. Every generator:

* returns a :class:`datasets.Dataset` with typed features and a
  :class:`datasets.ClassLabel` ``"label"`` column (class ids follow the order
  of the classes given);
* is seeded: the same arguments and ``seed`` give byte-identical data;
* yields exactly ``n_per_class`` examples of each class, shuffled (so the
  rows are not sorted by class);
* is fast: hundreds of examples in well under a second (speech, which runs a
  speech synthesiser, takes longer).

The tasks are learnable but not trivial: images get random positions, sizes,
colours and noisy backgrounds; tones get detuning, random phase, gain and
noise; spoken words vary voice, speed and pitch; sentences mix class keywords
with shared filler words and the occasional keyword of another class.

Audio columns are ``datasets.Audio(sampling_rate=..., decode=False)`` holding
``{"bytes": <WAV file bytes>, "path": None}``: decoding audio in ``datasets``
5 needs ``torchcodec``, which tlzoo does not require, so the bytes are left
for the caller to decode (``soundfile.read(io.BytesIO(example["audio"]["bytes"]))``).
The datasets are built straight from Arrow tables, because
``Audio.encode_example`` itself imports ``torchcodec``.

Heavy libraries (``datasets``, ``numpy``, ``PIL``, ``soundfile``, ``soxr``,
``pyarrow``) are imported inside the functions, so importing this module is
cheap.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    from datasets import Dataset, Features

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SENTENCE_CLASSES",
    "DEFAULT_VOICES",
    "FILLER_WORDS",
    "SHAPES",
    "espeak_available",
    "make_sentences",
    "make_shapes",
    "make_spoken_words",
    "make_tones",
    "sentence_vocabulary",
    "tone_label",
]

# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------


def _check_classes(names: Sequence[str], what: str) -> list[str]:
    if isinstance(names, str):
        raise ValueError(
            f"{what}: classes must be a sequence of names, not one string ({names!r}); write ({names!r},)."
        )
    names = [str(n) for n in names]
    if not names:
        raise ValueError(f"{what}: at least one class is needed, got none.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what}: class names must be unique, repeated: {dupes}.")
    return names


def _check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}.")
    return int(n)


def _label_order(n_classes: int, n_per_class: int, rng: np.random.Generator) -> list[int]:
    """Exactly *n_per_class* of each label id, in a seeded random order."""
    import numpy as np

    labels = np.repeat(np.arange(n_classes), n_per_class)
    rng.shuffle(labels)
    return [int(x) for x in labels]


def _dataset(columns: dict[str, list[Any]], features: Features) -> Dataset:
    """Build a Dataset straight from an Arrow table typed by *features*.

    This skips ``Features.encode_example`` (which, for ``Audio``, imports
    torchcodec) and the progress bar ``Dataset.cast`` would show.
    """
    import pyarrow as pa
    from datasets import Dataset, DatasetInfo

    schema = features.arrow_schema
    table = pa.table({name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()})
    return Dataset(table, info=DatasetInfo(features=features))


def _wav_bytes(samples: np.ndarray, sampling_rate: int) -> bytes:
    """Encode float samples in [-1, 1] as 16-bit PCM WAV file bytes."""
    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(samples, -1.0, 1.0).astype(np.float32), sampling_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _audio_features(names: Sequence[str], sampling_rate: int) -> Features:
    from datasets import Audio, ClassLabel, Features

    return Features({"audio": Audio(sampling_rate=sampling_rate, decode=False), "label": ClassLabel(names=list(names))})


# --------------------------------------------------------------------------
# images: shapes
# --------------------------------------------------------------------------

#: Every shape name :func:`make_shapes` can draw.
SHAPES: tuple[str, ...] = (
    "circle",
    "ring",
    "ellipse",
    "semicircle",
    "crescent",
    "square",
    "frame",
    "rectangle",
    "diamond",
    "triangle",
    "pentagon",
    "hexagon",
    "octagon",
    "star",
    "cross",
    "xcross",
    "hline",
    "vline",
    "arrow",
    "heart",
)

_SUPERSAMPLE = 4  # shapes are drawn 4x larger, then downsampled (anti-aliasing)


def _rotate(points: list[tuple[float, float]], angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def _regular(n: int, radius: float, start: float = -math.pi / 2) -> list[tuple[float, float]]:
    angles = [start + 2 * math.pi * k / n for k in range(n)]
    return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]


def _ellipse_pts(
    rx: float, ry: float, n: int = 48, t0: float = 0.0, t1: float = 2 * math.pi
) -> list[tuple[float, float]]:
    angles = [t0 + (t1 - t0) * k / (n - 1) for k in range(n)]
    return [(rx * math.cos(a), ry * math.sin(a)) for a in angles]


def _shape_polygons(name: str, r: float, rng: np.random.Generator) -> list[tuple[list[tuple[float, float]], int]]:
    """Polygons centred on (0, 0) as ``(points, fill)`` pairs; fill 255 draws, 0 cuts a hole.

    *r* is the shape's "radius" in (supersampled) pixels.
    """
    small = float(rng.uniform(-0.26, 0.26))  # about +-15 degrees
    any_angle = float(rng.uniform(0, 2 * math.pi))
    thick = r * float(rng.uniform(0.22, 0.32))
    if name == "circle":
        return [(_ellipse_pts(r, r), 255)]
    if name == "ring":
        return [(_ellipse_pts(r, r), 255), (_ellipse_pts(r - thick, r - thick), 0)]
    if name == "ellipse":
        return [(_rotate(_ellipse_pts(r, r * float(rng.uniform(0.4, 0.6))), any_angle), 255)]
    if name == "semicircle":
        return [(_rotate(_ellipse_pts(r, r, 32, 0.0, math.pi), any_angle), 255)]
    if name == "crescent":
        bite = [(x + 0.5 * r, y) for x, y in _ellipse_pts(r * 0.85, r * 0.85)]
        return [(_rotate(_ellipse_pts(r, r), any_angle), 255), (_rotate(bite, any_angle), 0)]
    if name == "square":
        return [(_rotate(_regular(4, r, math.pi / 4), small), 255)]
    if name == "frame":
        inner = _regular(4, r - thick * 1.3, math.pi / 4)
        return [(_rotate(_regular(4, r, math.pi / 4), small), 255), (_rotate(inner, small), 0)]
    if name == "rectangle":
        h = r * float(rng.uniform(0.4, 0.55))
        upright = math.pi / 2 if rng.random() < 0.5 else 0.0
        return [(_rotate([(-r, -h), (r, -h), (r, h), (-r, h)], small + upright), 255)]
    if name == "diamond":
        return [(_rotate(_regular(4, r, 0.0), small * 0.5), 255)]
    if name == "triangle":
        return [(_rotate(_regular(3, r), any_angle), 255)]
    if name == "pentagon":
        return [(_rotate(_regular(5, r), any_angle), 255)]
    if name == "hexagon":
        return [(_rotate(_regular(6, r), any_angle), 255)]
    if name == "octagon":
        return [(_rotate(_regular(8, r), any_angle), 255)]
    if name == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.42
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return [(_rotate(pts, any_angle), 255)]
    if name in ("cross", "xcross", "hline", "vline"):
        t = thick / 2
        bar = [(-r, -t), (r, -t), (r, t), (-r, t)]
        if name == "hline":
            return [(_rotate(bar, small * 0.4), 255)]
        if name == "vline":
            return [(_rotate(bar, math.pi / 2 + small * 0.4), 255)]
        base = small * 0.6 + (math.pi / 4 if name == "xcross" else 0.0)
        return [(_rotate(bar, base), 255), (_rotate(bar, base + math.pi / 2), 255)]
    if name == "arrow":
        t = thick / 2
        pts = [(-r, -t), (0.15 * r, -t), (0.15 * r, -0.6 * r), (r, 0.0), (0.15 * r, 0.6 * r), (0.15 * r, t), (-r, t)]
        return [(_rotate(pts, any_angle), 255)]
    if name == "heart":
        pts = []
        for k in range(48):
            a = 2 * math.pi * k / 48
            x = 16 * math.sin(a) ** 3
            y = -(13 * math.cos(a) - 5 * math.cos(2 * a) - 2 * math.cos(3 * a) - math.cos(4 * a))
            pts.append((x * r / 16.5, (y + 2.5) * r / 16.5))
        return [(_rotate(pts, small), 255)]
    raise AssertionError(name)  # pragma: no cover - names are checked earlier


def _random_colour(rng: np.random.Generator, colorful: bool) -> np.ndarray:
    import numpy as np

    if colorful:
        return rng.uniform(0, 255, size=3)
    return np.full(3, rng.uniform(0, 255))


def _luminance(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _draw_shape(name: str, size: int, rng: np.random.Generator, colorful: bool) -> bytes:
    """One PNG-encoded RGB image of shape *name* on a noisy background."""
    import numpy as np
    from PIL import Image, ImageDraw

    # background: a random base colour, a random linear gradient and pixel noise
    bg = _random_colour(rng, colorful)
    fg = _random_colour(rng, colorful)
    for _ in range(20):  # keep the shape visible against the background
        if abs(_luminance(fg) - _luminance(bg)) >= 70:
            break
        fg = _random_colour(rng, colorful)
    else:
        fg = np.full(3, 255.0 if _luminance(bg) < 128 else 0.0)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    gx, gy = rng.uniform(-25, 25, size=2)
    grad = (xx - 0.5) * gx + (yy - 0.5) * gy
    noise_std = float(rng.uniform(6, 18))
    channel_noise = rng.normal(0, noise_std, size=(size, size, 3 if colorful else 1))
    back = bg[None, None, :] + grad[..., None] + channel_noise
    front = fg[None, None, :] + rng.normal(0, noise_std * 0.5, size=(size, size, 3 if colorful else 1))

    # the shape as an anti-aliased mask
    big = size * _SUPERSAMPLE
    r = float(rng.uniform(0.22, 0.42)) * big
    margin = r + _SUPERSAMPLE
    cx, cy = (float(rng.uniform(margin, big - margin)) if big - margin > margin else big / 2.0 for _ in range(2))
    mask_img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask_img)
    for pts, fill in _shape_polygons(name, r, rng):
        draw.polygon([(cx + x, cy + y) for x, y in pts], fill=fill)
    mask = np.asarray(mask_img.resize((size, size), Image.Resampling.BOX), dtype=np.float64)[..., None] / 255.0

    pixels = np.clip(front * mask + back * (1.0 - mask), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def make_shapes(
    n_per_class: int,
    classes: Sequence[str] = ("circle", "square", "triangle"),
    *,
    size: int = 32,
    seed: int = 0,
    colorful: bool = True,
) -> Dataset:
    """Images of simple shapes, one class per shape.

    Each image is a ``size`` x ``size`` RGB picture of one filled shape at a
    random position, scale and (where it does not change the class) rotation,
    in a random colour over a noisy, gradient background. Squares and crosses
    rotate by at most about 15 degrees, so they stay distinct from diamonds and
    x-crosses; lines stay roughly horizontal / vertical.

    Args:
        n_per_class: number of images of each class (> 0).
        classes: shape names, in label-id order; any of :data:`SHAPES`
            (``circle``, ``ring``, ``ellipse``, ``semicircle``, ``crescent``,
            ``square``, ``frame``, ``rectangle``, ``diamond``, ``triangle``,
            ``pentagon``, ``hexagon``, ``octagon``, ``star``, ``cross``,
            ``xcross``, ``hline``, ``vline``, ``arrow``, ``heart``). Use
            disjoint lists to make a "source" and a "target" task.
        size: image width and height in pixels (>= 8).
        seed: random seed; the same seed gives identical images.
        colorful: random RGB colours if true, else grey levels only (the images
            are RGB either way).

    Returns:
        A dataset with columns ``"image"`` (``datasets.Image()``; decodes to
        PIL RGB images) and ``"label"`` (``ClassLabel(names=classes)``), with
        ``n_per_class * len(classes)`` rows in a seeded random order.

    Raises:
        ValueError: unknown or repeated shape names, ``n_per_class < 1`` or
            ``size < 8``.
    """
    import numpy as np
    from datasets import ClassLabel, Features, Image

    names = _check_classes(classes, "make_shapes")
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        from tlzoo.errors import did_you_mean

        hint = "".join(did_you_mean(u, SHAPES, n=1) for u in unknown[:1])
        raise ValueError(f"make_shapes: unknown shape(s) {unknown}; known shapes: {', '.join(SHAPES)}.{hint}")
    _check_count(n_per_class, "n_per_class")
    if size < 8:
        raise ValueError(f"make_shapes: size must be at least 8 pixels, got {size}.")

    rng = np.random.default_rng(seed)
    labels = _label_order(len(names), n_per_class, rng)
    images = [{"bytes": _draw_shape(names[lab], size, rng, colorful), "path": None} for lab in labels]
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    return _dataset({"image": images, "label": labels}, features)


# --------------------------------------------------------------------------
# audio: tones
# --------------------------------------------------------------------------


def tone_label(frequency: float) -> str:
    """The label name :func:`make_tones` gives a frequency: ``220.0 -> "220hz"``, ``27.5 -> "27.5hz"``."""
    return f"{float(frequency):g}hz"


def make_tones(
    n_per_class: int,
    frequencies: Sequence[float] = (220.0, 440.0, 880.0),
    *,
    sampling_rate: int = 16000,
    duration: float = 0.5,
    seed: int = 0,
    noise: float = 0.05,
) -> Dataset:
    """Noisy pure tones, one class per frequency.

    Each clip is a sine at the class frequency, detuned by up to +-3 %, with a
    random phase, a random gain (0.2-0.8), a weak random second harmonic,
    10 ms fades, and white Gaussian noise of standard deviation ``noise``.

    Args:
        n_per_class: number of clips per frequency (> 0).
        frequencies: tone frequencies in Hz, in label-id order; all below
            ``sampling_rate / 2``.
        sampling_rate: samples per second of the stored WAV files.
        duration: clip length in seconds (every clip has exactly
            ``round(duration * sampling_rate)`` samples).
        seed: random seed; the same seed gives identical bytes.
        noise: standard deviation of the added noise (0 for clean tones).

    Returns:
        A dataset with columns ``"audio"``
        (``datasets.Audio(sampling_rate=sampling_rate, decode=False)``; each
        value is ``{"bytes": <16-bit PCM mono WAV>, "path": None}``) and
        ``"label"`` (``ClassLabel`` with names like ``"220hz"``, see
        :func:`tone_label`).

    Raises:
        ValueError: repeated or out-of-range frequencies, or bad counts/lengths.
    """
    import numpy as np

    freqs = [float(f) for f in frequencies]
    names = _check_classes([tone_label(f) for f in freqs], "make_tones")
    _check_count(n_per_class, "n_per_class")
    _check_count(sampling_rate, "sampling_rate")
    bad = [f for f in freqs if not 0 < f * 1.03 < sampling_rate / 2]
    if bad:
        raise ValueError(
            f"make_tones: frequencies must lie in (0, {sampling_rate / 2 / 1.03:g}) Hz "
            f"for sampling_rate={sampling_rate}, got {bad}."
        )
    n_samples = round(duration * sampling_rate)
    if n_samples < 1:
        raise ValueError(f"make_tones: duration must be positive, got {duration}.")
    if noise < 0:
        raise ValueError(f"make_tones: noise must be >= 0, got {noise}.")

    rng = np.random.default_rng(seed)
    labels = _label_order(len(names), n_per_class, rng)
    t = np.arange(n_samples) / sampling_rate
    fade = np.ones(n_samples)
    n_fade = min(n_samples // 2, int(0.01 * sampling_rate))
    if n_fade:
        ramp = np.linspace(0.0, 1.0, n_fade)
        fade[:n_fade] = ramp
        fade[-n_fade:] = ramp[::-1]
    clips = []
    for lab in labels:
        f = freqs[lab] * (1.0 + rng.uniform(-0.03, 0.03))
        phase, phase2 = rng.uniform(0, 2 * np.pi, size=2)
        wave = np.sin(2 * np.pi * f * t + phase)
        if 2 * f < sampling_rate / 2:
            wave = wave + rng.uniform(0.0, 0.3) * np.sin(4 * np.pi * f * t + phase2)
        wave = rng.uniform(0.2, 0.8) * wave / np.max(np.abs(wave)) * fade
        if noise:
            wave = wave + rng.normal(0.0, noise, size=n_samples)
        clips.append({"bytes": _wav_bytes(wave, sampling_rate), "path": None})
    return _dataset({"audio": clips, "label": labels}, _audio_features(names, sampling_rate))


# --------------------------------------------------------------------------
# audio: spoken words (espeak-ng)
# --------------------------------------------------------------------------

#: Voices :func:`make_spoken_words` picks from by default: espeak-ng's own
#: English voices combined with its voice variants (no mbrola voices needed).
DEFAULT_VOICES: tuple[str, ...] = tuple(
    f"{base}+{variant}"
    for base in ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
    for variant in ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4")
)

_ESPEAK_HINT = "espeak-ng is needed for spoken words; install it with: apt-get install -y espeak-ng"


def espeak_available() -> bool:
    """Whether the ``espeak-ng`` program :func:`make_spoken_words` needs is on the PATH."""
    return shutil.which("espeak-ng") is not None


def _espeak(exe: str, workdir: str, index: int, plan: Mapping[str, Any]) -> tuple[np.ndarray, int]:
    """Say ``plan["word"]`` with espeak-ng into ``workdir/<index>.wav``; return (samples, rate)."""
    import soundfile as sf

    word, voice = plan["word"], plan["voice"]
    out = os.path.join(workdir, f"{index}.wav")
    cmd = [exe, "-w", out, "-v", voice, "-s", str(plan["speed"]), "-p", str(plan["pitch"])]
    cmd += ["-a", str(plan["amplitude"]), "--stdin"]  # the word goes through stdin: no option parsing
    proc = subprocess.run(cmd, input=word.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0 or not os.path.exists(out):
        raise RuntimeError(
            f"espeak-ng failed for word {word!r} with voice {voice!r} (exit code {proc.returncode}): "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    samples, rate = sf.read(out, dtype="float64", always_2d=False)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return samples, int(rate)


def make_spoken_words(
    words: Sequence[str],
    n_per_word: int,
    *,
    voices: Sequence[str] | None = None,
    sampling_rate: int = 16000,
    seed: int = 0,
) -> Dataset:
    """Spoken single words (or short phrases), one class per word, synthesised with espeak-ng.

    Every example draws a voice from ``voices``, a speed (120-230 words per
    minute), a pitch (15-85), an amplitude, 0-80 ms of leading and trailing
    silence and a little background noise, so the same word sounds different
    from example to example. espeak-ng runs in parallel threads (one
    subprocess per example, about 25-40 ms each): 100 clips take about 1 s
    on two cores. The espeak-ng output (22.05 kHz) is resampled to
    ``sampling_rate`` with soxr. Clip lengths differ by word and speed.

    Args:
        words: the words to say, in label-id order; they are also the label names.
        n_per_word: number of clips per word (> 0).
        voices: espeak-ng voice names (``espeak-ng --voices`` lists them;
            ``"en-us+f3"`` adds a variant). Default :data:`DEFAULT_VOICES`.
        sampling_rate: samples per second of the stored WAV files.
        seed: random seed; the same seed gives identical clips (with the same
            espeak-ng version).

    Returns:
        A dataset with columns ``"audio"``
        (``datasets.Audio(sampling_rate=sampling_rate, decode=False)``; each
        value is ``{"bytes": <16-bit PCM mono WAV>, "path": None}``) and
        ``"label"`` (``ClassLabel(names=words)``).

    Raises:
        RuntimeError: espeak-ng is not installed (the message says
            ``apt-get install -y espeak-ng``) or failed on an example.
        ValueError: empty or repeated words, empty ``voices``, bad counts.
    """
    import numpy as np
    import soxr

    names = _check_classes(words, "make_spoken_words")
    empty = [w for w in names if not w.strip()]
    if empty:
        raise ValueError("make_spoken_words: words must not be empty or blank.")
    _check_count(n_per_word, "n_per_word")
    _check_count(sampling_rate, "sampling_rate")
    voice_list = list(DEFAULT_VOICES if voices is None else voices)
    if not voice_list:
        raise ValueError("make_spoken_words: voices must not be empty (pass None for the defaults).")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(_ESPEAK_HINT)

    rng = np.random.default_rng(seed)
    labels = _label_order(len(names), n_per_word, rng)
    # draw every random choice up front, in order, so threads cannot change the result
    plans = []
    for lab in labels:
        plans.append(
            {
                "word": names[lab],
                "voice": voice_list[int(rng.integers(len(voice_list)))],
                "speed": int(rng.integers(120, 231)),
                "pitch": int(rng.integers(15, 86)),
                "amplitude": int(rng.integers(80, 161)),
                "lead": float(rng.uniform(0.0, 0.08)),
                "trail": float(rng.uniform(0.0, 0.08)),
                "noise": float(rng.uniform(0.001, 0.01)),
                "noise_seed": int(rng.integers(2**32)),
            }
        )

    workers = max(1, min(16, 2 * (os.cpu_count() or 1), len(plans)))
    with tempfile.TemporaryDirectory(prefix="tlzoo-espeak-") as workdir, ThreadPoolExecutor(max_workers=workers) as pool:
        raw = list(pool.map(lambda item: _espeak(exe, workdir, item[0], item[1]), enumerate(plans)))

    clips = []
    for plan, (samples, rate) in zip(plans, raw):
        if rate != sampling_rate:
            samples = soxr.resample(samples, rate, sampling_rate)
        samples = np.asarray(samples, dtype=np.float64)
        nz = np.flatnonzero(np.abs(samples) > 1e-3)  # trim espeak's own silence, then add our own
        if nz.size:
            samples = samples[nz[0] : nz[-1] + 1]
        lead = np.zeros(int(plan["lead"] * sampling_rate))
        trail = np.zeros(int(plan["trail"] * sampling_rate))
        samples = np.concatenate([lead, samples, trail])
        samples = samples + np.random.default_rng(plan["noise_seed"]).normal(0.0, plan["noise"], size=samples.shape)
        clips.append({"bytes": _wav_bytes(samples, sampling_rate), "path": None})
    logger.debug("make_spoken_words: synthesised %d clips with %d threads", len(clips), workers)
    return _dataset({"audio": clips, "label": labels}, _audio_features(names, sampling_rate))


# --------------------------------------------------------------------------
# text: sentences
# --------------------------------------------------------------------------

#: The default topics of :func:`make_sentences` and their keywords.
DEFAULT_SENTENCE_CLASSES: dict[str, tuple[str, ...]] = {
    "sports": (
        "football", "tennis", "match", "goal", "team", "coach", "player", "stadium",
        "referee", "league", "tournament", "race", "score", "basketball", "champion",
    ),
    "weather": (
        "rain", "snow", "sunshine", "storm", "wind", "cloud", "forecast", "thunder",
        "fog", "temperature", "heatwave", "drizzle", "frost", "hail", "humidity",
    ),
    "food": (
        "pizza", "pasta", "soup", "bread", "cheese", "salad", "dessert", "chocolate",
        "recipe", "kitchen", "restaurant", "breakfast", "sandwich", "noodles", "cake",
    ),
}  # fmt: skip

_ADJECTIVES: tuple[str, ...] = (
    "great", "terrible", "strange", "nice", "long", "short", "amazing", "boring",
    "quiet", "loud", "unusual", "perfect", "awful", "lovely", "surprising",
)  # fmt: skip
_TIMES: tuple[str, ...] = (
    "today", "yesterday", "last night", "this morning", "on sunday", "again",
    "all week", "this weekend", "at noon", "every day",
)  # fmt: skip
_TEMPLATES: tuple[str, ...] = (
    "i really liked the {k1} and the {k2} {time}",
    "the {k1} was {adj} {time} and so was the {k2}",
    "{time} we talked about the {k1} and the {k2}",
    "my friend said the {k1} is {adj} but the {k2} is better",
    "have you heard about the {k1} and the {k2} {time}",
    "there was a lot of talk about {k1} and {k2}",
    "nobody expected the {k1} to be so {adj} after the {k2}",
    "the news {time} was all about the {k1} and the {k2}",
    "we saw the {k1} and then the {k2} {time}",
    "is the {k1} {adj} or is it just the {k2}",
    "everyone keeps asking about the {k1} and the {k2}",
    "the {k2} was {adj} but i will remember the {k1}",
)
_DISTRACTOR = " but not the {d}"
_PUNCT = (".", ".", ".", "!", "?")

#: Filler words shared by every class of :func:`make_sentences`.
FILLER_WORDS: tuple[str, ...] = tuple(
    sorted(
        {w for tpl in _TEMPLATES + (_DISTRACTOR,) for w in tpl.replace("{", " {").split() if not w.startswith("{")}
        | {w for phrase in _ADJECTIVES + _TIMES for w in phrase.split()}
    )
)


def sentence_vocabulary(classes: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Every lower-case word :func:`make_sentences` can produce for *classes*.

    Sorted and without duplicates: the filler words plus every word of every
    keyword (default :data:`DEFAULT_SENTENCE_CLASSES`). Punctuation (``. ! ?``)
    is not included. Used to build tiny tokenizers (see
    :func:`tlzoo.testing.build_tiny_bert`).
    """
    topics = DEFAULT_SENTENCE_CLASSES if classes is None else classes
    words = set(FILLER_WORDS)
    for keywords in topics.values():
        for kw in keywords:
            words.update(str(kw).lower().split())
    return sorted(words)


def _sentences(n_per_class: int, topics: Mapping[str, Sequence[str]], seed: int) -> tuple[list[str], list[int]]:
    """The texts and label ids of :func:`make_sentences` (no ``datasets`` import)."""
    import numpy as np

    names = list(topics)
    rng = np.random.default_rng(seed)
    labels = _label_order(len(names), n_per_class, rng)
    texts = []
    for lab in labels:
        keywords = list(topics[names[lab]])
        k1, k2 = (keywords[int(i)] for i in rng.integers(len(keywords), size=2))
        tpl = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        text = tpl.format(
            k1=k1,
            k2=k2,
            adj=_ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))],
            time=_TIMES[int(rng.integers(len(_TIMES)))],
        )
        if len(names) > 1 and rng.random() < 0.2:
            other = names[(lab + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            text += _DISTRACTOR.format(d=topics[other][int(rng.integers(len(topics[other])))])
        text = text[0].upper() + text[1:] + _PUNCT[int(rng.integers(len(_PUNCT)))]
        texts.append(text)
    return texts, labels


def make_sentences(
    n_per_class: int,
    classes: Mapping[str, Sequence[str]] | None = None,
    *,
    seed: int = 0,
) -> Dataset:
    """Short English-like sentences, one class per topic.

    Each sentence fills a random template (shared filler words, adjectives,
    time phrases) with two keywords of its class; one in five also ends with
    ``"but not the <keyword of another class>"``, so a single keyword does not
    always give the class away, but the majority of keywords does. The first
    letter is capitalised and a ``.``, ``!`` or ``?`` is appended.

    Args:
        n_per_class: number of sentences per class (> 0).
        classes: mapping of class name to its keywords, in label-id order
            (default :data:`DEFAULT_SENTENCE_CLASSES`: sports, weather, food).
            Every class needs at least one keyword.
        seed: random seed; the same seed gives identical sentences.

    Returns:
        A dataset with columns ``"text"`` (``Value("string")``) and
        ``"label"`` (``ClassLabel(names=list(classes))``).

    Raises:
        ValueError: no classes, a class without keywords, or ``n_per_class < 1``.
    """
    from datasets import ClassLabel, Features, Value

    source = DEFAULT_SENTENCE_CLASSES if classes is None else classes
    if not isinstance(source, Mapping):
        raise ValueError(f"make_sentences: classes must map class names to keywords, got {type(source).__name__}.")
    for name, keywords in source.items():
        if isinstance(keywords, str):
            raise ValueError(
                f"make_sentences: keywords of class {name!r} must be a sequence of strings, not one string."
            )
        if not keywords:
            raise ValueError(f"make_sentences: class {name!r} has no keywords.")
    names = _check_classes(list(source), "make_sentences")
    topics = {name: [str(w) for w in kws] for name, kws in zip(names, source.values())}
    _check_count(n_per_class, "n_per_class")

    texts, labels = _sentences(n_per_class, topics, seed)
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    return _dataset({"text": texts, "label": labels}, features)
