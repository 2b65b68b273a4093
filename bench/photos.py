"""Accuracy of the shipped networks on test images rendered as phone photos.

The first N test images of each dataset are photographed by ``barenet.camera`` at every
level (seed = the image's index), decoded by ``barenet.preprocess.decode_image`` and
prepared by ``to_mnist`` / ``to_fashion``, exactly as ``barenet predict`` reads a file,
then classified. Prints a Markdown table of levels x networks; ``--before REV`` adds the
accuracy with the preprocessing of git revision REV beside each figure, and a second table
gives how many N-digit numbers (``--numbers``) are read exactly.

    .venv/bin/python bench/photos.py [--count 300] [--before REV] [--levels clean,phone]
    .venv/bin/python bench/photos.py --examples tests/data/photos   # the committed set

``--examples DIR`` writes the small committed set instead: per level one digit and one
garment (test image number k for the k-th level), two 4-digit numbers, printed digits
(DejaVu Sans) and an empty page, each named after what it shows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from barenet.camera import LEVELS, photograph, photograph_number
from barenet.datasets import load, scale
from barenet.errors import ArgumentError
from barenet.metrics import accuracy
from barenet.preprocess import PREPROCESSORS, decode_image, read_number
from barenet.pretrained import PRETRAINED, load_pretrained

ROOT = Path(__file__).resolve().parents[1]


def old_preprocessors(rev: str) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """``PREPROCESSORS`` of ``src/barenet/preprocess.py`` at git revision ``rev``."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/barenet/preprocess.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("preprocess_before")
    exec(compile(source, f"preprocess@{rev}", "exec"), module.__dict__)
    return module.PREPROCESSORS


def prepared(photos: list[bytes], prepare: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Each photo as the network sees it; a refused one ("no digit found") as a blank."""
    out = []
    for data in photos:
        try:
            out.append(prepare(decode_image(data)))
        except ArgumentError:
            out.append(np.zeros((28, 28), np.uint8))
    return np.stack(out)


FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def printed(text: str) -> np.ndarray:
    """``text`` typeset in a sans-serif font, as bright ink on black (about 28 pixels tall)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, 26)
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(canvas).text((4 - left, 4 - top), text, fill=255, font=font)
    return np.asarray(canvas)


def write_examples(folder: Path) -> None:
    """The committed examples: see the module docstring."""
    folder.mkdir(parents=True, exist_ok=True)
    (_, _), (digits, digit_labels) = load("mnist")
    (_, _), (garments, garment_labels) = load("fashion")
    files: dict[str, bytes] = {}
    for k, level in enumerate(LEVELS):
        files[f"digit-{level}-{digit_labels[k]}.jpg"] = photograph(digits[k], level, seed=k)
        files[f"garment-{level}-{garment_labels[k]}.jpg"] = photograph(garments[k], level, seed=k)
    for level, pick in (("mild", [11, 12, 13, 14]), ("phone", [21, 22, 23, 24])):
        name = "".join(str(d) for d in digit_labels[pick])
        files[f"number-{level}-{name}.jpg"] = photograph_number(digits[pick], level, seed=1)
    for level in ("clean", "phone"):
        files[f"printed-{level}-2026.jpg"] = photograph(printed("2026"), level, seed=2)
        files[f"printed-{level}-7.jpg"] = photograph(printed("7"), level, seed=3)
    files["empty-phone.jpg"] = photograph(np.zeros((28, 28)), "phone", seed=4)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} photos to {folder} ({total / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="test images per dataset")
    parser.add_argument("--before", default=None, help="also measure this git revision")
    parser.add_argument("--levels", default=",".join(LEVELS), help="comma-separated levels")
    parser.add_argument("--numbers", type=int, default=100, help="4-digit numbers per level")
    parser.add_argument("--networks", default=",".join(sorted(PRETRAINED)))
    parser.add_argument("--examples", type=Path, help="write the committed examples here")
    args = parser.parse_args()
    if args.examples:
        write_examples(args.examples)
        return
    levels = args.levels.split(",")
    names = args.networks.split(",")
    before = old_preprocessors(args.before) if args.before else None
    models = {name: load_pretrained(name) for name in names}
    results: dict[tuple[str, str], str] = {}
    for dataset in ("mnist", "fashion"):
        nets = [n for n in names if PRETRAINED[n].dataset == dataset]
        if not nets:
            continue
        (_, _), (x_test, y_test) = load(dataset)
        x, y = x_test[: args.count], y_test[: args.count]
        for level in levels:
            photos = [photograph(img, level, seed=i) for i, img in enumerate(x)]
            now = scale(prepared(photos, PREPROCESSORS[dataset]))
            old = scale(prepared(photos, before[dataset])) if before else None
            for n in nets:
                cell = f"{accuracy(y, models[n].predict(now)):.1%}"
                if old is not None:
                    cell = f"{accuracy(y, models[n].predict(old)):.1%} → {cell}"
                results[level, n] = cell
            print(f"  {dataset} {level} done", file=sys.stderr)
    cores = "2-core AMD EPYC"
    print(f"first {args.count} test images per dataset as photos ({cores})")
    if before:
        print(f"cells: preprocessing at {args.before} → now")
    print("\n| rendering | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for level in levels:
        print(f"| {level} | " + " | ".join(results[level, n] for n in names) + " |")
    if args.numbers and "mnist-cnn" in models:
        print(f"\n4-digit numbers read exactly by mnist-cnn ({args.numbers} per level)\n")
        print("| rendering | numbers read exactly |\n|---|---|")
        (_, _), (x_test, y_test) = load("mnist")
        rng = np.random.default_rng(0)
        for level in [lv for lv in ("clean", "mild", "phone") if lv in levels]:
            right = 0
            for k in range(args.numbers):
                pick = rng.choice(len(x_test), 4, replace=False)
                photo = photograph_number(x_test[pick], level, seed=k)
                try:
                    digits, _ = read_number(models["mnist-cnn"], decode_image(photo))
                except ArgumentError:
                    continue
                right += digits == "".join(str(d) for d in y_test[pick])
            print(f"| {level} | {right / args.numbers:.0%} |")


if __name__ == "__main__":
    main()
