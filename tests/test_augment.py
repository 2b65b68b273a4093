"""ImageAugment, warp and random_erase: exact shifts, rotations, mirrors and erased
rectangles; seeded; usable by fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import barenet as bn
from barenet import augment
from barenet.augment import ImageAugment, random_erase, shift_images, warp
from barenet.train import random_shift

RNG = np.random.default_rng(0)


def test_whole_pixel_shifts_move_the_image_and_fill_zeros():
    x = RNG.random((3, 5, 6), dtype=np.float32)
    out = warp(x, np.zeros(3), np.array([[1, 0], [0, -2], [2, 1]]))
    expected = np.zeros_like(x)
    expected[0, 1:] = x[0, :-1]
    expected[1, :, :4] = x[1, :, 2:]
    expected[2, 2:, 1:] = x[2, :-2, :-1]
    np.testing.assert_array_equal(out, expected)


def test_quarter_turn_is_rot90_and_half_pixel_shift_averages():
    x = RNG.random((2, 5, 5))
    np.testing.assert_allclose(
        warp(x, np.full(2, 90.0), np.zeros((2, 2))), np.rot90(x, axes=(1, 2)), atol=1e-6
    )
    half = warp(x, np.zeros(2), np.array([[0.0, 0.5], [0.0, 0.5]]))
    np.testing.assert_allclose(half[:, :, 1:], (x[:, :, 1:] + x[:, :, :-1]) / 2, atol=1e-12)


def test_mirror_and_channels():
    x = RNG.random((2, 3, 4, 5), dtype=np.float32)
    out = warp(x, np.zeros(2), np.zeros((2, 2)), np.array([True, False]))
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], x[0, :, :, ::-1])
    np.testing.assert_array_equal(out[1], x[1])


def test_small_rotation_keeps_the_centre_and_most_of_the_ink():
    x = np.zeros((1, 9, 9), dtype=np.float32)
    x[0, 2:7, 4] = 1.0  # a vertical bar through the centre
    out = warp(x, np.array([10.0]), np.zeros((1, 2)))
    assert out[0, 4, 4] == pytest.approx(1.0)
    assert out.sum() == pytest.approx(x.sum(), rel=0.1)
    assert not np.allclose(out, x)


def test_augment_is_seeded_and_bounded():
    x = np.zeros((64, 11, 11), dtype=np.float32)
    x[:, 5, 5] = 1.0
    augment = ImageAugment(shift=2, rotation=0)
    a = augment(x, np.random.default_rng(7))
    np.testing.assert_array_equal(a, augment(x, np.random.default_rng(7)))
    assert not np.array_equal(a, augment(x, np.random.default_rng(8)))
    rows, cols = np.nonzero(a.reshape(64, -1) == 1.0)
    assert len(rows) == 64  # every image keeps its single pixel, moved by whole pixels
    r, c = np.divmod(cols, 11)
    assert np.all(np.abs(r - 5) <= 2) and np.all(np.abs(c - 5) <= 2)
    assert len(set(zip(r.tolist(), c.tolist(), strict=True))) > 10
    assert np.array_equal(x[:, 5, 5], np.ones(64))  # the input is left as it was


def test_augment_works_as_fit_hook():
    x = RNG.random((40, 8, 8), dtype=np.float32)
    y = (x[:, :, :4].sum(axis=(1, 2)) > x[:, :, 4:].sum(axis=(1, 2))).astype(np.int64)
    model = bn.Sequential([bn.Flatten(), bn.Dense(64, 2)], seed=0)
    model.compile("cross_entropy", bn.Adam(lr=1e-2))
    seen = []

    def recording(xb, rng):
        out = ImageAugment(1, 5.0, flip=True)(xb, rng)
        seen.append(out)
        return out

    model.fit(x, y, epochs=1, batch_size=20, seed=0, verbose=0, augment=recording)
    assert len(seen) == 2 and seen[0].shape == (20, 8, 8) and seen[0].dtype == np.float32
    assert repr(ImageAugment(1, 5.0, flip=True)) == "ImageAugment(shift=1, rotation=5.0, flip=True)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shift": -1}, "shift must be an integer >= 0, got -1"),
        ({"shift": 1.5}, "shift must be an integer >= 0, got 1.5"),
        ({"rotation": 200}, r"rotation must be a number in \[0, 180\], got 200"),
        ({"flip": 1}, "flip must be True or False, got 1"),
        ({"erase": 1.5}, r"erase must be a number in \[0, 1\], got 1.5"),
        ({"erase": float("nan")}, "erase must be a number"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(bn.ArgumentError, match=message):
        ImageAugment(**kwargs)


def test_bad_batches():
    with pytest.raises(bn.ArgumentError, match=r"x must be images \(N, H, W\) or \(N, C, H, W\)"):
        warp(np.zeros((3, 4)), np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(bn.ArgumentError, match=r"angles must have shape \(2,\)"):
        warp(np.zeros((2, 4, 4)), np.zeros(3), np.zeros((2, 2)))


@pytest.mark.parametrize("shape", [(40, 9, 11), (12, 3, 7, 6)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_slicing_shifts_give_warps_images(shape, dtype):
    x = (RNG.random(shape) * 255).astype(dtype)
    shifts = RNG.integers(-6, 7, (shape[0], 2))  # some beyond the image's side
    out = shift_images(x, shifts)
    expected = warp(x, np.zeros(shape[0]), shifts)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)


def test_shift_only_augment_slices(monkeypatch):
    x = RNG.random((64, 28, 28), dtype=np.float32)
    expected = warp(x, np.zeros(64), np.random.default_rng(5).integers(-2, 3, (64, 2)))
    monkeypatch.setattr(augment, "warp", None)  # shifts alone never interpolate
    np.testing.assert_array_equal(ImageAugment(2, 0)(x, np.random.default_rng(5)), expected)


def test_train_shift_draws_as_it_always_has(monkeypatch):
    """barenet train --shift draws every vertical offset, then every horizontal one; the
    commands of the shipped weights repeat them only with that order (positions below were
    computed by the original implementation)."""
    monkeypatch.setattr(augment, "warp", None)  # shifts alone never interpolate
    x = np.zeros((6, 7, 7), np.float32)
    x[:, 3, 3] = 1
    out = random_shift(2)(x, np.random.default_rng(0))
    moved = [tuple(int(v) for v in np.argwhere(image)[0]) for image in out]
    assert moved == [(1, 5), (2, 5), (3, 5), (4, 1), (4, 2), (5, 1)]


# ---- random erasing --------------------------------------------------------------------------
def erased_rectangles(x: np.ndarray, out: np.ndarray) -> list[tuple[int, int, int, int] | None]:
    """Per image, the (top, left, height, width) of the pixels that changed (all channels
    alike), asserting that they fill that rectangle and read 0; None where none changed."""
    changed = out != x
    if x.ndim == 4:
        assert np.array_equal(changed.any(axis=1), changed.all(axis=1))  # every channel
        changed = changed[:, 0]
    found = []
    for image in changed:
        rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        if not len(rows):
            found.append(None)
            continue
        box = np.zeros_like(image)
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        assert np.array_equal(image, box)  # one rectangle, all of it changed
        found.append((int(rows[0]), int(cols[0]), len(rows), len(cols)))
    assert np.all(out[out != x] == 0)
    return found


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    channels=st.sampled_from([None, 1, 3]),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    dtype=st.sampled_from([np.float32, np.float64, np.uint8]),
    p=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_erase_blanks_at_most_one_rectangle_per_image(n, channels, h, w, dtype, p, seed):
    shape = (n, h, w) if channels is None else (n, channels, h, w)
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 256, shape).astype(dtype)  # no zeros: every erased pixel changes
    before = x.copy()
    out = random_erase(x, p, np.random.default_rng(seed))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert np.array_equal(x, before)  # the input is left as it was
    for rect in erased_rectangles(x, out):
        if rect is not None:
            height, width = rect[2:]
            assert height < h and width < w  # torchvision's rule: strictly inside
    np.testing.assert_array_equal(out, random_erase(x, p, np.random.default_rng(seed)))
    np.testing.assert_array_equal(random_erase(x, 0.0, rng), x)  # p = 0 changes nothing


def torchvision_rectangle(rng: np.random.Generator, h: int, w: int) -> tuple[int, int] | None:
    """(height, width) as torchvision's ``RandomErasing.get_params`` draws them (scale
    0.02-0.33, ratio 0.3-3.3, 10 tries), with NumPy's generator instead of torch's."""
    for _ in range(10):
        area = h * w * rng.uniform(0.02, 0.33)
        aspect = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
        eh, ew = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if eh < h and ew < w:
            return eh, ew
    return None


def test_random_erase_draws_rectangles_as_torchvision_does():
    """Sizes (area and aspect ratio), how often none fits, and where they are placed, for
    28x28 images and for 3x30 ones (where none of the 10 draws fits in 1 image of 12),
    against a per-image transcription of torchvision's algorithm, 4000 images each."""
    for h, w in [(28, 28), (3, 30)]:
        x = np.ones((4000, h, w), np.float32)
        rects = erased_rectangles(x, random_erase(x, 1.0, np.random.default_rng(0)))
        ref_rng = np.random.default_rng(1)
        reference = [torchvision_rectangle(ref_rng, h, w) for _ in range(4000)]
        ours = np.array([(r[2], r[3]) for r in rects if r is not None], float)
        theirs = np.array([r for r in reference if r is not None], float)
        assert abs(len(ours) - len(theirs)) < 100  # images with no rectangle that fits
        areas = [s[:, 0] * s[:, 1] / (h * w) for s in (ours, theirs)]
        aspects = [np.log(s[:, 0] / s[:, 1]) for s in (ours, theirs)]
        for a, b in (areas, aspects):
            assert abs(a.mean() - b.mean()) < 4 * np.hypot(a.std(), b.std()) / np.sqrt(len(a))
            quantiles = [np.quantile(v, [0.1, 0.5, 0.9]) for v in (a, b)]
            np.testing.assert_allclose(*quantiles, atol=0.1 * (b.max() - b.min()))
        # every position a rectangle fits at is used, the corners among them
        tops = np.array([r[0] + r[2] for r in rects if r is not None])  # bottom edges
        assert min(r[0] for r in rects if r is not None) == 0 and tops.max() == h
        assert min(r[1] for r in rects if r is not None) == 0
        assert max(r[1] + r[3] for r in rects if r is not None) == w


def test_random_erase_probability_and_errors():
    x = np.ones((2000, 28, 28), np.float32)
    erased = random_erase(x, 0.3, np.random.default_rng(2)).min(axis=(1, 2)) == 0
    assert 0.27 < erased.mean() < 0.33  # 0.3 of the images (binomial sd 0.01)
    with pytest.raises(bn.ArgumentError, match=r"p must be a number in \[0, 1\], got 2"):
        random_erase(x, 2, np.random.default_rng(0))
    with pytest.raises(bn.ArgumentError, match="scale must be"):
        random_erase(x, 0.5, np.random.default_rng(0), scale=(0.5, 0.1))
    with pytest.raises(bn.ArgumentError, match=r"x must be images"):
        random_erase(np.ones((3, 4)), 0.5, np.random.default_rng(0))


def test_augment_erases_after_the_other_transforms():
    x = RNG.random((32, 10, 10), dtype=np.float32) + 0.5
    plain, erasing = ImageAugment(0, 0, flip=True), ImageAugment(0, 0, flip=True, erase=1.0)
    moved = plain(x, np.random.default_rng(3))
    out = erasing(x, np.random.default_rng(3))  # the same draws, then the rectangles'
    rects = erased_rectangles(moved, out)
    assert sum(r is not None for r in rects) >= 30
    np.testing.assert_array_equal(
        ImageAugment(1, 5.0, erase=0.0)(x, np.random.default_rng(4)),
        ImageAugment(1, 5.0)(x, np.random.default_rng(4)),
    )
    assert repr(erasing) == "ImageAugment(shift=0, rotation=0.0, flip=True, erase=1.0)"
    assert ImageAugment(0, 0, erase=0.5)(np.ones((4, 3, 5, 5)), np.random.default_rng(0)).shape == (
        4,
        3,
        5,
        5,
    )
