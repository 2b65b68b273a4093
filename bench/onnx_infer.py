"""Inference speed: barenet vs ONNX Runtime on the same exported shipped networks.

Each shipped network is exported with ``barenet.export.to_onnx`` and both run the test
set's images, prepared as the model's metadata says (pixels / 255), at batch 1 (one
image per call), batch 256 and batch 10,000. The two take turns within each round, so a
slow moment of a shared machine hits both; the first round warms up and is dropped.
Prints images per second (medians, with min-max) and barenet's share of ONNX Runtime's
speed; ``--json PATH`` also writes the numbers. It also checks that both give the same
probabilities (max |difference|) before timing anything.

    .venv/bin/python bench/onnx_infer.py [--models mnist-mlp,mnist-cnn] [--reps 3]
        [--singles 500] [--threads 2] [--json PATH]

ONNX Runtime runs on the CPU with ``--threads`` intra-op threads; barenet uses BLAS's
threads (dense networks) or its own pool with BLAS on one thread (image layers), as it
does everywhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from machine import describe as machine  # bench/ is on sys.path when a script here runs

from barenet.datasets import load, scale
from barenet.export import to_onnx
from barenet.pretrained import PRETRAINED, load_pretrained

BATCHES = (1, 256, 10_000)
MARKDOWN = Path(__file__).parent / "results" / "onnx.md"


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def rate(run, x: np.ndarray, batch: int) -> float:
    """Images per second of ``run(batch_of_x)`` over all of ``x``, ``batch`` at a time."""
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        run(x[i : i + batch])
    return len(x) / (time.perf_counter() - start)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(name: str, reps: int, singles: int, threads: int, folder: Path) -> dict:
    model = load_pretrained(name)
    (_, _), (x_test, _) = load(PRETRAINED[name].dataset)
    x = scale(x_test)
    sess = session(to_onnx(model, folder / f"{name}.onnx"), threads)
    feed = sess.get_inputs()[0].name

    def theirs(xb: np.ndarray) -> np.ndarray:
        return sess.run(None, {feed: xb[:, None]})[0]

    def ours(xb: np.ndarray) -> np.ndarray:
        return model.predict_proba(xb, batch_size=len(xb))

    check = x[:2000]
    diff = float(np.abs(ours(check) - theirs(check)).max())
    result: dict = {"max_abs_difference": diff}
    for batch in BATCHES:
        images = x[:singles] if batch == 1 else x
        times: dict[str, list[float]] = {"barenet": [], "onnxruntime": []}
        for _ in range(reps + 1):
            times["barenet"].append(rate(ours, images, batch))
            times["onnxruntime"].append(rate(theirs, images, batch))
        b, o = times["barenet"][1:], times["onnxruntime"][1:]
        result[f"batch{batch}"] = {
            "barenet": summary(b),
            "onnxruntime": summary(o),
            "ratio": summary([p / q for p, q in zip(b, o, strict=True)]),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PRETRAINED), help="comma-separated names")
    parser.add_argument("--reps", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--singles", type=int, default=500, help="images timed at batch 1")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    results = {
        "command": " ".join(["bench/onnx_infer.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "models": {},
    }
    print(f"{'model':<12} {'batch':>6} {'barenet img/s':>14} {'ORT img/s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            r = measure(name, args.reps, args.singles, args.threads, Path(folder))
            results["models"][name] = r
            for batch in BATCHES:
                row = r[f"batch{batch}"]
                print(
                    f"{name:<12} {batch:>6} {row['barenet']['median']:>14,.0f} "
                    f"{row['onnxruntime']['median']:>12,.0f} {row['ratio']['median']:>6.2f}"
                )
            print(f"{name:<12} max |p_barenet - p_onnxruntime| = {r['max_abs_difference']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    MARKDOWN.write_text(markdown(results))
    print(f"wrote {MARKDOWN}")
    return 0


def markdown(results: dict) -> str:
    """The section bench/report.py puts into BENCHMARKS.md."""
    m = results["machine"]
    blas = "; ".join(m["numpy_blas"])
    lines = [
        "## Inference: barenet vs ONNX Runtime",
        "",
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"NumPy {m['numpy']} ({blas}), ONNX Runtime {results['onnxruntime']} "
        f"(CPUExecutionProvider, {results['threads']} threads). Command: "
        f"`.venv/bin/python {results['command']}`.",
        "",
        "Each shipped network is exported with `barenet.export.to_onnx` and both run the "
        "10,000 test images (batch 1: the first images, one call each); the two take turns "
        "within each round, the first round dropped. Images per second, medians with "
        "min–max; the ratio is barenet / ONNX Runtime taken round by round (higher is "
        "faster). Both give the same probabilities to the difference shown.",
        "",
        "| network | batch | barenet img/s | ONNX Runtime img/s | ratio | max abs difference |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        for batch in BATCHES:
            row = r[f"batch{batch}"]
            b, o, q = row["barenet"], row["onnxruntime"], row["ratio"]
            lines.append(
                f"| {name} | {batch:,} | {b['median']:,.0f} ({b['min']:,.0f}–{b['max']:,.0f}) "
                f"| {o['median']:,.0f} ({o['min']:,.0f}–{o['max']:,.0f}) "
                f"| **{q['median']:.2f}x** ({q['min']:.2f}–{q['max']:.2f}) "
                f"| {r['max_abs_difference']:.1e} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
