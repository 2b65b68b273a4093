"""On-the-fly image augmentation: random shifts, small rotations, mirror images and
erased rectangles.

``ImageAugment`` is an ``augment`` function for ``Sequential.fit``: every training batch
is moved, turned and (optionally) mirrored at random, with the epoch's seeded generator,
so a run is repeatable::

    model.fit(x, y, epochs=10, seed=0, augment=bn.ImageAugment(shift=2, rotation=10))

All images of a batch are transformed at once (``warp``): for every output pixel the
source position is computed, and the value there read by bilinear interpolation from
the four nearest pixels; positions outside the image read zeros (the background). Whole-
pixel shifts alone (no rotation, no mirror) take ``shift_images``, which slices instead and
gives the same images. ``random_erase`` blanks a random rectangle of some images (random
erasing, Zhong et al. 2017), after the other transforms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from barenet.errors import ArgumentError, check_int, check_range

__all__ = ["ImageAugment", "random_erase", "shift_images", "warp"]


def warp(
    x: np.ndarray,
    angles: np.ndarray,
    shifts: np.ndarray,
    flips: np.ndarray | None = None,
) -> np.ndarray:
    """Rotate, shift and mirror each image of a batch.

    Parameters
    ----------
    x : array (N, H, W) or (N, C, H, W)
    angles : array (N,)
        Rotation about the image centre in degrees, counter-clockwise as displayed (row
        0 at the top): 90 gives ``np.rot90(image)``.
    shifts : array (N, 2)
        ``(down, right)`` displacement in pixels, applied after the rotation.
    flips : bool array (N,), optional
        Mirror left-right first where True.

    Returns
    -------
    array like ``x`` (same shape and dtype; integer images come back as float32).
    """
    x, dtype = _as_images(x)
    n, (h, w) = len(x), x.shape[-2:]
    angles, shifts = np.asarray(angles, dtype=np.float64), np.asarray(shifts, dtype=np.float64)
    if angles.shape != (n,) or shifts.shape != (n, 2):
        raise ArgumentError(
            f"angles must have shape ({n},) and shifts ({n}, 2), got {angles.shape} and "
            f"{shifts.shape}"
        )
    # Destination pixel -> source position: undo the shift, then the rotation, then the flip.
    theta = np.deg2rad(angles).astype(dtype)[:, None, None]
    cos, sin = np.cos(theta), np.sin(theta)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    gy = np.arange(h, dtype=dtype)[None, :, None] - dtype.type(cy)
    gx = np.arange(w, dtype=dtype)[None, None, :] - dtype.type(cx)
    gy = gy - shifts[:, 0, None, None].astype(dtype)
    gx = gx - shifts[:, 1, None, None].astype(dtype)
    src_y = cos * gy + sin * gx
    src_x = cos * gx - sin * gy
    if flips is not None:
        src_x = np.where(np.asarray(flips, dtype=bool)[:, None, None], -src_x, src_x)
    src_y += dtype.type(cy)
    src_x += dtype.type(cx)

    # Images as (N * C, H + 2, W + 2) with a border of zeros; a source position outside
    # the image is clipped onto that border, so it reads 0.
    channels = 1 if x.ndim == 3 else x.shape[1]
    padded = np.zeros((n * channels, h + 2, w + 2), dtype=dtype)
    padded[:, 1:-1, 1:-1] = x.reshape(n * channels, h, w)
    y0, x0 = np.floor(src_y), np.floor(src_x)
    wy, wx = src_y - y0, src_x - x0
    rows0 = np.clip(y0, -1, h).astype(np.intp) + 1
    cols0 = np.clip(x0, -1, w).astype(np.intp) + 1
    rows1 = np.clip(y0 + 1, -1, h).astype(np.intp) + 1
    cols1 = np.clip(x0 + 1, -1, w).astype(np.intp) + 1
    if channels > 1:
        rows0, rows1, cols0, cols1, wy, wx = (
            np.repeat(a, channels, axis=0) for a in (rows0, rows1, cols0, cols1, wy, wx)
        )
    img = np.arange(n * channels)[:, None, None]
    top = padded[img, rows0, cols0] * (1 - wx) + padded[img, rows0, cols1] * wx
    bottom = padded[img, rows1, cols0] * (1 - wx) + padded[img, rows1, cols1] * wx
    out = top * (1 - wy) + bottom * wy
    return out.reshape(x.shape).astype(dtype, copy=False)


def _as_images(x: np.ndarray) -> tuple[np.ndarray, np.dtype[Any]]:
    x = np.asarray(x)
    if x.ndim not in (3, 4) or len(x) == 0:
        raise ArgumentError(f"x must be images (N, H, W) or (N, C, H, W), got shape {x.shape}")
    return x, x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)


def shift_images(x: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Move each image of a batch by whole pixels, zeros filling the uncovered edge:
    ``warp(x, 0, shifts)`` for integer ``shifts`` (N, 2) of ``(down, right)``, by one slice
    of a zero-padded copy per distinct shift instead of interpolating every pixel."""
    x, dtype = _as_images(x)
    shifts = np.asarray(shifts)
    if shifts.shape != (len(x), 2) or shifts.dtype.kind not in "iu":
        raise ArgumentError(f"shifts must be integers of shape ({len(x)}, 2), got {shifts!r}")
    (h, w), p = x.shape[-2:], int(np.abs(shifts).max())
    padded = np.pad(x.astype(dtype, copy=False), [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])
    out = np.empty(x.shape, dtype)
    top, left = p - shifts[:, 0], p - shifts[:, 1]
    keys = top * (2 * p + 1) + left
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        t, s = int(top[idx[0]]), int(left[idx[0]])
        out[idx] = padded[idx, ..., t : t + h, s : s + w]
    return out


def random_erase(
    x: np.ndarray,
    p: float,
    rng: np.random.Generator,
    *,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
) -> np.ndarray:
    """Random erasing (Zhong et al. 2017), as torchvision's ``RandomErasing`` does it: with
    probability ``p`` per image, set a random rectangle to ``value`` (0, the background of
    images scaled to [0, 1]), in every channel.

    The rectangle's area is a fraction of the image drawn from ``scale``, its aspect ratio
    (height / width) log-uniform in ``ratio``; of 10 such draws the first that fits inside
    the image is used, and an image where none fits is left as it was. All images are
    drawn and erased at once; the same ``rng`` state gives the same result.

    Parameters
    ----------
    x : array (N, H, W) or (N, C, H, W)
    p : float in [0, 1]
    rng : numpy Generator
    scale : (low, high), fractions of the image's area in (0, 1]
    ratio : (low, high), aspect ratios > 0

    Returns
    -------
    A new array with the shape and dtype of ``x``; ``x`` is left as it was.
    """
    x = _as_images(x)[0]
    check_range("p", p, "[0, 1]")
    if not (0 < scale[0] <= scale[1] <= 1) or not (0 < ratio[0] <= ratio[1] < np.inf):
        raise ArgumentError(
            f"scale must be 0 < low <= high <= 1 and ratio 0 < low <= high, got {scale!r} "
            f"and {ratio!r}"
        )
    n, (h, w), tries = len(x), x.shape[-2:], 10
    erased = rng.random(n) < p
    area = h * w * rng.uniform(scale[0], scale[1], (n, tries))
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]), (n, tries)))
    heights = np.rint(np.sqrt(area * aspect)).astype(np.intp)
    widths = np.rint(np.sqrt(area / aspect)).astype(np.intp)
    fits = (heights < h) & (widths < w)
    first, rows = fits.argmax(axis=1), np.arange(n)  # the first draw that fits
    height = np.where(erased & fits.any(axis=1), heights[rows, first], 0)
    width = widths[rows, first]
    top = (rng.random(n) * (h - height + 1)).astype(np.intp)  # uniform in [0, h - height]
    left = (rng.random(n) * (w - width + 1)).astype(np.intp)
    r = np.arange(h)[None, :, None] - top[:, None, None]
    c = np.arange(w)[None, None, :] - left[:, None, None]
    inside = (r >= 0) & (r < height[:, None, None]) & (c >= 0) & (c < width[:, None, None])
    if x.ndim == 4:
        inside = inside[:, None]
    return np.where(inside, np.asarray(value, dtype=x.dtype), x)


class ImageAugment:
    """Random shifts, rotations and mirror images of image batches, for
    ``Sequential.fit(augment=...)``.

    Parameters
    ----------
    shift : int
        Each image moves by a whole number of pixels drawn uniformly from
        ``[-shift, shift]``, down and right independently.
    rotation : float
        Each image turns by an angle drawn uniformly from ``[-rotation, rotation]``
        degrees (0 to 180).
    flip : bool
        Mirror each image left-right with probability 1/2 (right for clothes, wrong for
        digits).
    erase : float in [0, 1]
        Probability of blanking a random rectangle of each image (``random_erase``),
        after the other transforms (default 0: never).

    ``augment(x, rng)`` returns a new batch; ``x`` is left as it was.
    """

    def __init__(
        self, shift: int = 2, rotation: float = 10.0, *, flip: bool = False, erase: float = 0.0
    ) -> None:
        self.shift = check_int("shift", shift, minimum=0)
        self.rotation = check_range("rotation", rotation, "[0, 180]")  # degrees
        if not isinstance(flip, bool):
            raise ArgumentError(f"flip must be True or False, got {flip!r}")
        self.flip = flip
        self.erase = check_range("erase", erase, "[0, 1]")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        angles = rng.uniform(-self.rotation, self.rotation, n) if self.rotation else np.zeros(n)
        shifts = rng.integers(-self.shift, self.shift + 1, (n, 2))
        flips = rng.random(n) < 0.5 if self.flip else None
        if not self.rotation and flips is None:
            out = shift_images(x, shifts)  # the same images as warp, by slicing
        else:
            out = warp(x, angles, shifts, flips)
        return random_erase(out, self.erase, rng) if self.erase else out

    def get_config(self) -> dict[str, Any]:
        config = {"shift": self.shift, "rotation": self.rotation, "flip": self.flip}
        return {**config, "erase": self.erase} if self.erase else config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"ImageAugment({args})"
