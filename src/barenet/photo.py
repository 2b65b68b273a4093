"""Find the digit or garment in a real photo, the way a person would.

A phone photo is not a scan: the paper is grey and lit unevenly, the sensor adds noise,
the JPEG adds blocks, lines and shadows cross the page. Counting every pixel darker than
the paper as ink keeps the whole page, and the digit ends up a few pixels tall. So
``find_ink`` does what a person does:

1. fit the paper's brightness as a smooth surface (a plane from the picture's border,
   refined as a quadratic over every pixel that looks like paper) and subtract it, which
   removes uneven light and grey paper alike;
2. decide the polarity from the tails (ink is the side that departs furthest), so ink
   becomes bright on black;
3. measure the sensor noise, smooth it away (Gaussian), and threshold (Otsu, never below
   five times the noise);
4. drop ruled lines (horizontal runs across the whole page) and keep the main connected
   component(s), so specks, page edges and stray marks are left out.

What remains is returned as bright ink on black, ready for the crop, 20x20 fit and centring
of ``barenet.preprocess``. ``split_digits`` cuts a row of digits ("2026") into one picture
per digit. A picture with no object (blank, only noise, only a gradient) raises
``NoObjectError``.

SciPy and Pillow are imported here only (the ``image`` extra), when a picture is read.
"""

from __future__ import annotations

import itertools

import numpy as np

from barenet.errors import ArgumentError
from barenet.optional import require

__all__ = ["WORK_SIDE", "NoObjectError", "find_ink", "split_digits"]

WORK_SIDE = 320  #: pictures are reduced (area averaging) to at most this many pixels a side
FIT_SIDE = 64  #: the paper is fitted on a copy reduced to at most this many pixels a side
CONTRAST = 0.05  #: ink must differ from the paper by at least this (of full scale) ...
SNR = 6.0  #: ... and by this many times the noise left after smoothing
KEEP = 0.15  #: components at least this fraction of the largest one's ink are kept
FAINT = 0.08  #: ink this bright (of the brightest) is kept where it joins a kept stroke


class NoObjectError(ArgumentError):
    """The picture holds nothing to recognise: blank, only noise, or only paper."""


def _shrink(a: np.ndarray) -> np.ndarray:
    """``a`` reduced by area averaging so its longer side is at most ``WORK_SIDE``."""
    h, w = a.shape
    if max(h, w) <= WORK_SIDE:
        return a
    from PIL import Image

    scale = WORK_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(a.astype(np.float32), "F").resize(size, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64)


def _design(y: np.ndarray, x: np.ndarray, degree: int) -> np.ndarray:
    """Columns of the polynomial surface of ``degree`` (0, 1 or 2) in ``y`` and ``x``."""
    terms = [np.ones_like(x)]
    if degree >= 1:
        terms += [x, y]
    if degree == 2:
        terms += [x * x, x * y, y * y]
    return np.stack(terms, axis=1)


def _robust_sigma(r: np.ndarray) -> float:
    """Standard deviation of ``r`` estimated from its median absolute deviation."""
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) if r.size else 0.0


def _paper(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's brightness under every pixel, and which pixels are paper.

    A plane is fitted to the border ring (ink that touches the border is left out as an
    outlier), then a quadratic to every pixel within three noise deviations of it, on a
    copy reduced to at most ``FIT_SIDE`` a side (a smooth surface needs no more)."""
    h, w = a.shape
    step = max(1, -(-max(h, w) // FIT_SIDE))
    small = a[: h - h % step or h, : w - w % step or w]
    if step > 1:
        sh, sw = small.shape[0] // step, small.shape[1] // step
        small = small.reshape(sh, step, sw, step).mean(axis=(1, 3))
    sh, sw = small.shape
    grid = np.mgrid[0:sh, 0:sw]
    y = (grid[0].ravel() + 0.5) * step / h - 0.5
    x = (grid[1].ravel() + 0.5) * step / w - 0.5
    values = small.ravel()
    band = max(1, round(0.04 * min(sh, sw)))
    ring = np.zeros((sh, sw), dtype=bool)
    ring[:band], ring[-band:], ring[:, :band], ring[:, -band:] = True, True, True, True
    ring = ring.ravel()
    use, coef, degree = ring, np.array([np.median(values[ring])]), 0
    steps = ((0, ring), (1, ring), (1, ring), (2, True), (2, True), (2, True))
    for degree_now, within in steps:
        if degree_now == 0:  # the median first: lstsq would be pulled by ink on the border
            fit = np.array([np.median(values[use])])
        else:
            fit, *_ = np.linalg.lstsq(_design(y[use], x[use], degree_now), values[use], rcond=None)
        residual = values - _design(y, x, degree_now) @ fit
        sigma = max(_robust_sigma(residual[use]), 1.0 / 255)
        paper = within & (np.abs(residual) <= 3 * sigma)
        if paper.sum() < 12:
            break
        use, coef, degree = paper, fit, degree_now
    full = np.mgrid[0:h, 0:w]
    yy = (full[0].ravel() + 0.5) / h - 0.5
    xx = (full[1].ravel() + 0.5) / w - 0.5
    paper = np.ones((h, w), dtype=bool)
    paper[: sh * step, : sw * step] = np.kron(use.reshape(sh, sw), np.ones((step, step), bool))
    return (_design(yy, xx, degree) @ coef).reshape(h, w), paper


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of ``values`` (256 bins between their extremes); 0 when they are
    all alike (nothing to split)."""
    if np.ptp(values) < 1e-9:
        return 0.0
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    below, above = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * below - mass[:-1] * total) ** 2 / (below * above)
    between = np.where((below > 0) & (above > 0), between, -1.0)
    return float(edges[1:][int(np.argmax(between))])


def _ruled_lines(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` on horizontal runs reaching from near the left edge of the page
    to near its right edge (ruled paper), which no digit or garment does. Found on a copy
    reduced four times (a long structuring element is slow at full size)."""
    from scipy import ndimage

    h, w = mask.shape
    if w < 40:
        return np.zeros_like(mask)
    small = ndimage.maximum_filter(mask, size=4)[::4, ::4]
    width = small.shape[1]
    runs = ndimage.binary_opening(small, structure=np.ones((1, int(0.6 * width)), dtype=bool))
    labels, _ = ndimage.label(runs)
    lines = np.zeros_like(small)
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is not None and sl[1].start <= 0.08 * width and sl[1].stop >= 0.92 * width:
            lines |= labels == k
    if not lines.any():
        return np.zeros_like(mask)
    rows = np.repeat(lines.any(axis=1), 4)[:h]
    band = np.zeros_like(mask)
    band[np.flatnonzero(rows)] = True
    # within the line's rows, only thin horizontal strokes are line: keep what is taller
    tall = ndimage.binary_opening(mask, structure=np.ones((5, 1), dtype=bool))
    return band & ~tall & mask


def find_ink(image: np.ndarray, *, fill: bool = False, what: str = "digit") -> np.ndarray:
    """The object of a picture as bright ink on black (float, 0 outside the object).

    ``image`` is 2-D with values in [0, 1], either polarity. ``fill`` fills the holes of
    the kept components (a garment's light print is part of the garment). The result may
    be smaller than ``image`` (reduced to ``WORK_SIDE``).

    Raises
    ------
    NoObjectError
        When nothing stands out from the paper by ``CONTRAST`` and by ``SNR`` times the
        noise ("no digit found"; ``what`` names the object in the message).
    """
    ndimage = require("scipy.ndimage", "image", "finding the object in a picture")
    a = _shrink(np.asarray(image, dtype=np.float64))
    surface, paper = _paper(a)
    r = a - surface
    low, high = np.percentile(r, [0.5, 99.5])
    if -low > high:  # dark ink on light paper: make the ink bright
        r = -r
    noise = _robust_sigma(r[paper])
    short = min(r.shape)
    smooth = ndimage.gaussian_filter(r, sigma=short / 250) if noise > 1.5 / 255 else r
    floor = _robust_sigma(smooth[paper])
    peak = float(np.percentile(smooth, 99.9)) if smooth.size > 1000 else float(smooth.max())
    if peak < CONTRAST or peak < SNR * floor:
        raise NoObjectError(f"no {what} found: the picture is blank or only noise")
    if fill:  # a garment: everything above the noise, faint fabric included
        mask = smooth > max(5 * floor, 0.05 * peak)
    else:
        above = smooth[smooth > 2 * floor]
        level = _otsu(above) if above.size > 8 else 0.0
        mask = smooth > max(level, 5 * floor, 0.25 * peak)
    mask &= ~_ruled_lines(mask)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        raise NoObjectError(f"no {what} found: the picture is blank or only noise")
    ink = ndimage.sum_labels(np.clip(smooth, 0, None), labels, index=np.arange(1, n + 1))
    share = KEEP / 5 if fill else KEEP
    heights = np.array([b[0].stop - b[0].start for b in ndimage.find_objects(labels)])
    # big enough in ink, or tall and not a mere hair (a thin "1" beside a bold "7")
    big = (ink >= share * ink.max()) | (
        (heights >= 0.4 * heights.max()) & (ink >= 0.01 * ink.max())
    )
    kept = np.isin(labels, 1 + np.flatnonzero(big))
    if fill:
        kept = ndimage.binary_fill_holes(kept)
    else:  # hysteresis: faint strokes joined to the kept ink belong to it (a 9's thin loop)
        faint = smooth > max(5 * floor, FAINT * peak)
        faint &= ~_ruled_lines(faint)
        kept = ndimage.binary_propagation(kept, mask=faint | kept, structure=np.ones((3, 3)))
    grow = max(1, round(short / 100))
    kept = ndimage.binary_dilation(kept, iterations=grow)
    # rounded so the fit's last bits (which depend on the BLAS kernels) change nothing
    return np.where(kept, np.clip(np.round(smooth, 9), 0.0, None), 0.0)


def split_digits(ink: np.ndarray) -> list[np.ndarray]:
    """Cut bright ink on black (``find_ink``'s result) into one picture per digit, left to
    right. Columns with no ink separate digits; pieces whose columns overlap are one digit
    (a "5" written in two strokes); a piece under half as tall as the tallest (a stray mark)
    stays in the slice of its neighbour.

    A single digit gives a one-element list.
    """
    from scipy import ndimage

    labels, _ = ndimage.label(ink > 0, structure=np.ones((3, 3)))
    boxes = [b for b in ndimage.find_objects(labels) if b is not None]
    if len(boxes) <= 1:
        return [ink]
    # merge components whose columns overlap into one group (a "5" in two strokes)
    spans = sorted([b[1].start, b[1].stop, b[0].start, b[0].stop] for b in boxes)
    groups: list[list[int]] = []
    for x0, x1, y0, y1 in spans:
        if groups and x0 < groups[-1][1] - 0.2 * min(x1 - x0, groups[-1][1] - groups[-1][0]):
            g = groups[-1]
            g[1], g[2], g[3] = max(g[1], x1), min(g[2], y0), max(g[3], y1)
        else:
            groups.append([x0, x1, y0, y1])
    tallest = max(g[3] - g[2] for g in groups)
    digits = [g for g in groups if g[3] - g[2] >= 0.45 * tallest]
    if len(digits) <= 1:
        return [ink]
    cuts = [0] + [(a[1] + b[0]) // 2 for a, b in itertools.pairwise(digits)]
    cuts.append(ink.shape[1])
    return [ink[:, lo:hi] for lo, hi in itertools.pairwise(cuts)]
