"""TrainOptions' newer levers (flip, rotate, erase, label_smoothing, channels, warmup): their
flags, checks, records and parameter counts."""

from __future__ import annotations

import contextlib
import io

import pytest

from barenet import architectures, report
from barenet.cli import build_parser, main, train_options
from barenet.datasets import mnist as mnist_module
from barenet.errors import ArgumentError
from barenet.options import CNN_CHANNELS, TrainOptions, count_params, tighten

#: What a run's record held before these options existed: a run that uses none of them
#: still records exactly these (the shipped networks' files compare equal to their
#: commands' options).
RECORDED = {
    "dataset", "model", "hidden", "dropout", "epochs", "batch_size", "optimizer", "lr",
    "schedule", "decay", "momentum", "weight_decay", "shift", "average_last", "val_split",
    "limit", "seed", "data_dir",
}  # fmt: skip
NEW = {
    "flip": True,
    "rotate": 12.5,
    "erase": 0.25,
    "label_smoothing": 0.1,
    "channels": (16, 32),
    "warmup": 2,
}


def parse(*argv: str) -> TrainOptions:
    return train_options(build_parser().parse_args(["train", *argv]))


def test_flip_is_a_flag_without_a_value():
    assert parse().flip is False and parse("--flip").flip is True
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["train", "--flip", "True"]) == 2
    assert "unrecognized arguments: True" in err.getvalue()


def test_every_new_option_is_a_flag_and_repeats_through_the_report():
    options = parse(
        "--model", "cnn", "--channels", "16,32", "--flip", "--rotate", "12.5", "--erase",
        "0.25", "--label-smoothing", "0.1", "--warmup", "2", "--hidden", "64",
    )  # fmt: skip
    assert options == TrainOptions(model="cnn", hidden=(64,), **NEW)
    command = report._command(options)
    assert "--flip --rotate 12.5" in command and "--channels 16,32" in command
    assert parse(*command.split()[2:]) == options
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for flag in ("--flip", "--rotate DEGREES", "--erase P", "--label-smoothing EPS"):
        assert flag in help_text
    assert "--channels C1,C2,..." in help_text and "--warmup N" in help_text


def test_records_hold_the_new_options_only_when_used():
    assert set(TrainOptions().to_dict()) == RECORDED
    assert set(TrainOptions(shift=1, average_last=3).to_dict()) == RECORDED
    used = TrainOptions(model="cnn", **NEW).to_dict()
    assert set(used) == RECORDED | set(NEW)
    assert used["channels"] == [16, 32] and used["flip"] is True  # JSON values


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"warmup": 20}, r"warmup \(20\) must be less than epochs \(20\)"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"warmup": 1.5}, "warmup must be an integer"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be a number in \[0, 1\)"),
        ({"label_smoothing": -0.1}, "label_smoothing"),
        ({"erase": 1.5}, r"erase must be a number in \[0, 1\]"),
        ({"erase": float("nan")}, "erase must be a number"),
        ({"rotate": 181}, r"rotate must be a number in \[0, 180\]"),
        ({"flip": 1}, "flip must be True or False, got 1"),
        ({"channels": (8,)}, r"channels is for --model cnn only \(the mlp has no convolutions\)"),
        ({"model": "cnn", "channels": ()}, "channels must name at least one layer width"),
        ({"model": "cnn", "channels": (8, 0)}, "channels must be a positive integer, got 0"),
        ({"model": "cnn", "channels": (2,) * 65}, "channels must name at most 64 layers"),
        ({"model": "cnn", "channels": (8, 16, 32, 64, 128)}, "more 2x2 poolings than"),
        ({"model": "cnn", "channels": (4000, 4000)}, "channels 4000,4000 and hidden widths"),
    ],
)
def test_bad_new_options_name_themselves(change, message):
    with pytest.raises(ArgumentError, match=message):
        TrainOptions(**change).check()


def test_channels_with_an_mlp_is_one_line_before_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the options were checked")

    monkeypatch.setattr(mnist_module, "load_arrays", refuse)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["train", "--channels", "16,32", "--epochs", "1", "--quiet"]) == 2
    assert err.getvalue().strip().splitlines() == [
        "barenet: error: channels is for --model cnn only (the mlp has no convolutions)"
    ]


@pytest.mark.parametrize(
    ("channels", "hidden"), [(None, (128,)), ((8,), (16,)), ((4, 4, 8), (3, 2)), ((16, 32), (64,))]
)
def test_parameter_count_with_channels_matches_the_built_network(channels, hidden):
    options = TrainOptions(model="cnn", hidden=hidden, channels=channels)
    widths = {} if channels is None else {"channels": channels}
    built = architectures.cnn(hidden=hidden, seed=0, **widths)
    assert count_params(options, (28, 28), 10) == built.num_params
    assert CNN_CHANNELS == (32, 64, 128)


def test_another_front_end_can_narrow_the_new_bounds():
    assert tighten("label_smoothing", high=0.5) == (0.0, 0.5)
    assert tighten("erase", low=0.1) == (0.1, 1.0)
    assert tighten("warmup", high=5) == (0, 5)
