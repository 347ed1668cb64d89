"""Screenshots of the app with the shipped checkpoints, for the README, talks and reviews.

    python scripts/screenshots.py [--out tests/screenshots] [--stage 1 --level 0 --coverage 10]

Launches `python app.py` exactly as a user does (DRCNET_CHECKPOINTS unset: checkpoints/ of this repository) on a
free port, drives Debian's Chromium with Playwright and writes into --out (git-ignored by default):

    s1_compare_slider.png     Compare on a synthetic denoise example (astronaut, sigma 25): the before/after
                              slider between --left (default nlm) and DRCNet
    s2_compare_zoom.png       the same crop of every result around a clicked point
    s3_inspect_empty.png      Inspect DFR at the trained t = 0.75, where the chosen block's mask is empty: the
                              mask is drawn at the 90 % quantile of its M_sr, and the facts say so
    s4_inspect_quantile.png   after setting the mask coverage to --coverage %: the model runs at that t
    s3b_/s4b_..._overview.png all blocks' response maps and histograms at those two values of t
    s5_examples_gallery.png   the captioned examples gallery
    s6_sweep.png              "Sweep t": coverage and PSNR at t values spread over the block's own M_sr
    s7_intra_cr.png           the Intra-CR explorer: labelled negatives and the ratio plots
    s8_status.png             the checkpoint status with each task's measured test-set gain
    s9_upload_clean.png,      the upload check on arrival: a clean photo's warning, a noisy photo's diagnosis
    s9b_upload_noise.png      (denoise selected)
    s10_camera_shake_3x_*.png the real camera-shake example (clock) restored, at 3x device zoom: the slider as
                              it opens, and dragged so that the restored image fills the frame
    screenshots.json          what each picture shows (facts, t, coverage), read from the page

Needs Playwright (requirements-dev.txt) and /usr/bin/chromium; takes a few minutes on a CPU (BM3D).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from pathlib import Path

from drcnet.eval.app_timing import launch as start_app

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def launch(log_path: Path, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if k != "DRCNET_CHECKPOINTS"}     # the shipped checkpoints
    proc, url, _ = start_app(env, log_path, timeout)
    return proc, url


def text_of(elem_id: str) -> str:
    return f"(document.querySelector('#{elem_id}')?.innerText || '')"


def shoot(page, path: Path, first: str, last: str) -> None:
    """The part of the page from element #first to element #last (full width)."""
    page.locator(f"#{first}").scroll_into_view_if_needed()
    top, bottom = page.locator(f"#{first}").bounding_box(), page.locator(f"#{last}").bounding_box()
    y = top["y"] + page.evaluate("window.scrollY")
    page.screenshot(path=path, full_page=True, clip={"x": 0, "y": y - 10, "width": 1400,
                                                     "height": bottom["y"] + bottom["height"] - top["y"] + 20})


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_timeout(500)


def compare(page, out: Path, left: str, found: dict) -> None:
    page.locator("input[type=file]").first.set_input_files(str(ROOT / "assets" / "astronaut_clean.png"))
    # the upload check looks at the photo first and, for a clean one, unselects the task: choose it after
    page.wait_for_function(f"() => {text_of('upload-message')}.length > 10", timeout=120_000)
    page.get_by_label("Degrade a clean photo first", exact=False).check()
    page.get_by_label("denoise", exact=True).check()
    page.wait_for_timeout(1500)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Compare", exact=True).click()
    # every method, BM3D included (the notes say "still running" until it is done)
    page.wait_for_function(f"() => {text_of('compare-table')}.includes('best PSNR') && "
                           f"{text_of('compare-table')}.includes('{left}') && "
                           f"!{text_of('compare-notes')}.includes('still running')", timeout=600_000)
    page.wait_for_selector("#cmp-slider img", timeout=60_000)
    pick(page, "cmp-left", left)
    pick(page, "cmp-right", "DRCNet")
    page.wait_for_timeout(1500)
    found["compare_table"] = page.locator("#compare-table").inner_text()
    found["compare_notes"] = page.locator("#compare-notes").inner_text()
    found["slider"] = [page.locator("#cmp-left input").input_value(), page.locator("#cmp-right input").input_value()]
    shoot(page, out / "s1_compare_slider.png", "cmp-left", "cmp-slider")
    src = page.locator("#zoom-source img")
    box = src.bounding_box()
    src.click(position={"x": box["width"] * 0.45, "y": box["height"] * 0.3})       # the astronaut's face
    page.wait_for_function("() => document.querySelectorAll('#zoom-crops img').length >= 4", timeout=60_000)
    page.locator("#zoom-crops").scroll_into_view_if_needed()
    found["zoom_crops"] = page.locator("#zoom-crops").inner_text()
    page.screenshot(path=out / "s2_compare_zoom.png", full_page=False)


def inspect(page, out: Path, stage: int, level: int, coverage: float, found: dict) -> None:
    page.get_by_role("tab", name="Inspect DFR").click()
    page.get_by_label(str(stage), exact=True).check()
    if level:
        page.locator("input[aria-label='number input for Level']").fill(str(level))
        page.locator("input[aria-label='number input for Level']").press("Enter")
    slider = page.locator("#t-slider input[type=number]")
    if float(slider.input_value()) != 0.75:                      # the default; typing it would re-run as well
        slider.fill("0.75")
        slider.press("Enter")
    page.get_by_role("button", name="Inspect", exact=True).click()
    idle = f"!{text_of('inspect-facts')}.match(/processing|queue/)"      # the progress text sits in the facts
    page.wait_for_function(f"() => {idle} && {text_of('inspect-facts')}.includes('S{stage} L{level}') && "
                           f"{text_of('inspect-facts')}.includes('t = 0.75 |')", timeout=300_000)
    page.wait_for_timeout(1000)
    found["inspect_t075"] = page.locator("#inspect-facts").inner_text()
    shoot(page, out / "s3_inspect_empty.png", "t-slider", "inspect-block")
    page.locator("#inspect-overview").screenshot(path=out / "s3b_inspect_empty_overview.png")
    page.locator("#coverage input[type=number]").fill(f"{coverage:g}")
    page.locator("#coverage input[type=number]").blur()          # the number box releases the slider on blur
    page.wait_for_function(f"() => {idle} && {text_of('inspect-facts')}.includes('% of the pixels have M_sr') "
                           f"&& {text_of('inspect-facts')}.includes('S{stage} L{level}')", timeout=300_000)
    page.wait_for_timeout(1000)
    found["t_box"] = slider.input_value()
    found["inspect_quantile"] = page.locator("#inspect-facts").inner_text()
    shoot(page, out / "s4_inspect_quantile.png", "t-slider", "inspect-block")
    page.locator("#inspect-overview").screenshot(path=out / "s4b_inspect_quantile_overview.png")


def sweep(page, out: Path, found: dict) -> None:
    """Sweep t on the inspector's current block (after inspect(): the plot box is hidden until then)."""
    found["sweep_visible_before"] = page.locator("#sweep-plot").is_visible()
    page.get_by_role("button", name=re.compile(r"^Sweep t")).click()
    loaded_image(page, "sweep-plot")
    page.locator("#sweep-plot").screenshot(path=out / "s6_sweep.png")


def loaded_image(page, elem_id: str, timeout: int = 600_000) -> None:
    """Wait for the image of #elem_id to arrive, scroll to it and wait for it to load (Gradio's <img> loads
    lazily: below the fold it has no size, which Playwright counts as hidden)."""
    page.wait_for_selector(f"#{elem_id} img", state="attached", timeout=timeout)
    page.locator(f"#{elem_id}").scroll_into_view_if_needed()
    page.wait_for_function(f"() => document.querySelector('#{elem_id} img')?.naturalWidth > 0", timeout=60_000)
    page.wait_for_timeout(500)


def intra_cr(page, out: Path, found: dict) -> None:
    page.get_by_role("tab", name="Intra-CR explorer").click()
    page.get_by_role("button", name="Explore", exact=True).click()
    loaded_image(page, "cr-plot")
    shoot(page, out / "s7_intra_cr.png", "cr-negatives", "cr-plot")


def uploads(browser, url: str, out: Path, found: dict) -> None:
    """A fresh page per upload (an empty input): a clean photo's warning, a noisy photo's diagnosis."""
    for name, shot in (("coffee_clean.png", "s9_upload_clean.png"), ("hubble_noise.png", "s9b_upload_noise.png")):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="load", timeout=120_000)
        page.wait_for_selector("#examples", timeout=120_000)
        page.get_by_label("derain", exact=True).check()
        page.locator("input[type=file]").first.set_input_files(str(ROOT / "assets" / name))
        page.wait_for_function(f"() => {text_of('upload-message')}.length > 10", timeout=120_000)
        page.wait_for_timeout(500)
        found[f"upload_{name}"] = page.locator("#upload-message").inner_text()
        found[f"upload_{name}_task"] = [t for t in ("denoise", "derain", "deblur")
                                        if page.get_by_label(t, exact=True).is_checked()]
        page.screenshot(path=out / shot, full_page=False)
        page.close()


def camera_shake(browser, url: str, out: Path, found: dict) -> None:
    """The real camera-shake example restored, at 3x zoom (device pixels), the slider moved so that the
    restored image fills the frame: where a deblur model's dot grid would show (the clock's top rim)."""
    page = browser.new_page(viewport={"width": 1000, "height": 900}, device_scale_factor=3)
    page.goto(url, wait_until="load", timeout=120_000)
    page.wait_for_selector("#examples", timeout=120_000)
    page.locator("#examples button.thumbnail-item", has_text="camera shake").first.click()
    page.wait_for_function(f"() => {text_of('restore-facts')}.includes('deblur')", timeout=600_000)
    loaded_image(page, "restore-slider")
    found["camera_shake_facts"] = page.locator("#restore-facts").inner_text()
    box = page.locator("#restore-slider img").last.bounding_box()
    page.screenshot(path=out / "s10_camera_shake_3x_split.png", clip=box)
    # drag the slider's divide to the left edge: the whole frame is then the restored image
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 2, y, steps=10)
    page.mouse.up()
    page.wait_for_timeout(500)
    page.screenshot(path=out / "s10b_camera_shake_3x_restored.png", clip=box)
    page.close()


def gallery(page, out: Path, found: dict) -> None:
    page.get_by_role("tab", name="Restore").click()
    g = page.locator("#examples")
    g.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    items = g.locator("button.thumbnail-item")
    found["gallery_captions"] = [items.nth(i).inner_text() for i in range(items.count())]
    g.screenshot(path=out / "s5_examples_gallery.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "screenshots")
    ap.add_argument("--left", default="nlm", help="the method left of DRCNet in the slider (BM3D runs only on "
                    "images up to 128 x 128 px: drcnet.eval.baselines.MAX_PIXELS)")
    ap.add_argument("--stage", type=int, default=1)
    ap.add_argument("--level", type=int, default=0)
    ap.add_argument("--coverage", type=float, default=10, help="the inspector's mask coverage (%%) that sets t")
    ap.add_argument("--camera-shake-only", action="store_true", help="only the s10 pictures (a minute, no BM3D)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright
    proc, url = launch(args.out / "app.log")
    found: dict = {"url": url}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            if args.camera_shake_only:
                camera_shake(browser, url, args.out, found)
                return
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load", timeout=120_000)
            page.wait_for_selector("#examples", timeout=120_000)
            found["status"] = page.locator("#checkpoint-status").inner_text()
            page.locator("#checkpoint-status").screenshot(path=args.out / "s8_status.png")
            gallery(page, args.out, found)
            compare(page, args.out, args.left, found)
            inspect(page, args.out, args.stage, args.level, args.coverage, found)
            sweep(page, args.out, found)
            intra_cr(page, args.out, found)
            uploads(browser, url, args.out, found)
            camera_shake(browser, url, args.out, found)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
        (args.out / "screenshots.json").write_text(json.dumps(found, indent=1) + "\n")
    print(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
