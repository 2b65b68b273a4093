"""The demo page in a real browser: Debian's chromium, driven headless by Playwright,
against a server started here on a free localhost port.

It draws a "1" on the pad and waits for the shipped network's answer, opens the inside
view, shows a Fashion-MNIST test image and an uploaded picture, and runs (and stops) a
tiny training on the Learn page. With the convolutional networks: it switches networks
and reads a drawn 1 and 7, draws a CNN's feature maps and kernels, shows why the network
answers as it does (and for another class, clicked), trains a small CNN to the end and
draws on it. No page may log an error to the console (a failed request included).
Screenshots of each step are saved in the test's temporary folder. ``make test``
installs chromium first.
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
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
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


# ---- networks to choose, convolutional networks inside, why, a CNN learning --------------------
def draw(page, points) -> None:
    """One stroke through ``points``, (x, y) on the 280x280 pad."""
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.up()


ONE = [(150 - i * 0.8, 45 + i * 9.5) for i in range(21)]
SEVEN = [(70 + i * 10, 60) for i in range(15)] + [(210 - i * 4, 60 + i * 10) for i in range(1, 20)]


def pixels(page, selector: str) -> list[int]:
    return page.evaluate(
        """(sel) => {
            const c = document.querySelector(sel);
            return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
        }""",
        selector,
    )


def test_a_fresh_page_and_a_blank_pad_ask_nothing_wrong(page, tmp_path):
    assert page.text_content("#confidence") == "draw a digit"
    box = page.locator("#pad").bounding_box()
    page.mouse.click(box["x"] + 140, box["y"] + 140)  # a lone dot is not sent
    page.click("#clear")
    for tab in ("inside", "learn", "draw"):
        page.click(f"nav a[data-tab={tab}]")
        expect(page.locator(f"#{tab}")).to_be_visible()
    page.click("#mode-fashion")
    expect(page.locator("#top")).not_to_have_text("?")
    page.click("#mode-digits")
    assert page.text_content("#top") == "?" and page.text_content("#confidence") == "draw a digit"
    page.screenshot(path=str(tmp_path / "fresh.png"), full_page=True)


def test_switching_to_mnist_cnn_reads_a_1_and_a_7(page, tmp_path):
    choice = page.locator("#model-choice")
    assert choice.input_value() == "mnist-cnn"  # the most accurate, by default
    assert page.eval_on_selector_all("#model-choice option", "o => o.map(x => x.value)") == [
        "mnist-mlp",
        "mnist-cnn",
    ]
    choice.select_option("mnist-mlp")
    expect(page.locator("#model-info")).to_contain_text("mnist-mlp: 784-1024-256-10")
    draw(page, SEVEN)
    expect(page.locator("#top")).to_have_text("7")
    choice.select_option("mnist-cnn")  # the drawing is asked again of the new network
    expect(page.locator("#model-info")).to_have_text(
        re.compile(r"mnist-cnn: conv 32-64-128, dense 128-10, 99\.\d% test accuracy")
    )
    expect(page.locator("#top")).to_have_text("7")
    page.screenshot(path=str(tmp_path / "cnn-seven.png"), full_page=True)
    page.click("#clear")
    draw(page, ONE)
    expect(page.locator("#top")).to_have_text("1")
    page.click("nav a[data-tab=inside]")  # the choice holds on every tab
    expect(page.locator("#inside-answer")).to_have_text(re.compile(r"^mnist-cnn answers 1"))
    page.click("nav a[data-tab=draw]")
    assert choice.input_value() == "mnist-cnn"
    page.click("#mode-fashion")
    assert choice.input_value() == "fashion-cnn"
    page.click("#mode-digits")
    assert choice.input_value() == "mnist-cnn"


def test_inside_a_cnn_maps_and_kernels(page, tmp_path):
    draw(page, SEVEN)
    expect(page.locator("#top")).to_have_text("7")
    page.click("nav a[data-tab=inside]")
    blocks = page.locator("#conv-blocks section.block")
    expect(blocks).to_have_count(3)
    expect(page.locator("#weights canvas")).to_have_count(32)
    sizes = page.eval_on_selector_all(
        "#conv-blocks section.block",
        """bs => bs.map(b => [
            [...b.querySelectorAll(".maps:not(.pooled) canvas")].map(c => c.width + "x" + c.height),
            [...b.querySelectorAll(".maps.pooled canvas")].map(c => c.width + "x" + c.height),
        ])""",
    )
    for (maps, pooled), side in zip(sizes, (28, 14, 7), strict=True):
        assert maps == [f"{side}x{side}"] * 16 and pooled == [f"{side // 2}x{side // 2}"] * 16
    assert blocks.nth(0).locator("h3").text_content() == (
        "Block 1: 32 channels of 28\u00d728, the 16 strongest"
    )
    assert ink(page, "#conv-blocks .maps canvas") > 0
    kernels = page.eval_on_selector_all("#weights canvas", "cs => cs.map(c => c.width)")
    assert kernels == [3] * 32
    assert page.text_content("#weights-title") == "First-layer kernels"
    assert page.locator("#activations figure").count() == 1  # then the dense part
    page.screenshot(path=str(tmp_path / "inside-cnn.png"), full_page=True)


def test_why_shows_the_pixels_behind_an_answer_and_another_class(page, tmp_path):
    draw(page, SEVEN)
    expect(page.locator("#top")).to_have_text("7")
    expect(page.locator("#why")).to_be_visible()
    expect(page.locator("#why-map")).to_have_attribute("data-class", "7")
    assert page.text_content("#why-class").startswith("7?")
    expect(page.locator("#alternatives figure")).to_have_count(3)
    seven = pixels(page, "#why-map")
    assert len(set(seven)) > 10  # an overlay, not a flat square
    page.screenshot(path=str(tmp_path / "why-7.png"), full_page=True)

    page.click("#bars li[data-class='1']")
    expect(page.locator("#why-map")).to_have_attribute("data-class", "1")
    assert page.text_content("#why-class").startswith("1?")
    assert "chosen" in page.get_attribute("#bars li[data-class='1']", "class")
    one = pixels(page, "#why-map")
    assert one != seven
    page.click("#why-times")  # gradient x input: only inked pixels keep a colour
    expect(page.locator("#why-times")).to_have_class(re.compile("active"))
    assert pixels(page, "#why-map") != one
    page.screenshot(path=str(tmp_path / "why-1.png"), full_page=True)


def test_a_small_cnn_learns_live_and_then_reads_drawings(page, tmp_path):
    page.click("nav a[data-tab=learn]")
    expect(page.locator("#channels-field")).to_be_hidden()
    page.select_option("select[name=kind]", "cnn")
    expect(page.locator("#channels-field")).to_be_visible()
    page.fill("input[name=channels]", "4,8")
    page.fill("input[name=hidden]", "32")
    page.fill("input[name=epochs]", "2")
    page.fill("input[name=samples]", "1500")
    page.click("#start")
    expect(page.locator("#train-status")).to_have_text(re.compile(r"^Done"))
    assert int(page.get_attribute("#curve", "data-points")) >= 2
    assert page.locator("#panel figure.right, #panel figure.wrong").count() == 12
    expect(page.locator("#confusion")).to_have_attribute("data-epoch", "2")
    counts = page.eval_on_selector_all(
        "#confusion tr",
        "rows => rows.slice(1).map(r => [...r.querySelectorAll('td')].map("
        "td => Number(td.textContent || 0)))",
    )
    assert len(counts) == 10 and all(len(row) == 10 for row in counts)
    assert sum(map(sum, counts)) == 1000
    assert sum(counts[i][i] for i in range(10)) > 500  # better than chance after 2 epochs
    page.screenshot(path=str(tmp_path / "learn-cnn.png"), full_page=True)

    page.click("#use-learned")
    expect(page.locator("#draw")).to_be_visible()
    expect(page.locator("#model-choice")).to_have_value("learned-mnist-cnn")
    expect(page.locator("#model-info")).to_have_text(
        re.compile(r"^learned-mnist-cnn: conv 4-8, dense 32-10, \d+\.\d% validation accuracy")
    )
    draw(page, ONE)
    expect(page.locator("#top")).not_to_have_text("?")
    assert page.text_content("#top") in [str(d) for d in range(10)]
    expect(page.locator("#why-map")).to_be_visible()
    page.click("nav a[data-tab=inside]")
    expect(page.locator("#conv-blocks section.block")).to_have_count(2)
    expect(page.locator("#weights canvas")).to_have_count(4)
    page.screenshot(path=str(tmp_path / "learned-inside.png"), full_page=True)


def test_a_phone_photo_of_a_digit_is_read_on_the_draw_tab(page, tmp_path):
    photo = Path(__file__).parent / "data" / "photos" / "digit-phone-1.jpg"
    page.set_input_files("#upload-digit", str(photo))
    expect(page.locator("#top")).to_have_text("1")
    assert ink(page, "#seen") > 0
    page.screenshot(path=str(tmp_path / "digit-photo.png"), full_page=True)
