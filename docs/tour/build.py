"""Run the guided tour: every ```python block of every chapter, in order.

    python docs/tour/build.py          # all chapters; figures into docs/tour/img/
    python docs/tour/build.py 03 08    # only the chapters whose file name starts so

The conventions, which ``tests/test_tour.py`` checks the same way:

* Each chapter (``NN-name.md``, or ``NNb-name.md`` between two) runs in one namespace
  of its own, block after block, in a scratch folder, so files a chapter writes never
  land in the repository.
* Figures go to the folder named by the environment variable ``BARENET_TOUR_IMG``; the
  chapters read it, and every ``![...](img/NAME.png)`` of a chapter must be written there.
* A number quoted in the prose is followed, with no space, by an HTML comment that
  checks it: ``97.5%<!-- check: test_acc ± 0.4% -->``. A reader sees the number; the
  runner evaluates ``EXPR`` in the chapter's namespace, after the code blocks above it
  ran, and compares it with the number written just before the comment, so the prose
  and the check cannot disagree. The forms:

  - ``VALUE<!-- check: EXPR ± TOL -->``: ``EXPR`` lies within ``TOL`` of ``VALUE``;
  - ``VALUE<!-- check: EXPR -->``: ``EXPR`` equals ``VALUE`` (a count, a size);
  - ``VALUE<!-- check: EXPR < -->`` (or ``>``): ``EXPR`` is below (above) ``VALUE``,
    for "below 1e-9" and the like.

  ``VALUE`` may be negative, use thousands commas (``101,770``) and an exponent
  (``1e-7``); a ``%`` after it divides it by 100, and then ``TOL`` is written in ``%``
  too (``± 0.4%``), so a tolerance cannot be a hundred times what it looks like. A
  comment that starts ``<!-- check`` and does not parse, or a check in the old form
  (``EXPR ≈ VALUE ± TOL`` in backticks), fails the chapter rather than silently
  becoming prose.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMG_ENV = "BARENET_TOUR_IMG"

BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
ANY_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
NUMBER = r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e-?\d+)?"
CHECK = re.compile(
    rf"(?<![\w.,])(?P<value>{NUMBER})(?P<pct>%?)<!--[ \t]*check:[ \t]*(?P<expr>[^\n±]+?)"
    rf"(?:[ \t]*±[ \t]*(?P<tol>{NUMBER})(?P<tol_pct>%?)|[ \t]+(?P<op>[<>]))?[ \t]*-->"
)
CHECK_START = re.compile(r"<!--\s*check\b")
OLD_CHECK = re.compile(r"`[^`\n]*≈[^`\n]*±[^`\n]*`")
FIGURE = re.compile(r"!\[[^\]]*\]\(img/([^)\s]+)\)")


class TourError(Exception):
    """A chapter's code failed, or a number in its prose is not what the code gives."""


@dataclass
class Check:
    """One checked number of the prose (``VALUE<!-- check: EXPR ... -->``), and the value
    the code gave."""

    line: int
    written: str  # the number as the reader sees it, "97.5%"
    expr: str
    expected: float
    tolerance: float = 0.0
    op: str = "±"  # "±" within tolerance, "=" equal, "<" below, ">" above
    got: float = float("nan")

    def holds(self) -> bool:
        if self.op == "<":
            return self.got < self.expected
        if self.op == ">":
            return self.got > self.expected
        if self.op == "=":  # equal up to the rounding of a written decimal
            return abs(self.got - self.expected) <= 1e-12 * max(1.0, abs(self.expected))
        return abs(self.got - self.expected) <= self.tolerance

    def __str__(self) -> str:
        if self.op == "±":
            return f"{self.written} (check: {self.expr} ± {self.tolerance:g})"
        if self.op == "=":
            return f"{self.written} (check: {self.expr} equals it)"
        return f"{self.written} (check: {self.expr} {self.op} {self.written})"


@dataclass
class Result:
    """What running one chapter produced."""

    name: str
    blocks: int = 0
    checks: list[Check] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def chapters() -> list[Path]:
    """The chapter files, in reading order (``06b-...`` comes after ``06-...``)."""
    return sorted(HERE.glob("[0-9][0-9]*-*.md"))


def figures(text: str) -> list[str]:
    """File names of the figures a chapter shows (``![...](img/NAME)``)."""
    return FIGURE.findall(text)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("−", "-"))


def _checks(text: str, start: int, end: int, name: str) -> list[Check]:
    """The checks in the prose between ``start`` and ``end`` (code fences left out)."""
    prose = ANY_FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text[start:end])
    for m in OLD_CHECK.finditer(prose):
        raise TourError(
            f"{name}:{_line(text, start + m.start())}: {m.group(0)} is the old form of a "
            "check; write VALUE<!-- check: EXPR ± TOL --> (see docs/tour/build.py)"
        )
    found, parsed = [], set()
    for m in CHECK.finditer(prose):
        line = _line(text, start + m.start())
        parsed.add(m.end("pct"))
        pct, tol, op = m.group("pct"), m.group("tol"), m.group("op")
        if tol is not None and pct != m.group("tol_pct"):
            raise TourError(
                f"{name}:{line}: {m.group(0)}: a value and its tolerance are both in % or neither"
            )
        scale = 100 if pct else 1
        found.append(
            Check(
                line=line,
                written=m.group("value") + pct,
                expr=m.group("expr").strip(),
                expected=_number(m.group("value")) / scale,
                tolerance=0.0 if tol is None else _number(tol) / scale,
                op="±" if tol is not None else op or "=",
            )
        )
    for m in CHECK_START.finditer(prose):
        if m.start() not in parsed:
            raise TourError(
                f"{name}:{_line(text, start + m.start())}: a check comment that does not "
                "parse; write VALUE<!-- check: EXPR ± TOL -->, the number right before it"
            )
    return found


def _verify(checks: list[Check], namespace: dict, name: str) -> None:
    for check in checks:
        where = f"{name}:{check.line}: {check}"
        try:
            check.got = float(eval(check.expr, namespace))
        except Exception as exc:
            raise TourError(f"{where} cannot be evaluated: {exc!r}") from exc
        if not check.holds():
            raise TourError(f"{where} does not hold: the code gives {check.got:.6g}")


@contextlib.contextmanager
def _inside(workdir: Path, img_dir: Path) -> Iterator[None]:
    """Run in ``workdir`` with figures going to ``img_dir``; restore both afterwards."""
    old_cwd, old_img = Path.cwd(), os.environ.get(IMG_ENV)
    os.chdir(workdir)
    os.environ[IMG_ENV] = str(img_dir)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        if old_img is None:
            del os.environ[IMG_ENV]
        else:
            os.environ[IMG_ENV] = old_img


def run_text(text: str, name: str, img_dir: Path, workdir: Path) -> Result:
    """Run one chapter's blocks in order and verify its checks; raise ``TourError`` on failure.

    Each block is compiled under the chapter's file name with its own line numbers, so a
    traceback points at the line of the Markdown file.
    """
    import matplotlib
    from threadpoolctl import threadpool_limits

    matplotlib.use("Agg")
    img_dir = Path(img_dir).resolve()
    img_dir.mkdir(parents=True, exist_ok=True)
    result = Result(name)
    namespace: dict = {"__name__": "__tour__"}
    begun = time.perf_counter()
    # One BLAS thread: the chapters' matrices are small, and on a busy 2-core machine
    # threads waiting for each other cost more than they gain (chapter 9 took 144 s with
    # OpenBLAS's default threads while other jobs ran, 23 s with one).
    with _inside(Path(workdir), img_dir), threadpool_limits(limits=1, user_api="blas"):
        position = 0
        for block in BLOCK.finditer(text):
            checks = _checks(text, position, block.start(), name)
            _verify(checks, namespace, name)
            result.checks += checks
            first = _line(text, block.start(1))
            code = compile("\n" * (first - 1) + block.group(1), name, "exec")
            try:
                exec(code, namespace)
            except Exception as exc:
                raise TourError(f"{name}: the block at line {first} failed: {exc!r}") from exc
            result.blocks += 1
            position = block.end()
        checks = _checks(text, position, len(text), name)
        _verify(checks, namespace, name)
        result.checks += checks
    import matplotlib.pyplot as plt

    plt.close("all")
    missing = [f for f in figures(text) if not (img_dir / f).is_file()]
    if missing:
        raise TourError(f"{name}: shows figures its code did not write: {', '.join(missing)}")
    result.figures = figures(text)
    result.seconds = time.perf_counter() - begun
    return result


def run_chapter(path: Path, img_dir: Path, workdir: Path) -> Result:
    """Run the chapter file ``path`` (see ``run_text``)."""
    return run_text(path.read_text(encoding="utf-8"), str(path), img_dir, workdir)


def main(argv: list[str]) -> int:
    selected = [p for p in chapters() if not argv or any(p.name.startswith(a) for a in argv)]
    if not selected:
        print(f"no chapter matches {' '.join(argv)}", file=sys.stderr)
        return 2
    for path in selected:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                result = run_chapter(path, HERE / "img", Path(scratch))
            except TourError as exc:
                print(exc, file=sys.stderr)
                return 1
        print(
            f"{path.name}: {result.blocks} blocks, {len(result.checks)} checks, "
            f"{len(result.figures)} figures, {result.seconds:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
