"""The guided tour (docs/tour/) runs, and its prose says what its code computes.

The convention, kept simple on purpose (the runner is ``docs/tour/build.py``, which
``make docs`` also uses to redraw the figures):

* every fenced ```python block of a chapter runs, in order, in one namespace per
  chapter, inside ``tmp_path``; figures go to ``tmp_path / "img"`` (through the
  ``BARENET_TOUR_IMG`` variable the chapters read), never over the committed ones;
* a number quoted in the prose is followed by an HTML comment that checks it, hidden
  from the reader: ``97.5%<!-- check: test_acc ± 0.4% -->`` (also ``EXPR -->`` for
  equal, ``EXPR < -->`` / ``EXPR > -->`` for below / above). ``EXPR`` is evaluated
  after the blocks above it ran and compared with the number written just before the
  comment (a ``%`` divides it by 100); a number the code does not give fails the chapter;
* every figure a chapter shows (``![...](img/NAME.png)``) must be written by its code,
  and must be committed in ``docs/tour/img/`` and small (< 100 KB).

The chapters train on documented subsets or for few epochs, so this file runs in about a
minute on a 2-core CPU (BLAS on one thread, see ``docs/tour/build.py``); chapter 9, which
trains nine networks, takes about half of it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

TOUR = Path(__file__).resolve().parent.parent / "docs" / "tour"
_spec = importlib.util.spec_from_file_location("tour_build", TOUR / "build.py")
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
sys.modules["tour_build"] = build  # dataclasses look their module up there
_spec.loader.exec_module(build)

CHAPTERS = build.chapters()


def test_there_are_ten_chapters_and_an_index_linking_them():
    numbers = [f"{i:02d}" for i in range(1, 10)]
    numbers.insert(6, "06b")
    assert [p.name.split("-")[0] for p in CHAPTERS] == numbers
    index = (TOUR / "README.md").read_text(encoding="utf-8")
    for path in CHAPTERS:
        assert f"({path.name})" in index, f"docs/tour/README.md does not link {path.name}"
    readme = (TOUR.parent.parent / "README.md").read_text(encoding="utf-8")
    assert "docs/tour/" in readme


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_and_its_numbers_hold(path, tmp_path):
    result = build.run_chapter(path, tmp_path / "img", tmp_path)
    assert result.blocks >= 2, f"{path.name} has almost no code"
    for name in result.figures:
        committed = TOUR / "img" / name
        assert committed.is_file(), f"{committed} is not committed (run `make docs`)"
        assert committed.stat().st_size < 100_000, f"{committed} is over 100 KB"


def test_every_chapter_quotes_checked_numbers_in_the_current_form():
    for path in CHAPTERS:
        text = path.read_text(encoding="utf-8")
        assert build.CHECK.search(text), f"{path.name} quotes no checked number"
        # A check in the old form, or one that does not parse, would silently be prose.
        assert not build.OLD_CHECK.search(text), f"{path.name} has an old-form check"
        starts = {m.start() for m in build.CHECK_START.finditer(text)}
        parsed = {m.end("pct") for m in build.CHECK.finditer(text)}
        assert starts == parsed, f"{path.name}: a check comment does not parse"


# ---- the runner itself: each of these must fail when the convention is broken ----------


def run(text, tmp_path):
    return build.run_text(text, "chapter.md", tmp_path / "img", tmp_path)


def test_a_check_that_holds_passes_and_percent_means_hundredths(tmp_path):
    text = (
        "```python\nacc = 0.971\nn = 101770\n```\n\n"
        "It is 97%<!-- check: acc ± 0.5% -->, twice is 1.94<!-- check: acc * 2 ± 0.01 -->,\n"
        "with 101,770<!-- check: n --> weights, below 1e-3<!-- check: acc - 0.971 < --> apart,\n"
        "above −1<!-- check: -acc > -->.\n"
    )
    result = run(text, tmp_path)
    assert [(c.line, c.op, c.expected, c.tolerance, c.got) for c in result.checks] == [
        (6, "±", 0.97, 0.005, 0.971),
        (6, "±", 1.94, 0.01, 1.942),
        (7, "=", 101770, 0.0, 101770),
        (7, "<", 1e-3, 0.0, 0.0),
        (8, ">", -1, 0.0, -0.971),
    ]


@pytest.mark.parametrize(
    ("prose", "message"),
    [
        ("About 0.97<!-- check: acc ± 0.01 -->.", r"chapter.md:5: 0.97 \(check: acc ± 0.01\) does"),
        ("About 97%<!-- check: acc ± 1% -->.", r"97% \(check: acc ± 0.01\) does not hold"),
        ("Exactly 0.9<!-- check: acc + 1e-9 -->.", r"0.9 \(check: acc \+ 1e-9 equals it\)"),
        ("Below 0.8<!-- check: acc < -->.", r"0.8 \(check: acc < 0.8\) does not hold"),
        ("Above 0.95<!-- check: acc > -->.", r"does not hold: the code gives 0.9$"),
    ],
)
def test_a_number_the_code_does_not_give_fails(tmp_path, prose, message):
    text = f"```python\nacc = 0.90\n```\n\n{prose}\n"
    with pytest.raises(build.TourError, match=message):
        run(text, tmp_path)


@pytest.mark.parametrize(
    ("prose", "message"),
    [
        ("About `acc ≈ 0.9 ± 0.1`.", "old form of a check"),
        ("About 0.9 <!-- check: acc ± 0.1 -->.", "does not parse"),
        ("About <!-- check: acc ± 0.1 -->.", "does not parse"),
        ("About 0.9<!-- check: acc ± -->.", "does not parse"),
        ("About 90%<!-- check: acc ± 1 -->.", "both in % or neither"),
        ("About 0.9<!-- check: acc ± 1% -->.", "both in % or neither"),
    ],
)
def test_a_check_that_does_not_parse_fails_instead_of_becoming_prose(tmp_path, prose, message):
    text = f"```python\nacc = 0.90\n```\n\n{prose}\n"
    with pytest.raises(build.TourError, match=message):
        run(text, tmp_path)


def test_a_check_before_the_code_that_computes_it_fails(tmp_path):
    text = "It is 0.9<!-- check: acc ± 0.1 -->.\n\n```python\nacc = 0.9\n```\n"
    with pytest.raises(build.TourError, match="cannot be evaluated"):
        run(text, tmp_path)


def test_a_failing_block_names_its_line_and_blocks_share_one_namespace(tmp_path):
    text = "```python\nx = 1\n```\n\n```python\ny = x + 1\nraise ValueError(y)\n```\n"
    with pytest.raises(build.TourError, match=r"block at line 6 failed: ValueError\(2\)"):
        run(text, tmp_path)


def test_code_in_other_fences_neither_runs_nor_counts_as_a_check(tmp_path):
    text = "```text\nraise SystemExit\n1<!-- check: acc -->\n```\n\n```python\nacc = 0.5\n```\n"
    result = run(text, tmp_path)
    assert (result.blocks, result.checks) == (1, [])


def test_figures_go_to_the_given_folder_and_must_be_written(tmp_path):
    code = (
        "```python\nimport os\nfrom pathlib import Path\n"
        "Path(os.environ['BARENET_TOUR_IMG'], 'a.png').write_bytes(b'png')\n```\n"
    )
    assert run(code + "![a](img/a.png)\n", tmp_path).figures == ["a.png"]
    assert (tmp_path / "img" / "a.png").read_bytes() == b"png"
    with pytest.raises(build.TourError, match=r"did not write: b\.png"):
        run(code + "![b](img/b.png)\n", tmp_path)
