"""Turn any picture of a digit or garment into a 28x28 image the way MNIST was made.

MNIST's digits were size-normalised to fit a 20x20 box (keeping their aspect ratio),
anti-aliased, then centred in a 28x28 field by their centre of mass. ``to_mnist`` does
the same to an arbitrary grayscale array:

1. scale to [0, 1];
2. find the object as ``barenet.photo.find_ink`` does (the paper's uneven light and the
   sensor noise removed, the ink thresholded, the main components kept), as bright ink;
3. drop what is fainter than a fraction of the brightest ink;
4. crop to the ink and resize it (area averaging) so its longer side is 20 pixels;
5. paste it into a black 28x28 field so its centre of mass lies at the centre.

``to_fashion`` does the same for garments, but fits them to the whole 28x28 field (as
Fashion-MNIST was made) and centres their box instead of their mass.

``load_image`` and ``decode_image`` need Pillow, ``to_mnist`` and ``to_fashion`` SciPy
(both in the ``image`` extra).
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from typing import Any

import numpy as np

from barenet.datasets.transforms import scale
from barenet.errors import ArgumentError, BarenetError

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "PICTURE_FORMATS",
    "PREPROCESSORS",
    "center_by_mass",
    "crop_to_ink",
    "decode_image",
    "load_image",
    "read_number",
    "resize_area",
    "to_fashion",
    "to_mnist",
    "to_mnist_digits",
]

SIZE = 28  #: side of the output field
BOX = 20  #: side of the box the ink is fitted into
#: After background removal, values below this fraction of the peak are dropped as noise
#: (paper texture, shadows). Garments have faint fabric that must stay, so a lower cut.
NOISE = {"mnist": 0.15, "fashion": 0.05}


def _as_unit(image: Any) -> np.ndarray:
    """A 2-D float64 copy of ``image`` with values in [0, 1]."""
    a = np.asarray(image)
    if a.ndim != 2 or min(a.shape) < 1:
        raise ArgumentError(f"image must be a non-empty 2-D grayscale array, got shape {a.shape}")
    if a.dtype.kind not in "uif" or a.dtype == np.bool_:
        raise ArgumentError(f"image must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ArgumentError("image contains NaN or infinite values")
    if a.min() < 0:
        raise ArgumentError(f"image values must be >= 0, got a minimum of {a.min():.4g}")
    # uint8 and float pictures in 0..255 are divided by 255; floats already in [0, 1] are kept.
    if np.asarray(image).dtype.kind in "ui" or a.max() > 1.0:
        a /= 255.0
    return np.clip(a, 0.0, 1.0)


def _border(a: np.ndarray) -> np.ndarray:
    """The outermost ring of pixels."""
    if min(a.shape) <= 2:
        return a.ravel()
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def crop_to_ink(a: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """The smallest rectangle of ``a`` holding every value above ``threshold``.

    Raises ``ArgumentError`` when nothing is above it (a blank picture).
    """
    rows = np.flatnonzero((a > threshold).any(axis=1))
    cols = np.flatnonzero((a > threshold).any(axis=0))
    if len(rows) == 0:
        raise ArgumentError("image is blank: no ink was found to recognise")
    return a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix averaging the input cells each output cell covers."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resize_area(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D array to ``shape`` by area averaging (each output pixel is the mean of
    the input area it covers; enlarging repeats pixels, blending at their edges)."""
    h, w = shape
    return _area_weights(a.shape[0], h) @ a @ _area_weights(a.shape[1], w).T


def center_by_mass(a: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Paste ``a`` (at most ``size`` on each side) into a zero ``size`` x ``size`` field so
    that its centre of mass falls as close to pixel ``(size / 2, size / 2)`` as whole-pixel
    shifts allow, without cutting anything off."""
    h, w = a.shape
    if h > size or w > size:
        raise ArgumentError(f"image of shape {a.shape} does not fit in {size}x{size}")
    total = a.sum()
    cy = (a.sum(axis=1) @ np.arange(h)) / total if total > 0 else (h - 1) / 2
    cx = (a.sum(axis=0) @ np.arange(w)) / total if total > 0 else (w - 1) / 2
    centre = size / 2  # where MNIST's digits have it: (14, 14) in pixel indices
    top = int(np.clip(np.rint(centre - cy), 0, size - h))
    left = int(np.clip(np.rint(centre - cx), 0, size - w))
    out = np.zeros((size, size), dtype=a.dtype)
    out[top : top + h, left : left + w] = a
    return out


def _bright_ink(image: Any, noise: float, what: str) -> np.ndarray:
    """Steps 1-3 of the module docstring: [0, 1], bright ink on zero background, no noise."""
    from barenet.photo import find_ink

    a = find_ink(_as_unit(image), fill=what == "garment", what=what)
    a /= a.max()
    a[a < noise] = 0.0
    return a


def _fit(a: np.ndarray, box: int) -> np.ndarray:
    """Resize ``a`` so its longer side is ``box`` pixels, keeping the aspect ratio."""
    h, w = a.shape
    scale = box / max(h, w)
    return resize_area(a, (max(1, round(h * scale)), max(1, round(w * scale))))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    a = a * (255.0 / a.max())
    return np.rint(a).astype(np.uint8)


def to_mnist(image: np.ndarray) -> np.ndarray:
    """MNIST-style preprocessing of one picture of a digit.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grayscale, any size, uint8 0..255 or float (0..1 or 0..255), dark-on-light or
        light-on-dark.

    Returns
    -------
    ndarray of uint8, shape (28, 28)
        Light ink on a black background, the ink fitted in a 20x20 box (aspect kept) and
        centred by its centre of mass, values 0..255 with the brightest ink at 255.

    Raises
    ------
    ArgumentError
        For a non-2-D or non-numeric array, or a blank picture.
    """
    return _to_uint8(
        center_by_mass(_fit(crop_to_ink(_bright_ink(image, NOISE["mnist"], "digit")), BOX))
    )


def to_mnist_digits(image: np.ndarray) -> np.ndarray:
    """Every digit of a picture of a number ("2026"), left to right, each prepared as
    ``to_mnist`` prepares a single digit; a picture of one digit gives one image.

    Returns
    -------
    ndarray of uint8, shape (digits, 28, 28)

    Raises
    ------
    ArgumentError
        As ``to_mnist``; ``barenet.photo.NoObjectError`` when no digit is found.
    """
    from barenet.photo import split_digits

    pieces = split_digits(_bright_ink(image, NOISE["mnist"], "digit"))
    return np.stack([_to_uint8(center_by_mass(_fit(crop_to_ink(p), BOX))) for p in pieces])


def to_fashion(image: np.ndarray) -> np.ndarray:
    """Fashion-MNIST-style preprocessing of one picture of a garment: as ``to_mnist`` up to
    the crop, then (as Fashion-MNIST was made) the longer side is fitted to the full 28
    pixels and the box is centred geometrically.

    Parameters and results are as for ``to_mnist``.
    """
    fitted = _fit(crop_to_ink(_bright_ink(image, NOISE["fashion"], "garment")), SIZE)
    h, w = fitted.shape
    out = np.zeros((SIZE, SIZE))
    top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2  # odd margins: one more on top/left
    out[top : top + h, left : left + w] = fitted
    return _to_uint8(out)


#: Preprocessing by the name a model's metadata gives (``metadata["preprocess"]["pictures"]``).
PREPROCESSORS = {"mnist": to_mnist, "fashion": to_fashion}


#: The largest picture decoded, in pixels (width x height): a 12-megapixel phone photo fits.
#: A file declaring more is refused from its header, before any pixel is decoded, so a
#: small "decompression bomb" cannot make a reader allocate gigabytes.
MAX_PIXELS = 4096 * 4096
#: The largest picture file read, in bytes: room for an uncompressed 32-bit BMP of
#: ``MAX_PIXELS`` pixels.
MAX_FILE_BYTES = 4 * MAX_PIXELS + (1 << 20)
#: The only formats decoded (Pillow's names). Anything else is refused unread, so none of
#: Pillow's rarer decoders (nor Ghostscript, which Pillow runs for EPS) sees a user's file.
PICTURE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
_HIGH_DEPTH = ("I", "I;16", "I;16B", "I;16L")  # 16-bit grey PNGs open in one of these modes
_OPENING = threading.Lock()  # the warnings filter below is process-wide: one opener at a time


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a picture file (PNG, JPEG, GIF, BMP or WebP) as a 2-D uint8 grayscale array.

    Transparent pixels count as white paper; the camera's EXIF rotation is applied; of an
    animated picture only the first frame is read. Files over ``MAX_FILE_BYTES`` bytes or
    ``MAX_PIXELS`` pixels are refused (see :func:`decode_image`).

    Raises
    ------
    BarenetError
        When Pillow is not installed.
    ArgumentError
        When the file is missing, too large, or not a picture (the message names the file).
    """
    name = f"image {os.fspath(path)!s}"
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ArgumentError(f"{name}: no such file") from None
    except OSError as e:
        raise ArgumentError(f"{name}: cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ArgumentError(
            f"{name}: the file is larger than the limit of {MAX_FILE_BYTES:,} bytes"
        )
    return decode_image(data, name)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode the bytes of a picture file as :func:`load_image` reads files.

    The declared size is checked before any pixel is decoded; ``name`` starts the messages.

    Raises
    ------
    BarenetError
        When Pillow is not installed.
    ArgumentError
        When ``data`` is not a PNG, JPEG, GIF, BMP or WebP picture, is damaged, or declares
        more than ``MAX_PIXELS`` pixels.
    """
    try:
        from PIL import Image
    except ImportError:
        raise BarenetError("reading pictures needs Pillow: pip install 'barenet[image]'") from None
    bomb = (Image.DecompressionBombWarning, Image.DecompressionBombError)
    try:
        # Pillow only warns about sizes between its two bomb limits: make that an error too.
        with _OPENING, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=PICTURE_FORMATS)  # the header only
    except bomb as e:
        raise ArgumentError(
            f"{name}: larger than the limit of {MAX_PIXELS:,} pixels ({e})"
        ) from None
    except Exception as e:  # a damaged file can make a decoder raise almost anything
        raise ArgumentError(f"{name}: not a readable picture ({_reason(e)})") from None
    with picture:
        width, height = picture.size
        if width * height > MAX_PIXELS:
            raise ArgumentError(
                f"{name} is {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels"
            )
        try:
            return _grey(picture)
        except Exception as e:
            raise ArgumentError(f"{name}: not a readable picture ({_reason(e)})") from None


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def _grey(picture: Any) -> np.ndarray:
    """The current (first) frame of an open Pillow picture as uint8 grey, upright, with
    transparency as white paper and 16-bit grey scaled (not clipped) to 0..255."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(picture)
    if img.mode in _HIGH_DEPTH:
        wide = np.asarray(img, dtype=np.float64)
        return np.rint(np.clip(wide, 0, 65535) / 257).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def read_number(model: Any, image: Any) -> tuple[str, list[float]]:
    """Read the number in a picture with a digit classifier: the digits as a string and
    each digit's probability (the network's confidence), left to right."""
    proba = model.predict_proba(scale(to_mnist_digits(image)))
    best = np.argmax(proba, axis=1)
    return "".join(str(int(k)) for k in best), [
        float(p[k]) for p, k in zip(proba, best, strict=True)
    ]
