"""Side-by-side MLP benchmark: barenet vs PyTorch CPU (2 threads) and scikit-learn.

Same architecture, initial weights, optimizer (Adam, lr 1e-3), batch size and data; the
libraries take turns epoch by epoch in one process, so a slow moment of the machine hits
both. Also measures the SGEMM rate that gives each workload its arithmetic floor
(bench/floor.py). Writes bench/results/mlp-<kernels>.json, named by the OpenBLAS kernel
family in use (``OPENBLAS_CORETYPE=Sandybridge`` picks another one); bench/report.py turns
them into BENCHMARKS.md.

    .venv/bin/python bench/mlp.py [--reps 5] [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from floor import mlp_flops, sgemm_gflops  # bench/ is on sys.path when a script here runs
from machine import describe, kernel_family

import barenet as bn
from barenet.datasets import load, scale

RESULTS = Path(__file__).parent / "results"
THREADS = 2


def data(name: str):
    (x, y), (xt, yt) = load(name)
    return (
        scale(x).reshape(len(x), -1),
        y.astype(np.int64),
        scale(xt).reshape(len(xt), -1),
        yt.astype(np.int64),
    )


def barenet_model(sizes: list[int], seed: int = 0) -> bn.Sequential:
    layers: list[bn.Layer] = []
    for a, b in itertools.pairwise(sizes):
        layers += [bn.Dense(a, b), bn.ReLU()]
    model = bn.Sequential(layers[:-1], seed=seed)
    model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=1e-3))
    return model


def torch_twin(model: bn.Sequential):
    """A torch.nn.Sequential with the same weights, and its Adam."""
    mods: list[torch.nn.Module] = []
    for layer in model.layers:
        if isinstance(layer, bn.Dense):
            lin = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.params["weight"]))
                lin.bias.copy_(torch.from_numpy(layer.params["bias"]))
            mods.append(lin)
        else:
            mods.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*mods)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3)


def torch_epoch(net, opt, x, y, batch_size: int, seed: int) -> float:
    """One PyTorch training epoch in random order; returns its seconds."""
    net.train()
    start = time.perf_counter()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def barenet_epoch(model, x, y, batch_size: int, seed: int) -> float:
    start = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=batch_size, seed=seed, verbose=0)
    return time.perf_counter() - start


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def epoch_times(x, y, sizes, batch_size, reps):
    model = barenet_model(sizes)
    net, opt = torch_twin(model)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    barenet_epoch(model, x, y, batch_size, 99)  # warm-up, not timed
    torch_epoch(net, opt, tx, ty, batch_size, 99)
    ours, theirs = [], []
    for r in range(reps):
        ours.append(barenet_epoch(model, x, y, batch_size, r))
        theirs.append(torch_epoch(net, opt, tx, ty, batch_size, r))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {"barenet": summary(ours), "torch": summary(theirs), "ratio": summary(ratios)}


def time_to_target(x, y, xt, yt, sizes, batch_size, target, max_epochs=15):
    """Training seconds (evaluation excluded) until test accuracy >= target."""
    model = barenet_model(sizes)
    net, opt = torch_twin(model)
    tx, ty, txt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xt)
    out = {}
    spent = {"barenet": 0.0, "torch": 0.0}
    done: dict[str, tuple[int, float, float]] = {}
    for epoch in range(max_epochs):
        if "barenet" not in done:
            spent["barenet"] += barenet_epoch(model, x, y, batch_size, epoch)
            acc = float(np.mean(model.predict(xt) == yt))
            if acc >= target:
                done["barenet"] = (epoch + 1, spent["barenet"], acc)
        if "torch" not in done:
            spent["torch"] += torch_epoch(net, opt, tx, ty, batch_size, epoch)
            with torch.inference_mode():
                acc = float((net(txt).argmax(1).numpy() == yt).mean())
            if acc >= target:
                done["torch"] = (epoch + 1, spent["torch"], acc)
        if len(done) == 2:
            break
    for lib in ("barenet", "torch"):
        epochs, seconds, acc = done.get(lib, (None, None, None))
        out[lib] = {"epochs": epochs, "seconds": seconds, "accuracy": acc}
    return out


def inference(xt, sizes, reps):
    """Images per second of predicted probabilities, at batch 10,000, 256 and 1, the
    libraries taking turns round by round; the first round warms up and is dropped."""
    model = barenet_model(sizes)
    net, _ = torch_twin(model)
    batches = {"batch10000": (10000, len(xt)), "batch256": (256, 256 * 39), "batch1": (1, 1000)}
    res = {key: {"barenet": [], "torch": []} for key in batches}
    for _ in range(reps + 1):
        for key, (size, count) in batches.items():
            images = xt[:count]
            t = time.perf_counter()
            for i in range(0, count, size):
                model.predict_proba(images[i : i + size], batch_size=size)
            res[key]["barenet"].append(count / (time.perf_counter() - t))
            with torch.inference_mode():
                ti = torch.from_numpy(images)
                t = time.perf_counter()
                for i in range(0, count, size):
                    net(ti[i : i + size]).softmax(1)
                res[key]["torch"].append(count / (time.perf_counter() - t))
    out = {}
    for key, libs in res.items():
        ours, theirs = libs["barenet"][1:], libs["torch"][1:]
        out[key] = {
            "barenet": summary(ours),
            "torch": summary(theirs),
            "ratio": summary([a / b for a, b in zip(ours, theirs, strict=True)]),
            "flop_per_image": mlp_flops(sizes, 1, train=False),
        }
    return out


def sklearn_epochs(x, y, sizes, batch_size, reps):
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(sizes[1:-1]),
        solver="adam",
        learning_rate_init=1e-3,
        batch_size=batch_size,
        alpha=0.0,
        random_state=0,
    )
    model = barenet_model(sizes)
    classes = np.arange(10)
    clf.partial_fit(x, y, classes=classes)  # warm-up (and initialisation), not timed
    barenet_epoch(model, x, y, batch_size, 99)
    ours, theirs = [], []
    for r in range(reps):
        ours.append(barenet_epoch(model, x, y, batch_size, r))
        t = time.perf_counter()
        clf.partial_fit(x, y)
        theirs.append(time.perf_counter() - t)
    ratios = [b / a for a, b in zip(ours, theirs, strict=True)]
    return {"barenet": summary(ours), "sklearn": summary(theirs), "speedup": summary(ratios)}


RSS_CODE = """
import sys
import numpy as np
from barenet.datasets import load, scale
(x, y), _ = load("mnist")
x, y = scale(x).reshape(len(x), -1), y.astype(np.int64)
sizes = [784, 512, 256, 10]
if sys.argv[1] == "barenet":
    import barenet as bn
    layers = [bn.Dense(784, 512), bn.ReLU(), bn.Dense(512, 256), bn.ReLU(), bn.Dense(256, 10)]
    model = bn.Sequential(layers, seed=0)
    model.compile(loss="cross_entropy", optimizer=bn.Adam(lr=1e-3))
    model.fit(x, y, epochs=1, batch_size=128, seed=0, verbose=0)
else:
    import torch
    torch.set_num_threads(2)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 128):
        idx = perm[i : i + 128]
        loss = torch.nn.functional.cross_entropy(net(tx[idx]), ty[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
# VmHWM, not ru_maxrss: the latter carries the parent's peak across fork and exec.
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]) / 1024)
"""


def peak_rss(lib: str) -> float:
    """Peak resident memory (MB) of a fresh process that loads MNIST, scales it to float32
    and trains 784-512-256-10 for one epoch with only that library imported."""
    out = subprocess.run(
        [sys.executable, "-c", RSS_CODE, lib], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    return {**describe(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def epoch_row(name, x, y, sizes, batch_size, reps) -> dict:
    row = {"dataset": name, "shape": "-".join(map(str, sizes)), "batch": batch_size}
    row.update(epoch_times(x, y, sizes, batch_size, reps))
    row["flop"] = mlp_flops(sizes, len(x), train=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="MNIST, the three rows the targets name, no extras"
    )
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    shapes = [[784, 128, 10], [784, 512, 256, 10]]
    batches = [32, 128, 512]
    results: dict = {"machine": machine(), "reps": args.reps, "epoch": [], "target": {}}
    results["sgemm_gflops"] = [sgemm_gflops()]
    mnist, fashion = data("mnist"), data("fashion")
    sets = (("mnist", mnist),) if args.quick else (("mnist", mnist), ("fashion", fashion))
    runs = [(sizes, bs) for sizes in shapes for bs in batches]
    if args.quick:  # the rows the speed targets name
        runs = [(shapes[0], 128), (shapes[1], 128), (shapes[1], 32)]
    for sizes, bs in runs:
        for name, (x, y, _, _) in sets:
            row = epoch_row(name, x, y, sizes, bs, args.reps)
            print(json.dumps(row), flush=True)
            results["epoch"].append(row)
    results["inference"] = inference(mnist[2], [784, 512, 256, 10], args.reps)
    print(json.dumps(results["inference"]), flush=True)
    if not args.quick:
        for name, (x, y, xt, yt), target in (
            ("mnist", mnist, 0.975),
            ("fashion", fashion, 0.87),
        ):
            res = time_to_target(x, y, xt, yt, [784, 128, 10], 128, target)
            results["target"][name] = {"target": target, **res}
            print(name, json.dumps(res), flush=True)
        results["sklearn"] = sklearn_epochs(*mnist[:2], [784, 128, 10], 128, args.reps)
        print(json.dumps(results["sklearn"]), flush=True)
        results["rss_mb"] = {lib: peak_rss(lib) for lib in ("barenet", "torch")}
        print(json.dumps(results["rss_mb"]), flush=True)
    results["sgemm_gflops"].append(sgemm_gflops())  # again at the end: the better one counts
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"mlp-{kernel_family()}.json"
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
