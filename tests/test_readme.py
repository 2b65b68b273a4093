"""The README's quick start is run as written, so it cannot rot."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


def test_quick_start_runs(tmp_path, monkeypatch, mnist):
    monkeypatch.chdir(tmp_path)
    block = re.search(r"## Quick start\n+```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    namespace: dict = {}
    exec(compile(block.group(1), str(README), "exec"), namespace)
    assert (tmp_path / "mnist-quick.npz").is_file()
    assert namespace["model"].evaluate(namespace["x_test"], namespace["y_test"])["accuracy"] > 0.95
