"""The new controls in a real browser (Debian's Chromium via Playwright): the compare slider and zoom, the
coverage control of the inspector, the figure downloads, the captioned examples gallery, an example click on
a tab other than Restore, and the upload check and diagnosis on arrival.

    pytest -m slow tests/test_app_browser.py

Uses the launched app of test_app_e2e (tiny random checkpoints). Screenshots go to tests/screenshots/b*.png.
"""
import re
from pathlib import Path

import pytest

from test_app_e2e import CHROMIUM, ROOT, SHOTS, photo, server  # noqa: F401  (server is a fixture)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")]
from conftest import BROWSER_ARGS as ARGS  # noqa: E402


def text_of(elem_id: str) -> str:
    return f"(document.querySelector('#{elem_id}')?.innerText || '')"


@pytest.fixture(scope="module")
def page(server):  # noqa: F811
    from playwright.sync_api import sync_playwright
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server["url"], wait_until="load", timeout=120_000)   # "networkidle" times out on a busy CPU
        page.wait_for_selector("#examples", timeout=120_000)
        page.locator("input[type=file]").first.set_input_files(photo(server["tmp"]))
        page.wait_for_timeout(1500)
        yield page
        page.screenshot(path=SHOTS / "b99_last.png", full_page=True)    # what the page showed at the end
        browser.close()
        assert not errors, errors


def test_no_server_path_on_the_page(page, server):  # noqa: F811
    body = page.locator("body").inner_text()
    assert "Checkpoints:" in body and "denoise.safetensors" in body
    assert "/tmp/" not in body and str(ROOT) not in body


def test_inspect_coverage_control_fills_an_empty_mask(page):
    page.get_by_label("denoise", exact=True).check()
    page.get_by_role("tab", name="Inspect DFR").click()
    slider = page.locator("#t-slider input[type=range]")
    slider.fill("1")                     # above every sigmoid value: no pixel can cross
    slider.dispatch_event("pointerup")
    page.wait_for_function(f"() => {text_of('inspect-facts')}.includes('t = 1.00')", timeout=90_000)
    assert "No pixel reaches t = 1.000" in page.locator("#inspect-facts").inner_text()
    page.screenshot(path=SHOTS / "b01_inspect_empty_mask.png", full_page=True)
    page.locator("#coverage input[type=number]").fill("20")
    page.locator("#coverage input[type=number]").blur()          # the number box releases the slider on blur
    page.wait_for_function(f"() => {text_of('inspect-facts')}.includes('% of the pixels have M_sr >= t')",
                           timeout=90_000)
    facts = page.locator("#inspect-facts").inner_text()
    assert "No pixel reaches" not in facts.split("S1 L0")[1]
    t_box = page.locator("#t-slider input[type=number]").input_value()
    assert float(t_box) < 1.0 and len(t_box.split(".")[-1]) <= 4, t_box     # no float noise (0.494100004)
    # then the slider spans the block's M_sr (set after the maps arrive), its label giving the map's range
    page.wait_for_function("() => Number(document.querySelector('#t-slider input[type=range]').max) < 1",
                           timeout=30_000)
    assert "median" in page.locator("#t-slider").inner_text()
    page.screenshot(path=SHOTS / "b02_inspect_after_quantile.png", full_page=True)
    page.locator("#inspect-figure-btn").click()
    page.wait_for_function("() => document.querySelectorAll('#inspect-figure a').length >= 2", timeout=90_000)
    names = page.locator("#inspect-figure").inner_text()
    assert ".png" in names and ".pdf" in names


def test_compare_slider_zoom_and_figure(page):
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_function(f"() => {text_of('compare-table')}.includes('best PSNR') || "
                           f"{text_of('compare-table')}.includes('nlm')", timeout=180_000)
    page.wait_for_selector("#cmp-slider img", timeout=120_000)
    assert page.locator("#cmp-left input").input_value() == "input (degraded)"
    assert page.locator("#cmp-right input").input_value() == "DRCNet"
    page.locator("#cmp-right input").click()
    page.get_by_role("option", name="DRCNet stage 1", exact=True).click()
    page.wait_for_timeout(1500)
    assert page.locator("#cmp-right input").input_value() == "DRCNet stage 1"
    page.locator("#cmp-slider").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "b03_compare_slider.png", full_page=True)
    # Gradio draws the picture with object-fit: scale-down and sends no select event for a click beside it; the
    # app enlarges the zoom source so that the picture fills its box and a click anywhere in it is a point
    src = page.locator("#zoom-source img")
    page.wait_for_function("() => document.querySelector('#zoom-source img')?.naturalWidth > 0", timeout=30_000)
    box = src.bounding_box()
    natural = src.evaluate("e => [e.naturalWidth, e.naturalHeight]")
    fit = min(box["width"] / natural[0], box["height"] / natural[1], 1)
    shown = (natural[0] * fit, natural[1] * fit)
    assert max(shown[0] / box["width"], shown[1] / box["height"]) > 0.95, (box, natural)   # fills the box
    click = (box["width"] * 0.3, box["height"] * 0.6)
    src.click(position={"x": click[0], "y": click[1]})
    page.wait_for_function("() => document.querySelectorAll('#zoom-crops img').length >= 4", timeout=60_000)
    # the crops are centred on the clicked pixel of the 96x80 photo (the box moved inside the image when needed)
    x = (click[0] - (box["width"] - shown[0]) / 2) / fit * 96 / natural[0]
    y = (click[1] - (box["height"] - shown[1]) / 2) / fit * 80 / natural[1]
    x0, x1, y0, y1 = map(int, re.search(r"\[(\d+):(\d+), (\d+):(\d+)\]",
                                        page.locator("#zoom-crops").inner_text()).groups())
    assert x1 - x0 == y1 - y0 == 48
    assert abs((x0 + x1) / 2 - min(max(x, 24), 96 - 24)) <= 2 and abs((y0 + y1) / 2 - min(max(y, 24), 80 - 24)) <= 2
    page.locator("#zoom-crops").scroll_into_view_if_needed()
    page.screenshot(path=SHOTS / "b04_compare_zoom.png", full_page=True)
    page.locator("#compare-figure-btn").click()
    page.wait_for_function("() => document.querySelectorAll('#compare-figure a').length >= 2", timeout=90_000)
    assert ".pdf" in page.locator("#compare-figure").inner_text()


def test_examples_gallery_has_captions_and_a_click_restores(page):
    page.get_by_role("tab", name="Restore").click()
    gallery = page.locator("#examples")
    gallery.scroll_into_view_if_needed()
    text = gallery.inner_text()
    assert "denoise, sigma 25" in text and "deblur, real camera shake" in text and "true" not in text.lower()
    page.screenshot(path=SHOTS / "b05_examples_gallery.png", full_page=True)
    items = gallery.locator("button.thumbnail-item")
    assert items.count() >= 10
    captions = [items.nth(i).inner_text() for i in range(items.count())]
    items.nth(captions.index("deblur, real camera shake")).click()
    page.wait_for_function(f"() => {text_of('restore-facts')}.startsWith('deblur')", timeout=90_000)
    assert page.get_by_label("deblur", exact=True).is_checked()
    page.screenshot(path=SHOTS / "b06_example_clicked.png", full_page=True)


@pytest.mark.timeout(300)
def test_an_example_click_runs_the_tab_you_are_on(page):
    """On Inspect DFR, an example click fills the controls and inspects (Restore does not run)."""
    page.get_by_role("tab", name="Inspect DFR").click()
    before = page.locator("#inspect-facts").inner_text()
    restore_before = page.evaluate(text_of("restore-facts"))
    gallery = page.locator("#examples")
    gallery.scroll_into_view_if_needed()
    items = gallery.locator("button.thumbnail-item")
    captions = [items.nth(i).inner_text() for i in range(items.count())]
    items.nth(captions.index("denoise, sigma 25")).click()
    page.wait_for_function(f"b => {text_of('inspect-facts')} !== b && {text_of('inspect-facts')}.includes('forward')"
                           " && !document.querySelector('.progress-text, .eta-bar')", arg=before, timeout=120_000)
    assert page.get_by_label("denoise", exact=True).is_checked()
    assert "256x256" in page.locator("#inspect-facts").inner_text()       # the example's picture, inspected
    assert page.evaluate(text_of("restore-facts")) == restore_before      # and not restored
    assert not page.locator("#sweep-plot").is_visible()                   # no empty plot box before a sweep
    page.screenshot(path=SHOTS / "b07_example_click_on_inspect.png", full_page=True)


def fresh_page_on(page, server, tab: str):
    """A new page (empty inputs) on the given tab, with derain selected: the task a diagnosis must change."""
    fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    fresh.goto(server["url"], wait_until="load", timeout=120_000)
    fresh.wait_for_selector("#examples", timeout=120_000)
    fresh.get_by_role("tab", name=tab).click()
    fresh.get_by_label("derain", exact=True).check()
    return fresh


@pytest.mark.timeout(300)
def test_an_upload_is_checked_on_arrival_on_any_tab(page, server):  # noqa: F811
    """A fresh page on the Compare tab: a text file named .png gets the reader's message at once, a noisy
    photo its diagnosis and the denoise task."""
    fresh = fresh_page_on(page, server, "Compare")
    try:
        bad = server["tmp"] / "notes.png"
        bad.write_text("this is not an image, only text with a .png name\n")
        fresh.locator("input[type=file]").first.set_input_files(str(bad))
        fresh.wait_for_function(f"() => {text_of('upload-message')}.includes('not an image file')", timeout=60_000)
        assert "notes.png: not an image file, or a format this app cannot read" in \
            fresh.locator("#upload-message").inner_text()
        fresh.screenshot(path=SHOTS / "b08_bad_upload_message.png", full_page=True)
        fresh.locator("input[type=file]").nth(1).set_input_files(str(ROOT / "assets" / "hubble_noise.png"))
        fresh.wait_for_timeout(1000)          # the reference: readable, so no message
        assert fresh.locator("#reference-message").inner_text().strip() == ""
    finally:
        fresh.close()
    fresh = fresh_page_on(page, server, "Intra-CR explorer")
    try:
        fresh.locator("input[type=file]").first.set_input_files(str(ROOT / "assets" / "hubble_noise.png"))
        fresh.wait_for_function(f"() => {text_of('upload-message')}.includes('noise, sigma about')", timeout=60_000)
        assert fresh.get_by_label("denoise", exact=True).is_checked()          # the task it suggests
        fresh.screenshot(path=SHOTS / "b09_upload_diagnosis.png", full_page=True)
    finally:
        fresh.close()


@pytest.mark.timeout(300)
def test_a_task_picked_while_the_upload_is_checked_stays_picked(page, server):  # noqa: F811
    """A clean photo, and denoise picked while its check runs: the check's answer (no task, the photo looks
    clean) must not empty the visitor's choice; the message then speaks of denoise. The check is a queued event;
    its request is held back here until the pick is made, as a slow check on a busy Space would be."""
    fresh = fresh_page_on(page, server, "Restore")
    held, holding = [], [True]
    try:
        fresh.route("**/queue/join*", lambda route: held.append(route) if holding[0] else route.continue_())
        fresh.locator("input[type=file]").first.set_input_files(str(ROOT / "assets" / "coffee_clean.png"))
        for _ in range(100):                                  # the route handler runs during Playwright's calls
            if held:
                break
            fresh.wait_for_timeout(100)
        assert held, "the upload check was not sent"
        fresh.get_by_label("denoise", exact=True).check(timeout=10_000)   # while the check waits
        holding[0] = False
        for route in held:
            route.continue_()
        fresh.wait_for_function(f"() => {text_of('upload-message')}.includes('looks clean')", timeout=60_000)
        fresh.wait_for_timeout(1000)
        assert fresh.get_by_label("denoise", exact=True).is_checked()
        assert "No task is selected" not in fresh.locator("#upload-message").inner_text()
    finally:
        fresh.close()
