"""Dataset images rendered as the photos people take of their own handwriting and clothes.

A 28x28 image (bright ink on black, as in MNIST) is enlarged onto a sheet of paper that is
never pure white, turned a little, lit unevenly, blurred, given sensor noise and saved as a
JPEG at quality 70: the bytes a phone would hand to ``barenet predict``. Every random
choice comes from one seeded generator, so a seed gives the same photo every time.

``LEVELS`` names the corruption levels, from ``clean`` (only enlarged, grey paper and
JPEG) to ``harsh``; ``shadow``, ``ruled``, ``colour`` and ``inverted`` add a shadow across
the page, ruled paper lines, a coloured sheet and light ink on a dark board to the
``phone`` level.

Pillow and SciPy are imported when a photo is rendered (the ``image`` extra).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from barenet.errors import ArgumentError

__all__ = ["LEVELS", "Level", "photograph", "photograph_number"]


@dataclass(frozen=True)
class Level:
    """How hard a photo is: sensor noise (sigma, of 255), the lighting gradient across the
    page (grey levels lost from the bright side to the dark side), Gaussian blur radius in
    pixels, the largest rotation in degrees, and the extras."""

    noise: float
    gradient: float
    blur: float
    rotation: float
    shadow: bool = False
    ruled: bool = False
    colour: bool = False
    inverted: bool = False


_PHONE = Level(noise=10, gradient=90, blur=1.5, rotation=10)
LEVELS: dict[str, Level] = {
    "clean": Level(noise=0, gradient=0, blur=0, rotation=0),
    "mild": Level(noise=4, gradient=40, blur=1, rotation=5),
    "phone": _PHONE,
    "harsh": Level(noise=16, gradient=140, blur=2, rotation=15),
    "shadow": replace(_PHONE, shadow=True),
    "ruled": replace(_PHONE, ruled=True),
    "colour": replace(_PHONE, colour=True),
    "inverted": replace(_PHONE, inverted=True),
}
QUALITY = 70  #: JPEG quality of every photo


def _level(level: str | Level) -> Level:
    if isinstance(level, Level):
        return level
    if level not in LEVELS:
        raise ArgumentError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    return LEVELS[level]


def _ink_page(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage (0..1) enlarged 4-8 times and set on a page with a margin around it."""
    from PIL import Image

    h, w = ink.shape
    zoom = rng.uniform(4.0, 8.0)
    size = (max(1, round(w * zoom)), max(1, round(h * zoom)))
    big = Image.fromarray(np.uint8(np.clip(ink, 0, 1) * 255)).resize(size, Image.Resampling.BICUBIC)
    margin = [round(rng.uniform(0.15, 0.45) * min(size)) for _ in range(4)]
    page = np.zeros((size[1] + margin[0] + margin[1], size[0] + margin[2] + margin[3]))
    page[margin[0] : margin[0] + size[1], margin[2] : margin[2] + size[0]] = (
        np.asarray(big, np.float64) / 255
    )
    return page


def _render(page: np.ndarray, level: Level, rng: np.random.Generator) -> bytes:
    """The JPEG bytes of ``page`` (ink coverage 0..1) photographed at ``level``."""
    from PIL import Image
    from scipy import ndimage

    angle = rng.uniform(-level.rotation, level.rotation)
    turned = Image.fromarray(np.float32(page), "F").rotate(
        angle, Image.Resampling.BICUBIC, fillcolor=0
    )
    ink = np.clip(np.asarray(turned, np.float64), 0.0, 1.0)
    h, w = ink.shape
    if level.ruled:  # faint lines every ~1/6 of the page, drawn under the ink
        step = rng.uniform(0.12, 0.2) * h
        rows = np.arange(rng.uniform(0, step), h, step).astype(int)
        lines = np.zeros_like(ink)
        lines[np.clip(rows, 0, h - 1)] = rng.uniform(0.25, 0.4)
        ink = np.maximum(ink, lines)
    if level.inverted:  # chalk on a dark board
        paper, pen = rng.uniform(30, 70), rng.uniform(190, 235)
    else:
        paper, pen = rng.uniform(195, 235), rng.uniform(15, 60)
    grey = paper + (pen - paper) * ink
    if level.colour:  # tinted paper and blue ink, each channel lit alike
        tint = rng.uniform(0.6, 1.0, size=3)
        tint[rng.integers(3)] = 1.0
        blue = np.array([0.4, 0.5, 1.0]) if not level.inverted else np.ones(3)
        paper_rgb, pen_rgb = paper * tint, pen * blue
        rgb = paper_rgb + (pen_rgb - paper_rgb) * ink[..., None]
    else:
        rgb = grey[..., None]
    y, x = np.mgrid[0:h, 0:w]
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(theta) * x / w + np.sin(theta) * y / h) * 1.0
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-9)  # 0 bright .. 1 dark
    light = 1.0 - (level.gradient / 255.0) * ramp
    if level.shadow:  # a soft-edged shadow over one side, 35-55% darker
        cut = rng.uniform(0.3, 0.7)
        edge = rng.uniform(0.02, 0.08)
        side = np.cos(theta + np.pi / 2) * x / w + np.sin(theta + np.pi / 2) * y / h
        side = (side - side.min()) / max(side.max() - side.min(), 1e-9)
        light = light * (1.0 - rng.uniform(0.35, 0.55) / (1.0 + np.exp((side - cut) / edge)))
    rgb = rgb * light[..., None]
    if level.blur > 0:
        rgb = ndimage.gaussian_filter(rgb, sigma=(level.blur, level.blur, 0))
    out = rgb
    out = out + rng.normal(0.0, level.noise, size=out.shape[:2])[..., None]
    pixels = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=QUALITY)
    return buffer.getvalue()


def photograph(image: Any, level: str | Level = "phone", seed: int = 0) -> bytes:
    """A JPEG photo of one 28x28 dataset image (bright on black) at ``level``; the same
    ``seed`` gives the same bytes."""
    ink = _unit(image)
    rng = np.random.default_rng(seed)
    return _render(_ink_page(ink, rng), _level(level), rng)


def photograph_number(images: Any, level: str | Level = "mild", seed: int = 0) -> bytes:
    """A JPEG photo of several 28x28 digit images written side by side, as a number."""
    digits = [_unit(d) for d in images]
    if not digits:
        raise ArgumentError("images must hold at least one digit")
    rng = np.random.default_rng(seed)
    parts = []
    for d in digits:
        cols = np.flatnonzero(d.max(axis=0) > 0.1)
        trimmed = d[:, cols[0] : cols[-1] + 1] if len(cols) else d
        shift = int(rng.integers(-2, 3))
        parts.append(np.roll(trimmed, shift, axis=0))
        parts.append(np.zeros((28, int(rng.integers(3, 7)))))
    row = np.concatenate(parts[:-1], axis=1)
    return _render(_ink_page(row, rng), _level(level), rng)


def _unit(image: Any) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or min(a.shape) < 1:
        raise ArgumentError(f"image must be a 2-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ArgumentError("image contains NaN or infinite values")
    return np.clip(a / 255.0 if a.max() > 1.0 else a, 0.0, 1.0)
