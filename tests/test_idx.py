"""Tests for the IDX reader and writer."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from barenet.datasets.idx import parse_idx, read_idx, write_idx
from barenet.errors import ArgumentError, DatasetError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def arrays():
    return st.sampled_from(DTYPES).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6))
    )


def _sample_file(tmp_path: Path, compress: bool) -> tuple[Path, np.ndarray]:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(p, a)
    return p, a


def test_known_header_bytes(tmp_path):
    p = tmp_path / "labels-idx1-ubyte"
    write_idx(p, np.array([7, 2, 1], dtype=np.uint8))
    assert p.read_bytes() == bytes.fromhex("00000801 00000003 070201")


def test_reads_big_endian_into_native_order(tmp_path):
    data = bytes.fromhex("00000B01 00000002 0102 FFFE")
    out = parse_idx(data)
    assert out.dtype == np.dtype("=i2") and out.tolist() == [258, -2]
    out[0] = 1  # writable


@FAST
@given(a=arrays(), compress=st.booleans())
def test_write_read_round_trip(tmp_path, a, compress):
    p = tmp_path / "x.idx"
    write_idx(p, a, compress=compress)
    assert p.read_bytes().startswith(b"\x1f\x8b") == compress
    b = read_idx(p)
    assert b.dtype == a.dtype and b.shape == a.shape and b.tobytes() == a.tobytes()


def test_suffix_decides_compression_and_no_temp_left(tmp_path):
    p, a = _sample_file(tmp_path, compress=True)
    assert p.read_bytes()[:2] == b"\x1f\x8b"
    assert np.array_equal(read_idx(p), a)
    assert [f.name for f in tmp_path.iterdir()] == ["a.idx.gz"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    p, a = _sample_file(tmp_path, compress=False)

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(DatasetError, match="No space left"):
        write_idx(p, np.zeros(5, np.uint8))
    assert np.array_equal(read_idx(p), a)
    assert [f.name for f in tmp_path.iterdir()] == ["a.idx"]


@pytest.mark.parametrize("bad", [np.zeros(2, np.int64), np.zeros(2, bool), np.float16(1)])
def test_writer_refuses_what_idx_cannot_hold(tmp_path, bad):
    with pytest.raises(ArgumentError):
        write_idx(tmp_path / "x", np.asarray(bad))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "only 0 bytes"),
        (bytes.fromhex("01000801 00000001 00"), "magic number"),
        (bytes.fromhex("00000A01 00000001 00"), "element type 0x0A"),
        (bytes.fromhex("00000800"), "0 dimensions"),
        (bytes.fromhex("00000803 00000001 0000"), "truncated IDX header"),
        (bytes.fromhex("00000801 00000003 0102"), "payload truncated"),
        (bytes.fromhex("00000801 00000001 0102"), "payload too long"),
        (bytes.fromhex("00000C02 FFFFFFFF FFFFFFFF 00"), "more than the 1,073,741,824 bytes"),
    ],
)
def test_malformed_headers(tmp_path, data, match):
    p = tmp_path / "bad-idx"
    p.write_bytes(data)
    with pytest.raises(DatasetError, match=match) as info:
        read_idx(p)
    assert str(p) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DatasetError, match="not a regular file"):
        read_idx(tmp_path)


def test_bad_crc_and_truncated_gzip(tmp_path):
    p, _ = _sample_file(tmp_path, compress=True)
    good = p.read_bytes()
    p.write_bytes(good[:-8] + bytes(b ^ 0xFF for b in good[-8:-4]) + good[-4:])
    with pytest.raises(DatasetError, match="CRC"):
        read_idx(p)
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="gzip"):
        read_idx(p)
    p.write_bytes(good + b"junk")
    with pytest.raises(DatasetError, match="gzip"):
        read_idx(p)


def test_gzip_of_garbage_is_not_idx(tmp_path):
    p = tmp_path / "g.gz"
    p.write_bytes(gzip.compress(b"hello world"))
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(p)


@FAST
@given(compress=st.booleans(), data=st.data())
def test_truncation_always_raises_dataset_error(tmp_path, compress, data):
    p, _ = _sample_file(tmp_path, compress)
    good = p.read_bytes()
    cut = data.draw(st.integers(0, len(good) - 1))
    p.write_bytes(good[:cut])
    with pytest.raises(DatasetError):
        read_idx(p)


@FAST
@given(compress=st.booleans(), data=st.data())
def test_corruption_raises_dataset_error_or_reads(tmp_path, compress, data):
    p, _ = _sample_file(tmp_path, compress)
    buf = bytearray(p.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    p.write_bytes(bytes(buf))
    try:
        out = read_idx(p)
    except DatasetError:
        return
    assert isinstance(out, np.ndarray)  # some bytes (payload, gzip mtime) are not checked


@FAST
@given(blob=st.binary(max_size=64))
def test_arbitrary_bytes_raise_dataset_error_or_read(tmp_path, blob):
    p = tmp_path / "blob"
    p.write_bytes(blob)
    try:
        read_idx(p)
    except DatasetError:
        pass
    p.write_bytes(b"\x1f\x8b" + blob)
    with pytest.raises(DatasetError):
        read_idx(p)


# -- bounded reading: headers first, then exactly the payload they imply -------------------

MB = 1 << 20


def _peak_while(read) -> tuple[BaseException | None, int]:
    """Run ``read()``; the exception it raised (None if none) and the peak bytes used."""
    tracemalloc.start()
    try:
        read()
        error = None
    except Exception as e:  # the calling test checks the kind
        error = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak


def _bomb(tmp_path: Path, header: bytes, zeros: int) -> Path:
    """A small gzip file: ``header`` then ``zeros`` zero bytes once decompressed."""
    p = tmp_path / "bomb.gz"
    with gzip.open(p, "wb", compresslevel=9) as gz:
        gz.write(header)
        for _ in range(zeros // MB):
            gz.write(bytes(MB))
    return p


def test_a_gzip_bomb_is_read_no_further_than_its_header_implies(tmp_path):
    p = _bomb(tmp_path, bytes.fromhex("00000801 0000000A"), 64 * MB)
    assert p.stat().st_size < 100_000
    error, peak = _peak_while(lambda: read_idx(p))
    assert isinstance(error, DatasetError) and "payload too long" in str(error)
    assert peak < 2 * MB


def test_a_header_declaring_more_than_expected_is_refused_before_reading(tmp_path):
    p = _bomb(tmp_path, bytes.fromhex("00000801 04000000"), 64 * MB)  # 64 MiB, all there
    error, peak = _peak_while(lambda: read_idx(p, max_bytes=47_040_000))
    assert isinstance(error, DatasetError)
    assert "shape (67108864,) (67,108,864 bytes), more than the 47,040,000 bytes" in str(error)
    assert peak < 2 * MB


def test_a_huge_declared_shape_costs_nothing(tmp_path):
    p = tmp_path / "huge-idx"
    p.write_bytes(bytes.fromhex("00000E03 7FFFFFFF 7FFFFFFF 7FFFFFFF") + bytes(100))
    error, peak = _peak_while(lambda: read_idx(p))
    assert isinstance(error, DatasetError) and "more than the" in str(error)
    assert peak < MB


def test_a_plain_file_is_read_no_further_than_its_header_implies(tmp_path):
    p = tmp_path / "long-idx"
    p.write_bytes(bytes.fromhex("00000801 00000002 0102") + bytes(32 * MB))
    error, peak = _peak_while(lambda: read_idx(p))
    assert isinstance(error, DatasetError) and "payload too long" in str(error)
    assert peak < 2 * MB


def idx_headers():
    """IDX headers, mostly plausible: any magic, type code and rank, dims up to 2**32 - 1."""
    dims = st.lists(st.integers(0, 8) | st.integers(0, 2**32 - 1), max_size=6)
    return st.builds(
        lambda magic, code, d, ndim: (
            magic
            + bytes([code, len(d) if ndim is None else ndim])
            + b"".join(n.to_bytes(4, "big") for n in d)
        ),
        st.sampled_from([b"\0\0", b"\0\1", b"\xff\0"]),
        st.sampled_from([*range(0x08, 0x0F), 0, 0xFF]),
        dims,
        st.none() | st.integers(0, 255),
    )


@FAST
@given(header=idx_headers(), body=st.binary(max_size=64), extra=st.integers(0, 4 * MB))
def test_fuzzed_idx_files_raise_dataset_error_or_read(tmp_path, header, body, extra):
    p = tmp_path / "f.gz"
    with gzip.open(p, "wb", compresslevel=1) as gz:
        gz.write(header + body + bytes(extra))
    error, peak = _peak_while(lambda: read_idx(p, max_bytes=MB))
    assert error is None or isinstance(error, DatasetError), repr(error)
    assert peak < 3 * MB


@FAST
@given(
    header=idx_headers(),
    payload=st.binary(max_size=200),
    cut=st.integers(0, 400),
    flip=st.none() | st.tuples(st.integers(0, 400), st.integers(0, 255)),
)
def test_fuzzed_gzip_streams_raise_dataset_error_or_read(tmp_path, header, payload, cut, flip):
    data = bytearray(gzip.compress(header + payload))
    data = data[: max(cut, 2)] if cut < len(data) else data
    if flip is not None and flip[0] < len(data):
        data[flip[0]] = flip[1]
    p = tmp_path / "f.gz"
    p.write_bytes(bytes(data))
    error, peak = _peak_while(lambda: read_idx(p))
    assert error is None or isinstance(error, DatasetError), repr(error)
    assert peak < MB
