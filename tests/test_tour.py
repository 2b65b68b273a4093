"""The guided tour (docs/tour/) runs, and its prose says what its code computes.

The convention, kept simple on purpose (the runner is ``docs/tour/build.py``, which
``make docs`` also uses to redraw the figures):

* every fenced ```python block of a chapter runs, in order, in one namespace per
  chapter, inside ``tmp_path``; figures go to ``tmp_path / "img"`` (through the
  ``BARENET_TOUR_IMG`` variable the chapters read), never over the committed ones;
* a number quoted in the prose is written as an inline check in backticks,
  ``EXPR ≈ VALUE ± TOL`` (for example ``test_acc ≈ 0.97 ± 0.01``; a ``%`` after a number
  divides it by 100). ``EXPR`` is evaluated after the blocks above it ran; a value
  outside the stated tolerance fails the chapter;
* every figure a chapter shows (``![...](img/NAME.png)``) must be written by its code,
  and must be committed in ``docs/tour/img/`` and small (< 100 KB).

The chapters train on documented subsets with few epochs, so this file runs in 20 to 40
seconds on a busy 2-core CPU (BLAS on one thread, see ``docs/tour/build.py``).
"""

from __future__ import annotations

import importlib.util
import re
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


def test_every_chapter_quotes_checked_numbers():
    for path in CHAPTERS:
        text = path.read_text(encoding="utf-8")
        assert build.CHECK.search(text), f"{path.name} quotes no checked number"
        # A check that does not parse (say a missing ±) would silently be prose.
        for code in re.findall(r"`([^`\n]*≈[^`\n]*)`", text):
            assert build.CHECK.fullmatch(f"`{code}`"), f"{path.name}: malformed check `{code}`"


# ---- the runner itself: each of these must fail when the convention is broken ----------


def run(text, tmp_path):
    return build.run_text(text, "chapter.md", tmp_path / "img", tmp_path)


def test_a_check_that_holds_passes_and_percent_means_hundredths(tmp_path):
    text = (
        "```python\nacc = 0.971\n```\n\nIt is 97% (`acc ≈ 97% ± 0.5%`), `acc * 2 ≈ 1.94 ± 0.01`.\n"
    )
    result = run(text, tmp_path)
    assert [(c.expected, c.tolerance, c.got) for c in result.checks] == [
        (0.97, 0.005, 0.971),
        (1.94, 0.01, 1.942),
    ]


def test_a_number_the_code_does_not_give_fails(tmp_path):
    text = "```python\nacc = 0.90\n```\n\nAbout `acc ≈ 0.97 ± 0.01`.\n"
    with pytest.raises(build.TourError, match=r"chapter.md:5: `acc ≈ 0.97 ± 0.01` does not hold"):
        run(text, tmp_path)


def test_a_check_before_the_code_that_computes_it_fails(tmp_path):
    text = "It is `acc ≈ 0.9 ± 0.1`.\n\n```python\nacc = 0.9\n```\n"
    with pytest.raises(build.TourError, match="cannot be evaluated"):
        run(text, tmp_path)


def test_a_failing_block_names_its_line_and_blocks_share_one_namespace(tmp_path):
    text = "```python\nx = 1\n```\n\n```python\ny = x + 1\nraise ValueError(y)\n```\n"
    with pytest.raises(build.TourError, match=r"block at line 6 failed: ValueError\(2\)"):
        run(text, tmp_path)


def test_code_in_other_fences_neither_runs_nor_counts_as_a_check(tmp_path):
    text = "```text\nraise SystemExit\n`acc ≈ 1 ± 0`\n```\n\n```python\nacc = 0.5\n```\n"
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
