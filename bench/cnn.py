"""Side-by-side CNN benchmark: barenet vs PyTorch CPU (2 threads), same network.

The network is ``barenet.architectures.cnn`` (conv 32 - pool - conv 64 - pool - conv 128 - pool -
dense 128 - dense 10, each conv followed by batch norm, the pool, then ReLU); PyTorch gets a twin
with the same initial weights, the same optimizer (Adam, lr 1e-3), batch size and data.
The libraries take turns in one process, epoch by epoch, so a slow moment of the shared
machine hits both. After each epoch both are scored on the test set. Writes
bench/results/cnn.md (and cnn.json).

    .venv/bin/python bench/cnn.py [--dataset mnist] [--epochs 3] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from floor import conv_flops, sgemm_gflops  # bench/ is on sys.path when a script here runs
from machine import describe
from mlp import barenet_epoch, torch_epoch

import barenet as bn
from barenet import parallel
from barenet.architectures import cnn
from barenet.datasets import load, scale
from barenet.pretrained import PRETRAINED, available, path_of

RESULTS = Path(__file__).parent / "results"
THREADS = 2


def torch_twin(model: bn.Sequential) -> tuple[torch.nn.Sequential, torch.optim.Optimizer]:
    """A torch.nn.Sequential with the same layers and weights, and its Adam."""
    mods: list[torch.nn.Module] = []
    for layer in model.layers:
        p = {k: torch.from_numpy(v.copy()) for k, v in layer.params.items()}
        if isinstance(layer, bn.Conv2D):
            m: torch.nn.Module = torch.nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
            )
        elif isinstance(layer, bn.BatchNorm):
            m = torch.nn.BatchNorm2d(layer.num_features)
        elif isinstance(layer, bn.Dense):
            m = torch.nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, bn.MaxPool2D):
            m = torch.nn.MaxPool2d(layer.kernel_size)
        elif isinstance(layer, bn.Dropout):
            m = torch.nn.Dropout(layer.rate)
        else:
            m = {"ReLU": torch.nn.ReLU, "Flatten": torch.nn.Flatten}[type(layer).__name__]()
        with torch.no_grad():
            for name, value in p.items():
                getattr(m, name).copy_(value)
        mods.append(m)
    net = torch.nn.Sequential(*mods)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3)


def torch_accuracy(net, x, y) -> float:
    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred.numpy() == y).mean())


def layer_times(model: bn.Sequential, x: np.ndarray, y: np.ndarray, reps: int = 15) -> list:
    """Median milliseconds of each layer's forward and backward pass on one training batch
    (the first layer computes only its parameter gradients, and BLAS runs on one thread
    beside barenet's pool, as in ``fit``)."""
    layers, loss = model.layers, bn.CrossEntropy()
    times = np.zeros((reps, len(layers), 2))
    with parallel.blas_on_one_thread():
        for r in range(reps):
            time_batch(layers, loss, x, y, times[r])
    med = np.median(times, axis=0) * 1000
    return [
        [type(layer).__name__, float(f), float(b)]
        for layer, (f, b) in zip(layers, med, strict=True)
    ]


def time_batch(layers: list, loss: bn.CrossEntropy, x: np.ndarray, y: np.ndarray, times) -> None:
    """Seconds of each layer's forward and backward pass, into ``times`` (layers, 2)."""
    out = x
    for i, layer in enumerate(layers):
        start = time.perf_counter()
        out = layer.forward(out, training=True)
        times[i, 0] = time.perf_counter() - start
    loss.forward(out, y)
    grad = loss.backward()
    for i in reversed(range(len(layers))):
        start = time.perf_counter()
        if i == 0:
            layers[0].param_backward(grad)
        else:
            grad = layers[i].backward(grad)
        times[i, 1] = time.perf_counter() - start


def run(dataset: str, epochs: int, batch_size: int, limit: int | None) -> dict:
    (x, y), (xt, yt) = load(dataset)
    x, xt = scale(x)[:limit], scale(xt)
    y, yt = y[:limit].astype(np.int64), yt.astype(np.int64)
    model = cnn(seed=0)
    model.compile("cross_entropy", bn.Adam(lr=1e-3))
    net, opt = torch_twin(model)
    tx, ty, txt = (torch.from_numpy(a) for a in (x[:, None], y, xt[:, None]))
    # Warm-up on a few batches (allocators, thread pools), not timed.
    barenet_epoch(model, x[: 4 * batch_size], y[: 4 * batch_size], batch_size, 99)
    torch_epoch(net, opt, tx[: 4 * batch_size], ty[: 4 * batch_size], batch_size, 99)
    rows = []
    rate = sgemm_gflops()
    for epoch in range(epochs):
        ours = barenet_epoch(model, x, y, batch_size, epoch)
        theirs = torch_epoch(net, opt, tx, ty, batch_size, epoch)
        row = {
            "epoch": epoch + 1,
            "barenet_s": ours,
            "torch_s": theirs,
            "ratio": ours / theirs,
            "barenet_test_accuracy": float(np.mean(model.predict(xt) == yt)),
            "torch_test_accuracy": torch_accuracy(net, txt, yt),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    layers = layer_times(model, x[:batch_size], y[:batch_size])
    # conv 1->32 at 28x28, 32->64 at 14x14, 64->128 at 7x7; dense 1152-128-10
    flop = conv_flops([(1, 32, 28, 28), (32, 64, 14, 14), (64, 128, 7, 7)], [1152, 128, 10], len(x))
    return {
        "flop": flop,
        "sgemm_gflops": max(rate, sgemm_gflops()),
        "described": describe(),
        "layers": layers,
        "dataset": dataset,
        "train_images": len(x),
        "batch_size": batch_size,
        "params": model.num_params,
        "epochs": rows,
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "min_ratio": min(r["ratio"] for r in rows),
        "max_ratio": max(r["ratio"] for r in rows),
        "machine": f"{platform.processor() or platform.machine()}, {THREADS} threads",
        "numpy": np.__version__,
        "torch": torch.__version__,
    }


def markdown(result: dict, command: str) -> str:
    lines = [
        "## CNN: barenet vs PyTorch CPU",
        "",
        f"`barenet.architectures.cnn()` ({result['params']:,} parameters), "
        f"{result['dataset']}, {result['train_images']:,} training images, batch "
        f"{result['batch_size']}, Adam lr 1e-3, same initial weights; PyTorch "
        f"{result['torch']} with `torch.set_num_threads({THREADS})`, NumPy {result['numpy']}; "
        "epochs alternate between the two in one process on a shared 2-core CPU.",
        "",
        "| epoch | barenet s | PyTorch s | ratio | barenet test acc | PyTorch test acc |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["epochs"]:
        lines.append(
            f"| {r['epoch']} | {r['barenet_s']:.1f} | {r['torch_s']:.1f} | {r['ratio']:.2f} | "
            f"{r['barenet_test_accuracy']:.2%} | {r['torch_test_accuracy']:.2%} |"
        )
    floor = result["flop"] / result["sgemm_gflops"] / 1e9
    m = result["described"]
    lines += [
        "",
        f"Median ratio (barenet / PyTorch): **{result['median_ratio']:.2f}** "
        f"({result['min_ratio']:.2f}–{result['max_ratio']:.2f}), on {m['cpu']} "
        f"({m['cores']} cores, {m['kernels']} kernels), {m['date']}.",
        "",
        f"Arithmetic floor: the epoch's convolution and dense products are "
        f"{result['flop'] / 1e12:.2f} TFLOP (forward, weight and input gradients), "
        f"{floor:.1f} s at the {result['sgemm_gflops']:.0f} GFLOP/s NumPy's BLAS reaches on "
        f"2048x2048 products; barenet's median epoch is "
        f"{statistics.median(r['barenet_s'] for r in result['epochs']) / floor:.1f}x that.",
        "",
    ]
    lines += [
        f"Where barenet's time goes: median ms per layer for one batch of "
        f"{result['batch_size']} (fit adds the loss and the Adam step).",
        "",
        "| layer | forward ms | backward ms |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {f:.1f} | {b:.1f} |" for name, f, b in result["layers"]]
    total = sum(f + b for _, f, b in result["layers"])
    lines += [f"| **total** | | **{total:.1f}** |", ""]
    lines += [f"Command: `{command}`", ""]
    lines += [
        "## Shipped CNN weights",
        "",
        "Trained by `barenet train` (validation: the last 10% of the training set; the test",
        "set is read once, after training); accuracy on the full 10,000-image test sets.",
        "",
        "| name | test accuracy | file size | command |",
        "|---|---:|---:|---|",
    ]
    for name, entry in PRETRAINED.items():
        if name.endswith("-cnn") and name in available():
            size = path_of(name).stat().st_size / 1e6
            lines.append(
                f"| {name} | {entry.test_accuracy:.2%} | {size:.2f} MB | `{entry.command}` |"
            )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    args = p.parse_args()
    torch.set_num_threads(THREADS)
    result = run(args.dataset, args.epochs, args.batch_size, args.limit)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cnn.json").write_text(json.dumps(result, indent=2) + "\n")
    command = ".venv/bin/python bench/cnn.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None
    )
    (RESULTS / "cnn.md").write_text(markdown(result, command))
    print(markdown(result, command))


if __name__ == "__main__":
    main()
