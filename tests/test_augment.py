"""ImageAugment and warp: exact shifts, rotations and mirrors; seeded; usable by fit."""

from __future__ import annotations

import numpy as np
import pytest

import barenet as bn
from barenet import augment
from barenet.augment import ImageAugment, shift_images, warp
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
