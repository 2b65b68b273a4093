"""Write BENCHMARKS.md from bench/results/ (mlp.json, and cnn.md when present).

.venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE.parent / "BENCHMARKS.md"


def span(s: dict, fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def mlp_section(r: dict) -> list[str]:
    m = r["machine"]
    lines = [
        "## MLP: barenet vs PyTorch CPU vs scikit-learn",
        "",
        f"Measured {m['date']} on {m['cpu']} ({m['cores']} cores), Python {m['python']}, "
        f"NumPy {m['numpy']} ({'; '.join(m['numpy_blas'])}), PyTorch {m['torch']} "
        f"({m['torch_threads']} threads). Command: `make bench` "
        "(`.venv/bin/python bench/mlp.py && .venv/bin/python bench/report.py`).",
        "",
        "Same architecture (ReLU between Dense layers), same initial weights, Adam (lr 1e-3), "
        "cross-entropy, same data (float32 in [0, 1]); the libraries take turns epoch by "
        f"epoch in one process, {r['reps']} timed epochs each after one warm-up epoch. "
        "Values are medians with min–max; the ratio is barenet / PyTorch taken pair by pair "
        "(lower is faster).",
        "",
        "### Seconds per training epoch (60,000 images)",
        "",
        "| dataset | network | batch | barenet s | PyTorch s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["epoch"]:
        lines.append(
            f"| {row['dataset']} | {row['shape']} | {row['batch']} | {span(row['barenet'])} "
            f"| {span(row['torch'])} | **{row['ratio']['median']:.2f}x** "
            f"({row['ratio']['min']:.2f}–{row['ratio']['max']:.2f}) |"
        )
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
        "| batch | barenet | PyTorch | ratio (barenet / PyTorch, higher is faster) |",
        "|---|---|---|---|",
    ]
    for key, label in (("batch10000", "10,000"), ("batch1", "1")):
        e = inf[key]
        lines.append(
            f"| {label} | {span(e['barenet'], '{:,.0f}')} | {span(e['torch'], '{:,.0f}')} "
            f"| **{e['ratio']['median']:.2f}x** |"
        )
    sk = r["sklearn"]
    lines += [
        "",
        "### scikit-learn MLPClassifier (784-128-10, Adam, batch 128)",
        "",
        "One `partial_fit` call is one epoch.",
        "",
        "| barenet s/epoch | scikit-learn s/epoch | barenet speed-up |",
        "|---|---|---|",
        f"| {span(sk['barenet'])} | {span(sk['sklearn'])} | **{sk['speedup']['median']:.2f}x** |",
        "",
        "### Peak memory (RSS) training 784-512-256-10 on MNIST for one epoch",
        "",
        "A fresh process per library: load MNIST, scale to float32, train one epoch.",
        "",
        "| barenet | PyTorch |",
        "|---|---|",
        f"| {r['rss_mb']['barenet']:.0f} MB | {r['rss_mb']['torch']:.0f} MB |",
        "",
    ]
    return lines


#: Markdown sections included after the MLP tables, in this order.
SECTIONS = ("cnn.md", "onnx.md", "threads.md")


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench`; every number below was measured by the command named with it.",
        "The tests never time anything; speed is measured only here.",
        "",
    ]
    mlp = HERE / "results" / "mlp.json"
    if mlp.exists():
        lines += mlp_section(json.loads(mlp.read_text()))
    # sections written by their own scripts (cnn.py, onnx_infer.py) or by hand (threads)
    for name in SECTIONS:
        section = HERE / "results" / name
        if section.exists():
            lines += [section.read_text().strip(), ""]
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
