"""The command line under hostile arguments: sizes are bounded before anything is loaded or
allocated, a model file and --pretrained are not both taken, only regular files are read,
saves leave no temporary files behind, and no argument ends in a traceback."""

from __future__ import annotations

import argparse
import builtins
import contextlib
import io
import os
import socket
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from barenet import architectures, plots
from barenet.cli import build_parser, main
from barenet.datasets import commands as data_commands
from barenet.datasets import mnist as mnist_module
from barenet.datasets.specs import get_spec
from barenet.files import atomic_write
from barenet.train import MAX_PARAMS, TrainOptions, count_params


def fake_arrays(spec, data_dir=None, refresh=False):
    """A tiny stand-in for a dataset (64 training and 20 test images), so that commands
    which train or evaluate finish at once."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(64) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(20) % 10).astype(np.uint8),
    }


def fake_describe(spec):
    """``data info`` without hashing the real cache."""
    return {"name": spec.name, "title": spec.title, "path": "nowhere", "present": False}


@pytest.fixture
def tiny_data(monkeypatch):
    monkeypatch.setattr(mnist_module, "load_arrays", fake_arrays)
    monkeypatch.setattr(data_commands, "load_arrays", fake_arrays)
    monkeypatch.setattr(data_commands, "describe", fake_describe)
    monkeypatch.setattr(plots, "available", lambda: False)


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a dataset is touched: the options must be refused before."""

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the options were checked")

    monkeypatch.setattr(mnist_module, "load_arrays", refuse)


def save_picture(path: Path) -> None:
    """A dark stroke on white paper: a picture ``predict`` accepts."""
    pixels = np.full((28, 28), 255, np.uint8)
    pixels[4:24, 13:15] = 0
    Image.fromarray(pixels).save(path)


@contextlib.contextmanager
def inside(folder: str):
    """Work in ``folder`` for a while (contextlib.chdir is Python 3.11+)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def refused(argv: list[str], *needles: str) -> str:
    code, _, err = run(argv)
    err = err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err and err.startswith("barenet")
    for needle in needles:
        assert needle in err, err
    return err


# ---- sizes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (["--hidden", "1000000000"], ["hidden", "at most 65,536"]),
        (["--hidden", "60000,60000"], ["3,647,760,010 parameters", f"{MAX_PARAMS:,}"]),
        (["--model", "cnn", "--hidden", "50000"], ["parameters", "limit"]),
        (["--hidden", ",".join(["2"] * 65)], ["at most 64 layers"]),
        (["--epochs", str(10**30)], ["epochs must be at most 10,000"]),
        (["--batch-size", "99999999999999"], ["batch_size must be at most 65,536"]),
        (["--seed", str(2**64)], ["seed must be at most"]),
        (["--limit", str(10**25)], ["limit must be at most"]),
        (["--val-split", "1e300"], ["val_split", "up to 10,000,000"]),
    ],
)
def test_oversized_options_are_refused_before_loading(no_loading, options, needles):
    refused(["train", "--quiet", *options], *needles)


def test_demo_epochs_are_bounded_too(no_loading):
    refused(["demo", "--epochs", str(10**30)], "epochs must be at most")


@pytest.mark.parametrize(
    ("option", "value"), [("--samples", "99999999999999"), ("--batch-size", str(10**20))]
)
def test_doctor_sizes_are_bounded(no_loading, option, value):
    # --samples 99999999999999 checked every weight by finite differences: hours
    refused(["doctor", "--pretrained", "mnist-mlp", option, value], "must be at most")


@pytest.mark.parametrize("batch", ["²", "0", "1" * 5000, "-1"])
def test_export_batch_sizes_that_int_cannot_read(tmp_path, batch):
    argv = ["export", "--pretrained", "mnist-mlp", str(tmp_path / "m.onnx"), "--batch", batch]
    refused(argv, "batch must be 'dynamic' or a positive integer")


@pytest.mark.parametrize(
    ("model", "hidden"), [("mlp", (512, 256)), ("mlp", (3,)), ("cnn", (128,)), ("cnn", (9, 4))]
)
def test_parameter_count_matches_the_built_network(model, hidden):
    options = TrainOptions(model=model, hidden=hidden)
    built = architectures.build(model, hidden=hidden, dropout=0.1, seed=0)
    assert count_params(options, (28, 28), 10) == built.num_params


# ---- one model at a time -----------------------------------------------------------------
def test_a_model_file_and_pretrained_are_not_both_taken(tmp_path, tiny_data):
    model = architectures.mlp((4,), dropout=0, seed=0)
    model.compile()
    path = str(model.save(tmp_path / "mine.npz"))
    picture = tmp_path / "seven.png"
    save_picture(picture)
    pretrained = ["--pretrained", "mnist-mlp"]
    refused(["evaluate", path, *pretrained], "not both", "mine.npz", "mnist-mlp")
    refused(["predict", *pretrained, path, str(picture)], "not both", "mine.npz")
    refused(["doctor", path, *pretrained], "not both", "mine.npz")
    # each alone is fine
    assert run(["evaluate", path, "--dataset", "mnist"])[0] == 0
    assert run(["predict", *pretrained, str(picture)])[0] == 0


# ---- what a path may be ------------------------------------------------------------------
@pytest.fixture
def special_files(tmp_path, monkeypatch):
    """A FIFO, a directory, a socket and a character device, none of which may be opened."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    short = Path(tempfile.mkdtemp(prefix="bn"))  # socket paths must be short
    sock_path = short / "s.png"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    paths = {
        "FIFO": fifo,
        "directory": folder,
        "socket": sock_path,
        "character device": "/dev/zero",
    }
    banned = {os.fspath(p) for p in paths.values()}
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            assert os.fspath(file) not in banned, f"{file} was opened"
        return real_open(file, *args, **kwargs)

    def guarded_os_open(path, *args, **kwargs):
        assert os.fspath(path) not in banned, f"{path} was opened"
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    yield paths
    server.close()
    sock_path.unlink()
    short.rmdir()


def test_predict_reads_regular_files_only(special_files):
    for kind, path in special_files.items():
        argv = ["predict", "--pretrained", "mnist-mlp", str(path)]
        refused(argv, str(path), f"not a regular file (a {kind})")
        refused(["evaluate", str(path)], "model file", "not a regular file")


def test_pictures_over_the_size_limit_are_not_read(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 101)
    monkeypatch.setattr("barenet.cli.MAX_FILE_BYTES", 100)
    refused(["predict", "--pretrained", "mnist-mlp", str(big)], "big.png", "limit of 100 bytes")


# ---- saves -----------------------------------------------------------------------------------
def test_a_save_removes_temporary_files_of_killed_saves(tmp_path):
    target = tmp_path / "model.npz"
    orphan = tmp_path / ".model.npz.k9_x2abc.tmp"  # as mkstemp names them (8 characters)
    orphan.write_bytes(b"half a model")
    other = tmp_path / ".model.npz.backup.tmp"  # not a name atomic_write makes
    other.write_bytes(b"keep")
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert not orphan.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.npz.backup.tmp", "model.npz"]


def test_a_save_leaves_the_temporary_file_of_a_live_save_alone(tmp_path):
    import fcntl

    live = tmp_path / ".model.npz.abcdefgh.tmp"
    with open(live, "wb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # as atomic_write holds its own
        atomic_write(tmp_path / "model.npz", lambda g: g.write(b"new"))
        assert live.exists()


def test_the_directory_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def record(fd):
        info = os.fstat(fd)
        synced.append((stat.S_ISDIR(info.st_mode), info.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", record)
    atomic_write(tmp_path / "a" / "model.npz", lambda f: f.write(b"x"))
    folder = os.stat(tmp_path / "a").st_ino
    assert synced[-1] == (True, folder)  # the file first, then its directory
    assert synced[0][0] is False


# ---- every command, hostile arguments ------------------------------------------------------
# Hostile values, by the option's type; a command line gets at most two of them and
# ordinary values elsewhere, so that it gets past the first check into the command.
INTS = ["0", "-1", "1" + "0" * 30, "99999999999999", str(2**63), "nan", "inf", "", "²"]
INTS += ["1e3", "2.5", "0x10"]
FLOATS = ["0", "-0.1", "1", "nan", "inf", "-inf", "1e308", "1e-320", "", "٣", "²"]
WIDTHS = ["0", "-1", "1000000000", "2,", "", "nan", "65536,65536", "1" * 40, "²"]
PATHS = ["{missing}", "{folder}", "{fifo}", "{picture}", "{model}", "{new}/x.npz", "/dev/zero"]
TEXTS = ["", "nan", "x", "-1", "0", "²", "1" + "0" * 30, *PATHS]
# Ordinary values: unicode digits among them, which int() and float() read as digits.
FINE = {int: ["2", "１", " 3 ", "1_0"], float: ["0.1", "0.5", "٠.٥", "1e-3"]}
FINE_INT = {"epochs": ["1", "١", "１"], "limit": ["20", "٤٠", "3_0"]}
FINE_TEXT = {
    "dataset": ["mnist", "fashion"],
    "model": ["mlp", "cnn"],
    "optimizer": ["adam", "sgd", "rmsprop"],
    "schedule": ["cosine", "constant"],
    "hidden": ["2", "3,2", "١"],
    "batch": ["dynamic", "2"],
}
SKIPPED = {"serve"}  # starts a server: covered by the web tests
ALWAYS = {"--epochs"}  # never the default 20: keeps the training commands short


def values(action: argparse.Action, hostile: bool) -> st.SearchStrategy[str]:
    if action.choices is not None:
        fine = list(map(str, action.choices))
        return st.sampled_from(["", "x", "mnist-mlp "] if hostile else fine)
    if action.type in (int, float):
        if hostile:
            return st.sampled_from(INTS if action.type is int else FLOATS)
        return st.sampled_from(FINE_INT.get(action.dest, FINE[action.type]))
    if hostile:
        return st.sampled_from(WIDTHS if action.dest == "hidden" else TEXTS)
    return st.sampled_from(FINE_TEXT.get(action.dest, ["{new}/out", "{folder}"]))


def positionals(action: argparse.Action, hostile: bool) -> st.SearchStrategy[list[str]]:
    if action.choices is not None:
        return st.lists(values(action, hostile), max_size=1)
    if hostile:
        return st.lists(st.sampled_from(PATHS), min_size=1, max_size=3)
    fine = [["{model}"], ["{picture}"], ["{model}", "{picture}"], ["{model}", "{new}/m.onnx"]]
    return st.sampled_from(fine if action.nargs == "+" else [[], ["{model}"]])


@st.composite
def command_lines(draw, parser: argparse.ArgumentParser | None = None) -> list[str]:
    """argv for a real command, built from its parser's own options: at most two of them
    hostile, the others left out or given ordinary values."""
    parser = parser or build_parser()
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    hostile = draw(st.sets(st.sampled_from(range(len(actions))), max_size=2)) if actions else set()
    argv: list[str] = []
    for i, action in enumerate(actions):
        if isinstance(action, argparse._SubParsersAction):
            names = sorted(set(action.choices) - SKIPPED)
            name = draw(st.sampled_from(names))
            return [*argv, name, *draw(command_lines(action.choices[name]))]
        if not action.option_strings:  # model files, pictures, a dataset name
            argv += draw(positionals(action, i in hostile))
            continue
        if i in hostile or set(action.option_strings) & ALWAYS or draw(st.booleans()):
            argv.append(action.option_strings[-1])
            if action.nargs != 0:
                argv.append(draw(values(action, i in hostile)))
    return argv


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(argv=command_lines())
def test_hostile_command_lines_end_cleanly(tiny_data, argv):
    with tempfile.TemporaryDirectory() as d, inside(d):
        root = Path(d)
        os.mkfifo(root / "fifo.png")
        (root / "folder").mkdir()
        save_picture(root / "picture.png")
        model = architectures.mlp((3,), dropout=0, seed=0)
        model.compile()
        model.save(root / "model.npz")
        places = {"missing": "gone.npz", "folder": "folder", "fifo": "fifo.png"}
        places.update({"picture": "picture.png", "model": "model.npz", "new": "new"})
        argv = [a.format(**{k: str(root / v) for k, v in places.items()}) for a in argv]
        code, out, err = run(argv)  # inside the folder: default run folders land there
    assert code in (0, 1, 2), (argv, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2 or (code == 1 and err.strip()):  # refused: one barenet line says why
        assert err.strip().splitlines()[-1].startswith("barenet"), (argv, err)
    if code == 1 and not err.strip():  # an answer, not an error: a doctor's report with
        assert out.strip(), argv  # errors in it, or a picture with nothing to read
