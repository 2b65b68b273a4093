"""Write BENCHMARKS.md from bench/results/ (mlp-<kernels>.json, one per OpenBLAS kernel
family measured, and the sections other scripts write).

.venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE.parent / "BENCHMARKS.md"


def span(s: dict, fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def floor_rate(r: dict) -> float:
    """The SGEMM GFLOP/s a run measured (the better of its start and end)."""
    return max(r["sgemm_gflops"])


def times_floor(seconds: float, flop: float, rate: float) -> str:
    return f"{seconds / (flop / rate / 1e9):.2f}x"


def family_label(r: dict) -> str:
    m = r["machine"]
    forced = m.get("coretype")
    return f"{m['kernels']} (forced by OPENBLAS_CORETYPE)" if forced else f"{m['kernels']} (native)"


def mlp_section(runs: list[dict]) -> list[str]:
    r = runs[0]
    m, rate = r["machine"], floor_rate(r)
    lines = [
        "## MLP: barenet vs PyTorch CPU vs scikit-learn",
        "",
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"NumPy {m['numpy']} ({'; '.join(m['numpy_blas'])}), PyTorch {m['torch']} "
        f"({m['torch_threads']} threads). Command: `make bench` "
        "(`.venv/bin/python bench/mlp.py`, again under the second kernel family, then "
        "`.venv/bin/python bench/report.py`).",
        "",
        "Same architecture (ReLU between Dense layers), same initial weights, Adam (lr 1e-3), "
        "cross-entropy, same data (float32 in [0, 1]); the libraries take turns epoch by "
        f"epoch in one process, {r['reps']} timed epochs each after one warm-up epoch. "
        "Values are medians with min–max; the ratio is barenet / PyTorch taken pair by pair "
        "(lower is faster).",
        "",
        f"**Arithmetic floor.** NumPy's BLAS multiplies two 2048x2048 float32 matrices at "
        f"{rate:.0f} GFLOP/s here ({m['kernels']} kernels, "
        f"{m['numpy_blas'][0].rsplit('(', 1)[-1].rstrip(')')}; `bench/floor.py`). A "
        "workload's floor is its matrix-product FLOPs at that rate; *x floor* is barenet's "
        "time over it (1.00x would be products only, at peak).",
        "",
        "### Seconds per training epoch (60,000 images)",
        "",
        "| dataset | network | batch | barenet s | PyTorch s | ratio | floor s | barenet x floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["epoch"]:
        floor = row["flop"] / rate / 1e9
        lines.append(
            f"| {row['dataset']} | {row['shape']} | {row['batch']} | {span(row['barenet'])} "
            f"| {span(row['torch'])} | **{row['ratio']['median']:.2f}x** "
            f"({row['ratio']['min']:.2f}–{row['ratio']['max']:.2f}) | {floor:.3f} "
            f"| {row['barenet']['median'] / floor:.2f}x |"
        )
    if r.get("target"):
        lines += [
            "",
            "### Seconds of training to reach a test accuracy (784-128-10, batch 128)",
            "",
            "Evaluation time is not counted. One run each.",
            "",
            "| dataset | target | barenet: epochs, s | PyTorch: epochs, s |",
            "|---|---|---|---|",
        ]
        for name, t in r["target"].items():
            cells = []
            for lib in ("barenet", "torch"):
                e = t[lib]
                cells.append(
                    "not reached" if e["epochs"] is None else f"{e['epochs']}, {e['seconds']:.1f}"
                )
            lines.append(f"| {name} | {t['target']:.1%} | {cells[0]} | {cells[1]} |")
    inf = r["inference"]
    lines += [
        "",
        "### Inference, images per second (784-512-256-10, probabilities)",
        "",
        "| batch | barenet | PyTorch | barenet / PyTorch (higher is faster) | barenet x floor |",
        "|---|---|---|---|---|",
    ]
    for key, label in INFERENCE:
        e = inf[key]
        per_image = 1 / e["barenet"]["median"]
        lines.append(
            f"| {label} | {span(e['barenet'], '{:,.0f}')} | {span(e['torch'], '{:,.0f}')} "
            f"| **{e['ratio']['median']:.2f}x** ({e['ratio']['min']:.2f}–"
            f"{e['ratio']['max']:.2f}) | {times_floor(per_image, e['flop_per_image'], rate)} |"
        )
    if len(runs) > 1:
        lines += families(runs)
    if "sklearn" in r:
        sk = r["sklearn"]
        lines += [
            "",
            "### scikit-learn MLPClassifier (784-128-10, Adam, batch 128)",
            "",
            "One `partial_fit` call is one epoch.",
            "",
            "| barenet s/epoch | scikit-learn s/epoch | barenet speed-up |",
            "|---|---|---|",
            f"| {span(sk['barenet'])} | {span(sk['sklearn'])} "
            f"| **{sk['speedup']['median']:.2f}x** |",
        ]
    if "rss_mb" in r:
        lines += [
            "",
            "### Peak memory (RSS) training 784-512-256-10 on MNIST for one epoch",
            "",
            "A fresh process per library: load MNIST, scale to float32, train one epoch.",
            "",
            "| barenet | PyTorch |",
            "|---|---|",
            f"| {r['rss_mb']['barenet']:.0f} MB | {r['rss_mb']['torch']:.0f} MB |",
        ]
    return [*lines, ""]


INFERENCE = (("batch10000", "10,000"), ("batch256", "256"), ("batch1", "1"))


def families(runs: list[dict]) -> list[str]:
    """The MNIST ratios under each OpenBLAS kernel family measured."""
    lines = [
        "",
        "### Both OpenBLAS kernel families",
        "",
        "OpenBLAS picks its kernels by CPU; `OPENBLAS_CORETYPE` forces another family on the "
        "same machine (`make bench` runs `bench/mlp.py` a second time that way). MNIST, "
        "ratio barenet / PyTorch (training: lower is faster; inference: higher is faster), "
        "median (min–max), and barenet x floor at that family's own SGEMM rate.",
        "",
        "| work | " + " | ".join(family_label(r) for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    keys = [(row["shape"], row["batch"]) for row in runs[0]["epoch"] if row["dataset"] == "mnist"]
    for shape, batch in keys:
        cells = []
        for r in runs:
            row = next(
                (
                    e
                    for e in r["epoch"]
                    if (e["dataset"], e["shape"], e["batch"]) == ("mnist", shape, batch)
                ),
                None,
            )
            if row is None:
                cells.append("not run")
                continue
            floor = row["flop"] / floor_rate(r) / 1e9
            cells.append(
                f"{row['ratio']['median']:.2f}x ({row['ratio']['min']:.2f}–"
                f"{row['ratio']['max']:.2f}), {row['barenet']['median'] / floor:.2f}x floor"
            )
        lines.append(f"| train {shape}, batch {batch} | " + " | ".join(cells) + " |")
    for key, label in INFERENCE:
        cells = []
        for r in runs:
            e = r["inference"][key]
            cells.append(
                f"{e['ratio']['median']:.2f}x ({e['ratio']['min']:.2f}–{e['ratio']['max']:.2f}), "
                + times_floor(1 / e["barenet"]["median"], e["flop_per_image"], floor_rate(r))
                + " floor"
            )
        lines.append(f"| predict, batch {label} | " + " | ".join(cells) + " |")
    sgemm = " | ".join(f"{floor_rate(r):.0f}" for r in runs)
    lines.append(f"| SGEMM GFLOP/s (2048x2048) | {sgemm} |")
    return lines


#: Markdown sections included after the MLP tables, in this order.
SECTIONS = ("targets.md", "cnn.md", "onnx.md", "threads.md")


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench`; every number below was measured by the command named with it.",
        "The tests never time anything; speed is measured only here.",
        "",
    ]
    runs = [json.loads(p.read_text()) for p in sorted((HERE / "results").glob("mlp-*.json"))]
    runs.sort(key=lambda r: bool(r["machine"].get("coretype")))  # the native family first
    if runs:
        lines += mlp_section(runs)
    # sections written by their own scripts (cnn.py, onnx_infer.py) or by hand (threads)
    for name in SECTIONS:
        section = HERE / "results" / name
        if section.exists():
            lines += [section.read_text().strip(), ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
