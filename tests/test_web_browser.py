"""The demo page in a real browser: Debian's chromium, driven headless by Playwright,
against a server started here on a free localhost port.

It draws a "1" on the pad and waits for the shipped network's answer, opens the inside
view, shows a Fashion-MNIST test image and an uploaded picture, and runs (and stops) a
tiny training on the Learn page. Screenshots of each
step are saved in the test's temporary folder. ``make test`` installs chromium first.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
Image = pytest.importorskip("PIL.Image")

from barenet.datasets import FASHION_CLASSES  # noqa: E402
from barenet.web.app import create_app  # noqa: E402
from barenet.web.training import Trainer  # noqa: E402

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server(mnist, fashion):
    """The demo on http://127.0.0.1:PORT (a free port); stopped after the module."""
    datasets = {"mnist": mnist, "fashion": fashion}
    app = create_app(trainer=Trainer(loader=datasets.__getitem__))  # the shipped networks
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run 'make browser' (Debian's chromium package)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    pg.goto(server)
    pg.wait_for_selector("#bars li")
    yield pg
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def ink(page, selector: str) -> int:
    """Sum of the red channel of a canvas (the preview is white ink on black)."""
    return page.evaluate(
        """(sel) => {
            const c = document.querySelector(sel);
            const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let s = 0;
            for (let i = 0; i < d.length; i += 4) s += d[i];
            return s;
        }""",
        selector,
    )


def bar_widths(page) -> list[float]:
    return page.eval_on_selector_all(
        "#bars .bar", "bars => bars.map(b => parseFloat(b.style.width))"
    )


def test_drawing_a_one_gets_an_answer_and_inside_view(page, tmp_path):
    assert page.text_content("#top") == "?"
    assert ink(page, "#seen") == 0 and max(bar_widths(page)) == 0
    box = page.locator("#pad").bounding_box()
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + 150, y0 + 45)
    page.mouse.down()
    for i in range(1, 21):  # a slightly slanted vertical stroke, like a hand-drawn 1
        page.mouse.move(x0 + 150 - i * 0.8, y0 + 45 + i * 9.5)
    page.mouse.up()
    expect(page.locator("#top")).to_have_text("1")
    widths = bar_widths(page)
    assert len(widths) == 10 and max(widths) > 50 and abs(sum(widths) - 100) < 1
    assert page.text_content("#bars .best .label") == "1"
    assert ink(page, "#seen") > 0
    page.screenshot(path=str(tmp_path / "draw.png"), full_page=True)

    page.click("nav a[data-tab=inside]")
    page.wait_for_selector("#weights canvas")
    assert page.locator("#activations figure").count() >= 1
    assert page.locator("#weights canvas").count() == 32
    assert ink(page, "#inside-input") > 0
    page.screenshot(path=str(tmp_path / "inside.png"), full_page=True)

    page.click("nav a[data-tab=draw]")
    page.click("#clear")
    assert page.text_content("#top") == "?" and ink(page, "#seen") == 0


def test_fashion_mode_shows_a_test_image_and_an_upload(page, tmp_path, fashion):
    page.click("#mode-fashion")
    expect(page.locator("#top")).not_to_have_text("?")
    assert page.text_content("#truth").startswith("Test image #")
    assert page.text_content("#top") in FASHION_CLASSES
    assert page.locator("#bars li").count() == len(FASHION_CLASSES)
    page.screenshot(path=str(tmp_path / "fashion.png"), full_page=True)

    _, (x_test, y_test) = fashion
    trousers = int(np.flatnonzero(y_test == FASHION_CLASSES.index("Trouser"))[0])
    photo = np.kron(255 - x_test[trousers], np.ones((8, 8), np.uint8))  # dark on white paper
    Image.fromarray(photo).save(tmp_path / "trousers.png")
    page.set_input_files("#upload", str(tmp_path / "trousers.png"))
    expect(page.locator("#truth")).to_have_text("Your picture: trousers.png")
    expect(page.locator("#top")).to_have_text("Trouser")
    assert ink(page, "#seen") > 0
    page.screenshot(path=str(tmp_path / "upload.png"), full_page=True)


def test_learn_page_trains_and_draws_the_curve(page, tmp_path):
    page.click("nav a[data-tab=learn]")
    page.fill("input[name=hidden]", "32")
    page.fill("input[name=epochs]", "1")
    page.fill("input[name=samples]", "2000")
    assert page.get_attribute("#curve", "data-points") == "0"
    page.click("#start")
    expect(page.locator("#train-status")).to_have_text(re.compile(r"^Done"))
    assert int(page.get_attribute("#curve", "data-points")) >= 2
    assert page.locator("#panel figure.right, #panel figure.wrong").count() == 12
    assert page.is_enabled("#start") and not page.is_enabled("#stop")
    page.screenshot(path=str(tmp_path / "learn.png"), full_page=True)

    page.fill("input[name=epochs]", "20")
    page.fill("input[name=samples]", "59000")
    page.click("#start")
    expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")
    expect(page.locator("#train-status")).to_have_text(re.compile(r"^Stopped"))
    assert page.is_enabled("#start")
