"""Reading picture files safely: declared sizes are checked before decoding (decompression
bombs), only the advertised formats are decoded, files and frames are bounded, and no
file, however damaged, makes ``load_image`` raise anything but ``ArgumentError``."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import EpsImagePlugin, Image

from barenet import preprocess
from barenet.cli import main
from barenet.errors import ArgumentError
from barenet.preprocess import MAX_PIXELS, decode_image, load_image


# ---- files made byte by byte: a header declaring any size, and almost no pixels ----------
def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def gif_declaring(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + frame + b"\x02\x02\x44\x01\x00;"


def bmp_declaring(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 100, 0, 0, 54) + info + b"\0" * 100


def jpeg_declaring(width: int, height: int) -> bytes:
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    scan = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + frame + scan + b"\0" * 100 + b"\xff\xd9"


DECLARING = [png_declaring, gif_declaring, bmp_declaring, jpeg_declaring]


def encoded(image: np.ndarray | Image.Image, fmt: str, **options) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def stroke() -> np.ndarray:
    """A 24x20 white picture with a black bar: small, but every format keeps it."""
    a = np.full((24, 20), 255, np.uint8)
    a[4:20, 8:12] = 0
    return a


# ---- decompression bombs -----------------------------------------------------------------
@pytest.mark.parametrize("make", DECLARING, ids=lambda f: f.__name__.split("_")[0])
@pytest.mark.parametrize("side", [60_000, 10_000, 5_000])  # Pillow's error, its warning, ours
def test_a_header_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, make, side):
    path = tmp_path / "bomb"
    path.write_bytes(make(side, side))
    with pytest.raises(ArgumentError, match=f"{MAX_PIXELS:,} pixels") as caught:
        load_image(path)
    assert str(path) in str(caught.value)


def test_the_bomb_check_leaves_pillow_and_the_warning_filters_as_they_were():
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ArgumentError, match="limit"):
            decode_image(png_declaring(10_000, 10_000))  # between Pillow's two limits
        filters_inside = list(warnings.filters)
        assert decode_image(encoded(stroke(), "PNG")).shape == (24, 20)
        assert list(warnings.filters) == filters_inside
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == limit and list(warnings.filters) == filters


def test_barenet_predict_reports_a_bomb_in_one_line(tmp_path, capsys):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(60_000, 60_000))
    assert main(["predict", "--pretrained", "mnist-mlp", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "bomb.png" in err[0] and "pixels" in err[0], err


def test_pictures_up_to_the_limit_are_read(tmp_path):
    side = 4096  # exactly MAX_PIXELS
    assert side * side == MAX_PIXELS
    path = tmp_path / "large.png"
    path.write_bytes(encoded(Image.new("L", (side, side), 200), "PNG"))
    assert load_image(path).shape == (side, side)
    path.write_bytes(encoded(Image.new("L", (side + 1, side), 200), "PNG"))
    with pytest.raises(ArgumentError, match="4097x4096 pixels"):
        load_image(path)


# ---- formats ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_every_advertised_format_is_read(tmp_path, fmt):
    path = tmp_path / f"stroke.{fmt.lower()}"
    path.write_bytes(encoded(stroke(), fmt, **({"quality": 95} if fmt != "PNG" else {})))
    got = load_image(path).astype(int)
    assert got.shape == (24, 20)
    assert np.abs(got - stroke()).max() <= 40  # JPEG and WebP are lossy


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PCX", "TGA", "PPM", "DDS"])
def test_other_formats_pillow_knows_are_refused_unread(tmp_path, fmt):
    path = tmp_path / "stroke.png"  # the name says PNG; the bytes decide
    path.write_bytes(encoded(Image.fromarray(stroke()).convert("RGB"), fmt))
    with pytest.raises(ArgumentError, match="not a readable picture"):
        load_image(path)


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    calls = []

    def ghostscript(*args, **kwargs):
        calls.append(args)
        raise OSError("Ghostscript is not run in tests")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    path = tmp_path / "drawing.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n%%EOF\n")
    with pytest.raises(ArgumentError, match="not a readable picture"):
        load_image(path)
    assert calls == []


# ---- sizes, frames, depth -----------------------------------------------------------------
def test_files_larger_than_the_limit_are_not_read_whole(tmp_path, monkeypatch):
    data = encoded(stroke(), "BMP")  # 2,000 bytes or so
    monkeypatch.setattr(preprocess, "MAX_FILE_BYTES", len(data) - 1)
    path = tmp_path / "stroke.bmp"
    path.write_bytes(data)
    with pytest.raises(ArgumentError, match=r"stroke\.bmp: the file is larger than the limit"):
        load_image(path)
    with pytest.raises(ArgumentError, match="larger than the limit"):
        load_image("/dev/zero")  # endless: only the limit is read


def test_a_folder_is_refused_in_one_line(tmp_path):
    with pytest.raises(ArgumentError, match="cannot be read"):
        load_image(tmp_path)


def test_animated_pictures_give_their_first_frame(tmp_path):
    first = Image.fromarray(stroke())
    second = Image.new("L", (24, 20), 0)  # all black, and wider than the first frame
    path = tmp_path / "animated.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    np.testing.assert_array_equal(load_image(path), stroke())
    path = tmp_path / "animated.png"
    first.save(path, save_all=True, append_images=[second.resize((20, 24))], duration=100)
    np.testing.assert_array_equal(load_image(path), stroke())


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    wide = np.full((24, 20), 60000, np.uint16)
    wide[4:20, 8:12] = 3000
    path = tmp_path / "scan16.png"
    Image.fromarray(wide).save(path)
    got = load_image(path)
    assert got.dtype == np.uint8
    assert got[0, 0] == round(60000 / 257) and got[10, 10] == round(3000 / 257)


# ---- fuzz --------------------------------------------------------------------------------
SEEDS = [encoded(stroke(), fmt) for fmt in ("PNG", "GIF", "BMP", "JPEG")]
MUTATIONS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutate(data: bytes, changes: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in changes:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut else out)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One file the fuzz tests rewrite for each example."""
    return tmp_path_factory.mktemp("fuzz") / "picture.png"


def only_argument_errors(data: bytes, path) -> None:
    path.write_bytes(data)
    try:
        image = load_image(path)
    except ArgumentError:
        return
    assert image.ndim == 2 and image.dtype == np.uint8 and image.size <= MAX_PIXELS


@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_argument_errors(scratch, data):
    only_argument_errors(data, scratch)


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    changes=MUTATIONS,
    cut=st.none() | st.integers(1, 2_000),
)
def test_damaged_pictures_raise_only_argument_errors(scratch, seed, changes, cut):
    only_argument_errors(mutate(seed, changes, cut), scratch)


@FUZZ
@given(
    make=st.sampled_from(DECLARING),
    width=st.integers(0, 65_535),
    height=st.integers(0, 65_535),
)
def test_any_declared_size_is_refused_or_read(scratch, make, width, height):
    only_argument_errors(make(width, height), scratch)
