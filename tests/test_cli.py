"""The ``barenet`` command line, called in-process through ``main``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from barenet import load_model, report
from barenet.cli import build_parser, main, train_options
from barenet.datasets import FASHION_CLASSES
from barenet.options import TrainOptions

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, mnist):
    """One short real training run: 5000 MNIST images, 2 epochs."""
    out = tmp_path_factory.mktemp("run") / "mnist-small"
    argv = ["train", "--dataset", "mnist", "--limit", "5000", "--epochs", "2"]
    argv += ["--hidden", "128", "--seed", "1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    return out


def test_train_learns_and_summarises(run_dir, capsys):
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epochs"] == [1, 2]
    assert len(history["history"]["val_accuracy"]) == 2
    assert history["test"]["accuracy"] > 0.85  # chance is 0.10
    assert history["options"]["hidden"] == [128]


def test_train_writes_every_artefact(run_dir):
    model = load_model(run_dir / "model.npz")
    assert model.metadata["dataset"] == "mnist"
    assert model.metadata["classes"] == [str(d) for d in range(10)]
    assert model.predict(np.zeros((1, 28, 28), np.float32)).shape == (1,)
    for name in ("curves.png", "confusion.png", "mistakes.png"):
        with Image.open(run_dir / name) as picture:
            picture.load()  # decodes every pixel
            assert picture.format == "PNG" and min(picture.size) > 100
    report = (run_dir / "report.md").read_text()
    assert "test accuracy" in report and "barenet train --dataset mnist" in report
    assert "![Most confidently wrong test images](mistakes.png)" in report


def test_summary_goes_to_stdout(tmp_path, capsys):
    argv = ["train", "--dataset", "fashion", "--limit", "1000", "--epochs", "1"]
    argv += ["--hidden", "16", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for field in ("test accuracy", "test loss", "s per epoch", "parameters   ", "run folder"):
        assert field in out
    assert "12,730" in out  # 784*16 + 16 + 16*10 + 10 parameters
    # a Fashion-MNIST model names garments, and reads pictures the Fashion-MNIST way
    photo = np.full((120, 100), 220, np.uint8)
    photo[10:110, 20:80] = 30
    Image.fromarray(photo).save(tmp_path / "garment.png")
    assert main(["predict", str(tmp_path / "r" / "model.npz"), str(tmp_path / "garment.png")]) == 0
    line = capsys.readouterr().out.strip().split(": ", 1)[1]
    answers = line.removesuffix(" (low confidence)").split(", ")
    assert len(answers) == 3
    assert all(a.rsplit(" ", 1)[0] in FASHION_CLASSES for a in answers)


def test_evaluate_prints_accuracy_report_and_confusion(run_dir, capsys):
    assert main(["evaluate", str(run_dir / "model.npz")]) == 0
    out = capsys.readouterr().out
    history = json.loads((run_dir / "history.json").read_text())
    assert f"accuracy  {history['test']['accuracy']:.2%}" in out
    assert "precision  recall" in out and "macro avg" in out
    assert "true/predicted" in out
    assert len([line for line in out.splitlines() if line[:1].isdigit()]) == 20


def test_predict_prints_top3(run_dir, tmp_path, capsys):
    img = np.full((90, 60), 255, np.uint8)
    img[10:80, 27:34] = 0  # a dark vertical stroke on white paper: a "1"
    path = tmp_path / "one.png"
    Image.fromarray(img).save(path)
    assert main(["predict", str(run_dir / "model.npz"), str(path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}: 1 ")
    assert line.count("%") == 3


def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("barenet")
    for needle in needles:
        assert needle in err
    return err


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["train", "--dataset", "cifar"], ["cifar"]),
        (["train", "--lr", "-0.1"], ["lr", "-0.1"]),
        (["train", "--epochs", "0"], ["epochs", "0"]),
        (["train", "--hidden", "512,x"], ["--hidden", "512,x"]),
        (["train", "--optimizer", "lbfgs"], ["optimizer", "lbfgs"]),
        (["train", "--schedule", "wavy"], ["schedule", "wavy"]),
        (["train", "--dropout", "1.5"], ["dropout", "1.5"]),
        (["train", "--shift", "9"], ["shift", "9"]),
        (["train", "--lr", "abc"], ["--lr", "abc"]),
        (["fly"], ["fly"]),
        ([], ["COMMAND"]),
        (["evaluate"], ["MODEL.npz", "--pretrained"]),
        (["evaluate", "--pretrained", "imagenet"], ["imagenet"]),
    ],
)
def test_bad_options_are_one_line_and_exit_2(capsys, argv, needles):
    _one_line_error(capsys, argv, *needles)


def test_train_refuses_an_out_path_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("")
    argv = ["train", "--limit", "500", "--epochs", "1", "--out", str(f), "--quiet"]
    _one_line_error(capsys, argv, "taken", "folder")


def test_missing_and_foreign_model_files(tmp_path, capsys):
    _one_line_error(capsys, ["evaluate", str(tmp_path / "none.npz")], "none.npz", "no such")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    _one_line_error(capsys, ["evaluate", str(foreign)], "foreign.npz", "not a barenet model")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    _one_line_error(capsys, ["predict", str(text), "x.png"], "text.npz")


def test_unreadable_image(run_dir, tmp_path, capsys):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG but not really")
    model = str(run_dir / "model.npz")
    _one_line_error(capsys, ["predict", model, str(bad)], "scan.png", "not a readable picture")
    _one_line_error(capsys, ["predict", model, str(tmp_path / "gone.png")], "gone.png")
    _one_line_error(capsys, ["predict", model], "picture")


def test_demo_trains_both_datasets_and_prints_a_table(tmp_path, capsys, mnist, fashion):
    argv = ["demo", "--epochs", "1", "--limit", "2000", "--runs", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["dataset", "test", "accuracy"]
    assert lines[1].startswith("MNIST ") and lines[2].startswith("Fashion-MNIST ")
    for line, folder in zip(lines[1:3], ("mnist-mlp", "fashion-mlp"), strict=True):
        assert line.endswith(str(tmp_path / folder))
        assert float(line.split()[1].rstrip("%")) > 50
        assert (tmp_path / folder / "model.npz").is_file()
    both = float(lines[3].split()[1])
    assert lines[3].startswith("both ")
    assert both == pytest.approx(sum(float(line.split()[2]) for line in lines[1:3]), abs=0.11)


def test_help_exits_cleanly(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_train_flags_are_the_fields_of_train_options():
    """One definition: every TrainOptions field is a flag with the field's default, and a
    run's report repeats it as a command line that parses back to the same options."""
    parser = build_parser()
    assert train_options(parser.parse_args(["train"])) == TrainOptions()
    flags = {a.dest for a in parser._subparsers._group_actions[0].choices["train"]._actions}
    assert {f.name for f in dataclasses.fields(TrainOptions)} <= flags
    options = TrainOptions(
        dataset="fashion", hidden=(64, 32), val_split=5000, limit=900, weight_decay=0.01
    )
    command = report._command(options).split()
    assert command[:2] == ["barenet", "train"] and "--weight-decay" in command
    assert train_options(parser.parse_args(command[1:])) == options
