"""The shipped networks: their accuracy, their size, and the commands that made them."""

from __future__ import annotations

import shlex

import pytest

from barenet.cli import build_parser, main, train_options
from barenet.datasets import scale
from barenet.errors import ArgumentError
from barenet.metrics import accuracy
from barenet.pretrained import PRETRAINED, available, load_pretrained, path_of

TARGETS = {"mnist-mlp": 0.992, "fashion-mlp": 0.905}


def test_every_shipped_network_is_installed():
    assert set(TARGETS) <= set(PRETRAINED)
    assert sorted(available()) == sorted(PRETRAINED)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_weights_reach_their_targets(name, request):
    entry = PRETRAINED[name]
    (_, _), (x_test, y_test) = request.getfixturevalue(entry.dataset)
    model = load_pretrained(name)
    measured = accuracy(y_test, model.predict(scale(x_test)))
    assert measured >= TARGETS[name]
    # the table (and the README) state what the file really does
    assert measured == pytest.approx(entry.test_accuracy, abs=5e-5)
    assert model.metadata["dataset"] == entry.dataset


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_files_are_small_and_commands_match_the_weights(name):
    assert path_of(name).stat().st_size < 5_000_000
    entry = PRETRAINED[name]
    words = shlex.split(entry.command)
    assert words[:2] == ["barenet", "train"]
    options = train_options(build_parser().parse_args(words[1:]))
    # the saved model records the options it was trained with: the command repeats them
    assert load_pretrained(name).metadata["options"] == options.to_dict()


def test_evaluate_pretrained_from_the_command_line(capsys, mnist):
    assert main(["evaluate", "--pretrained", "mnist-mlp"]) == 0
    out = capsys.readouterr().out
    assert f"accuracy  {PRETRAINED['mnist-mlp'].test_accuracy:.2%}" in out


def test_predict_reads_enlarged_dark_on_light_digits(tmp_path, capsys, mnist):
    Image = pytest.importorskip("PIL.Image")
    (_, _), (x_test, y_test) = mnist
    paths = []
    for i in range(8):
        big = Image.fromarray(255 - x_test[i]).resize((140, 196), Image.BILINEAR)
        paths.append(tmp_path / f"digit{i}.png")
        big.save(paths[-1])
    assert main(["predict", "--pretrained", "mnist-mlp", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    top = [int(line.split(": ")[1].split()[0]) for line in lines]
    assert top == y_test[:8].tolist()


def test_unknown_names_are_refused():
    with pytest.raises(ArgumentError, match="pretrained must be one of"):
        load_pretrained("imagenet-resnet")
