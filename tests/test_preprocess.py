"""MNIST-style preprocessing: inversion, crop, 20x20 fit, centring by mass, file loading."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barenet.errors import ArgumentError
from barenet.preprocess import center_by_mass, load_image, resize_area, to_fashion, to_mnist

PIL = pytest.importorskip("PIL.Image")


def zero(height: int, width: int, *, ink: int = 10, paper: int = 240) -> np.ndarray:
    """A dark-on-light '0' (an elliptic ring) with a margin of paper around it."""
    r, c = np.mgrid[0:height, 0:width]
    y = (r + 0.5 - height / 2) / (0.4 * height)
    x = (c + 0.5 - width / 2) / (0.3 * width)
    d = np.hypot(y, x)
    return np.where((d > 0.7) & (d <= 1.0), ink, paper).astype(np.uint8)


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    a = a.astype(np.float64)
    total = a.sum()
    return (a.sum(axis=1) @ np.arange(28)) / total, (a.sum(axis=0) @ np.arange(28)) / total


def ink_box(a: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("shape", [(300, 200), (41, 97), (12, 9), (28, 28)])
def test_dark_on_light_digit_becomes_centred_light_on_dark(shape):
    out = to_mnist(zero(*shape))
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() == 255
    # the border is background (black), the ink is bright
    assert out[0].max() == out[-1].max() == out[:, 0].max() == out[:, -1].max() == 0
    h, w = ink_box(out)
    assert max(h, w) <= 20 and max(h, w) >= 19
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_polarity_and_value_range_do_not_matter():
    dark_on_light = zero(120, 90)
    reference = to_mnist(dark_on_light)
    light_on_dark = 255 - dark_on_light
    np.testing.assert_array_equal(to_mnist(light_on_dark), reference)
    as_unit_float = dark_on_light.astype(np.float32) / 255
    assert np.abs(to_mnist(as_unit_float).astype(int) - reference).max() <= 1


def test_tall_thin_stroke_keeps_its_aspect_ratio():
    img = np.zeros((200, 200), dtype=np.uint8)
    img[20:180, 95:115] = 255  # 160 x 20: aspect 8:1
    h, w = ink_box(to_mnist(img))
    assert h == 20 and w in (2, 3)


def test_mnist_digits_pass_through_nearly_unchanged(mnist):
    (_, _), (x_test, _) = mnist
    out = np.stack([to_mnist(a) for a in x_test[:100]]).astype(np.int16)
    # MNIST was made this way, so redoing it moves little ink (the mean pixel is ~31)
    assert np.abs(out - x_test[:100]).mean() < 3


def test_fashion_items_pass_through_nearly_unchanged(fashion):
    (_, _), (x_test, _) = fashion
    out = np.stack([to_fashion(a) for a in x_test[:100]]).astype(np.int16)
    assert np.abs(out - x_test[:100]).mean() < 3  # the mean pixel is ~73


def test_a_garment_photo_fills_the_field_and_is_centred():
    photo = np.full((400, 300), 230, np.uint8)  # light paper
    photo[50:350, 100:250] = 40  # a dark 300 x 150 garment, off-centre
    out = to_fashion(photo)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert (rows[0], rows[-1]) == (0, 27)  # the longer side fills all 28 pixels
    assert (cols[0], cols[-1]) == (7, 20)  # 14 columns, centred
    assert out[0, 0] == 0 and out[14, 14] == 255


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(2, 60),
    w=st.integers(2, 60),
    top=st.integers(0, 40),
    left=st.integers(0, 40),
)
def test_any_blob_fits_the_box_and_is_centred(h, w, top, left):
    img = np.full((top + h + 10, left + w + 10), 255, dtype=np.uint8)
    img[top : top + h, left : left + w] = 0
    out = to_mnist(img)
    bh, bw = ink_box(out)
    assert max(bh, bw) <= 20
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_resize_area_keeps_the_mean_and_exact_downsampling():
    a = np.arange(16, dtype=np.float64).reshape(4, 4)
    small = resize_area(a, (2, 2))
    np.testing.assert_allclose(small, [[2.5, 4.5], [10.5, 12.5]])
    rng = np.random.default_rng(0)
    b = rng.random((37, 23))
    assert resize_area(b, (20, 13)).mean() == pytest.approx(b.mean())


def test_center_by_mass_never_cuts_ink_off():
    a = np.zeros((20, 20))
    a[0, 0] = 1.0  # all mass in a corner: the shift is limited by the field's edge
    out = center_by_mass(a)
    assert out.sum() == 1.0


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.full((30, 30), 255, np.uint8), "blank"),
        (np.zeros((30, 30, 3), np.uint8), "2-D"),
        (np.zeros((0, 5)), "2-D"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        (np.array([[-1.0, 1.0]]), ">= 0"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_bad_arrays_are_refused(image, message):
    with pytest.raises(ArgumentError, match=message):
        to_mnist(image)


def test_load_image_reads_grayscale_and_treats_transparency_as_paper(tmp_path):
    rgba = np.zeros((40, 30, 4), dtype=np.uint8)  # transparent everywhere ...
    rgba[10:30, 12:18] = (0, 0, 0, 255)  # ... except an opaque black stroke
    path = tmp_path / "stroke.png"
    PIL.fromarray(rgba, "RGBA").save(path)
    gray = load_image(path)
    assert gray.shape == (40, 30) and gray.dtype == np.uint8
    assert gray[0, 0] == 255 and gray[20, 15] == 0
    out = to_mnist(gray)
    assert out[14, 14] == 255 and out[0, 0] == 0


def test_load_image_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(ArgumentError, match=r"nope\.png: no such file"):
        load_image(tmp_path / "nope.png")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ArgumentError, match=r"notes\.png: not a readable picture"):
        load_image(text)
