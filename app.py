"""DRCNet Explorer: the Gradio app (a thin layer: the logic lives in the drcnet/demo/ package, tested without a browser).

    python app.py                       # honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
    DRCNET_CHECKPOINTS=/path python app.py

API endpoints (see the README, "The app"): /restore, /inspect, /t_sweep, /coverage_t, /intra_cr, /compare,
/diagnose, /status; with the `mcp` package installed they are MCP tools too (README, "Deploy on Spaces").
"""
from __future__ import annotations

# `spaces` first, where it is installed (every Hugging Face Space has it): on ZeroGPU it patches torch's CUDA at
# import, so it must come before anything imports torch (drcnet does). Off ZeroGPU its decorator passes through.
import os  # noqa: E402

# OpenMP's idle threads sleep instead of spinning: at start-up a request and the background warm-up (examples,
# the compiled graph's check) run torch at once, and two spinning thread teams on two cores slowed one /restore
# to 36.6 s; passive waiting made it 4.3 s and the steady /restore no slower (docs/benchmark.md). Read once, when
# torch loads: it has to be set here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import spaces
except ImportError:
    spaces = None

from drcnet.core.allocator import keep_freed_memory  # noqa: E402

# Freed memory stays with the process for the next tensor: a quarter of an eager forward on the CPU. Set before
# the server's threads start, so that they share the main arena (drcnet/core/allocator.py).
keep_freed_memory()

import functools  # noqa: E402 (after spaces, on purpose)
from dataclasses import dataclass, field  # noqa: E402

import gradio as gr  # noqa: E402

from drcnet import demo as D  # noqa: E402
from drcnet.core.paths import ASSETS  # noqa: E402
from drcnet.demo import InputSettings  # noqa: E402
from drcnet.demo.gradio_parts import (PathImage, errors_shown_to_users, log_to_stderr, mcp_installed,  # noqa: E402
                                      only_on)  # noqa: F401 (tests: app["only_on"])

MAX_FILE_SIZE = os.environ.get("DRCNET_MAX_FILE_SIZE", "25mb")
ZERO_GPU = D.on_zero_gpu(spaces)
gpu = D.gpu_decorator(spaces)               # gpu(seconds or a callable of the handler's arguments)

# The composition root: made once, passed into every D. call. On ZeroGPU the models live on CUDA, loaded at start-up
# (below), and nothing compiles; the examples' results are then computed by a CPU copy, so start-up never waits for
# a GPU. Elsewhere one registry does both (CUDA when present, else the CPU; compiled in the background).
REGISTRY = D.Registry(**D.serving_options(ZERO_GPU))
# The examples' results are computed at start-up on models of their own (on the CPU, eager, a tile per forward,
# pausing while a request runs), so a visitor's request never waits for them (Registry.background_copy).
EXAMPLE_REGISTRY = REGISTRY.background_copy(device="cpu")
EXAMPLES = D.ExampleResults()
FIRST_TASK = "denoise"                      # the task the page selects first: it and its examples are warmed first
TASK_ORDER = [FIRST_TASK, *(t for t in D.TASKS if t != FIRST_TASK)]
user_errors = errors_shown_to_users(lambda: REGISTRY.folder)
DEFAULT = InputSettings()      # the controls' defaults read it: no setting's default is written twice here


# ---------------------------------------------------------------- handlers (API signatures and MCP tools)
# Each takes `settings` as the six input settings spelled out (D.takes_input_settings: their order and defaults are
# InputSettings'); the docstrings' "Args:" lines describe the API's and the MCP tools' arguments.

@gpu(D.restore_seconds)
@user_errors
@D.takes_input_settings()
def restore(image, task, settings=DEFAULT, stage1=False, progress=gr.Progress()):
    """Restore a photo with DRCNet at full resolution: remove noise (denoise), rain streaks (derain) or motion blur
    (deblur).

    Args:
        image: the photo to restore (an image file; MCP: an http(s) URL or a data URL)
        task: denoise, derain or deblur (use /diagnose to find which one a photo needs)
        stage1: also return the network's stage-1 output
    Returns:
        (before, after) images, the stage-1 output or None, a line of facts (device, precision, time, tiles,
        PSNR/SSIM when a reference is known) and the result as a PNG file the way the input was (alpha, grey and
        16 bits kept).
    """
    def tick(i, n):
        progress(i / n, desc=f"tile {i}/{n}")
    r = D.restore(REGISTRY, image, task, settings, stage1=stage1, progress=tick)
    out = REGISTRY.outputs
    return (out.display_png(r.before, "before"), out.display_png(r.after, "after")), r.stage1, r.facts, \
        str(r.download)


@gpu(D.GPU_SECONDS["inspect"])
@user_errors
@D.takes_input_settings()
def inspect(image, task, stage=1, level=0, t=None, settings=DEFAULT, statistics="matched"):
    """Look inside one DFR block of DRCNet at mask threshold t (the input downscaled to at most 512 px).

    Args:
        image: the photo (an image file; MCP: an http(s) URL or a data URL)
        task: denoise, derain or deblur
        stage: the network's stage, 1 or 2
        level: the block's level, 0-3
        t: the mask threshold (null: the checkpoint's trained t)
        statistics: "matched" (DFR statistics over the tiles the checkpoint names) or "whole" (the paper's)
    Returns:
        (before, after) at this t, the block's maps (response, mask, truth map when the degradation is known,
        spatial filter, energy attention, identity, fused output), the all-blocks overview (each block's AUC
        when the degradation is known) and a line of facts.
    """
    return inspect_with_slider(image, task, stage, level, t, settings, statistics)[:4]


@gpu(D.GPU_SECONDS["inspect"])
@user_errors
@D.takes_input_settings()
def inspect_on_page(image, task, stage=1, level=0, t=None, settings=DEFAULT, statistics="matched"):
    """inspect, plus the t slider spanned over the inspected block's M_sr (a State the page applies with
    set_t_slider; not part of the API answer: a State among an MCP tool's outputs fails the call)."""
    return inspect_with_slider(image, task, stage, level, t, settings, statistics)


def inspect_with_slider(image, task, stage, level, t, settings, statistics):
    r = D.inspect(REGISTRY, image, task, stage, level, t, settings, statistics)
    out = REGISTRY.outputs
    return ((out.display_png(r.before, "before"), out.display_png(r.after, "after")),
            out.display_png(r.block, "block"), out.display_png(r.overview, "overview"), r.facts, r.t_control)


def inspect_trained(image, task, stage=1, level=0, *rest):
    """inspect at the trained t (the default view): what the Inspect button, a block change and an example run."""
    return inspect_on_page(image, task, stage, level, None, *rest)


def set_t_slider(control):
    """The t slider spanned over the inspected block's M_sr, its label giving the range and the trained t. Run by
    the page after an inspect, never by an API call: a session's slider bounds would refuse its next t."""
    return gr.update(**control) if control else gr.update()


@gpu(D.GPU_SECONDS["coverage_t"])
@user_errors
@D.takes_input_settings()
def coverage_t(image, task, stage=1, level=0, t=None, coverage=10, settings=DEFAULT):
    """The t at which the chosen block's mask covers `coverage` % of its pixels; the UI then re-inspects (which
    spans the slider over the block's M_sr again: until then it spans 0..1, so the new t always fits).

    Args:
        coverage: the share of the block's pixels in the mask, in percent (1-99)
    """
    return gr.update(minimum=0.0, maximum=1.0, value=D.coverage_t(REGISTRY, image, task, stage, level, t, coverage,
                                                                  settings))


@gpu(D.GPU_SECONDS["inspect_figure"])
@user_errors
@D.takes_input_settings()
def inspect_figure(image, task, stage=1, level=0, t=None, settings=DEFAULT, statistics="matched"):
    """The chosen block's figure as a high-resolution PNG and a PDF, for slides."""
    return [str(p) for p in D.inspect_figure(REGISTRY, image, task, stage, level, t, settings, statistics)]


@gpu(D.GPU_SECONDS["t_sweep"])
@user_errors
@D.takes_input_settings()
def t_sweep(image, task, stage=1, level=0, settings=DEFAULT):
    """Mask coverage (and PSNR with a reference) for 9 values of t at quantiles of the block's own M_sr."""
    plot, rows = D.t_sweep(REGISTRY, image, task, stage, level, settings)
    return plot


@gpu(D.GPU_SECONDS["intra_cr"])
@user_errors
@D.takes_input_settings(synthesize=True)
def intra_cr(image, task, lam=0.95, settings=DEFAULT):
    """Negatives N = lambda I + (1-lambda) J, Intra-CR ratios per VGG layer against lambda, Extra-CR beside it.

    Args:
        lam: the mixup lambda of the extra negative
    """
    r = D.intra_cr(REGISTRY, image, task, lam, settings)
    return [img for img, _ in r.negatives], r.plot, {"headers": r.headers, "data": r.table}   # labels drawn in


@gpu(D.GPU_SECONDS["compare"])
@user_errors
@D.takes_input_settings()
def compare_on_page(image, task, settings=DEFAULT, progress=gr.Progress()):
    """Compare's page listener: compare's outputs, then the comparison itself (the results by name and the metrics
    table) for the session State that the slider, the zoom and the figure read."""
    def tick(i, n, name):
        progress(i / n, desc=f"{name} ({i + 1}/{n})")
    for r in D.compare_steps(REGISTRY, image, task, settings, progress=tick):
        notes = "\n".join(f"- {n}" for n in r.notes)
        yield r.gallery, {"headers": r.headers, "data": r.table}, notes, {"images": r.images, "table": r.table}


@D.takes_input_settings()
def compare(image, task, settings=DEFAULT, progress=gr.Progress()):
    """Compare DRCNet with its stage 1, any ablation checkpoints and classical baselines (NLM, TV, wavelet, BM3D
    for small images; Wiener and Richardson-Lucy given the true blur kernel; a median filter) on one photo.

    Args:
        image: the photo (an image file; MCP: an http(s) URL or a data URL), downscaled to at most 512 px
        task: denoise, derain or deblur
    Returns:
        a gallery of every result, a metrics table (method, PSNR, SSIM, seconds, rank; best PSNR first) and notes.
        Streamed: the fast methods first, then BM3D.
    """
    # compare_on_page's answers without its session State: Gradio 6.31's MCP tools fail on an endpoint with a
    # State output when the client asks for no progress
    for outputs in compare_on_page(image, task, *settings.as_row(), progress=progress):
        yield outputs[:3] if isinstance(outputs, tuple) else outputs      # (a missing task's gr.skip() as it is)


def comparison(result) -> tuple[dict | None, list | None]:
    """(images by name, metrics table) of the comparison in the session State; (None, None) before one has run."""
    return (result["images"], result["table"]) if result else (None, None)


def compare_choices(result):
    """Fill the slider's two pickers (DRCNet against the input by default) and the image to click for the zoom."""
    images, _ = comparison(result)
    names = list(images or {})
    if not names:
        return gr.update(), gr.update(), None, None
    right = "DRCNet" if "DRCNet" in names else names[-1]
    pair = D.compare_pair(images, names[0], right)
    return (gr.update(choices=names, value=names[0]), gr.update(choices=names, value=right), pair,
            D.zoom_source(images, names[0]))


@user_errors
def compare_pair(result, left, right):
    return D.compare_pair(comparison(result)[0], left, right)


@user_errors
def zoom(result, size, evt: gr.SelectData):
    """The same crop of every result around the clicked point (clicked on the enlarged D.zoom_source), in the
    metrics table's order; each crop carries its label under it (no gallery caption over the picture)."""
    images, rows = comparison(result)
    x, y = D.zoom_point(images, *evt.index)
    crops = [crop for crop, _ in D.zoom_crops(images, x, y, int(size), table=rows)]
    x0, y0, x1, y1 = D.crop_box(images[D.INPUT].shape, x, y, int(size))
    return gr.update(value=crops, label=f"The same crop [{x0}:{x1}, {y0}:{y1}] of every result, in the table's "
                                        "order"), (x, y)


@user_errors
def compare_figure(result, point, size):
    return [str(p) for p in D.compare_figure(REGISTRY, *comparison(result), point, int(size))]


def example_values(current_tab, stage1, evt: gr.SelectData):
    """The clicked example's parameters [image, task, *InputSettings' fields], empty upload messages (they spoke of
    the previous photo), no diagnosis, the example's index, and on the Restore tab the example's stored result, in
    the same answer (one round trip: the before/after shows at once)."""
    shown = stored_example(evt.index, stage1) if current_tab == "restore" else gr.skip()
    return (*D.examples()[evt.index], "", "", None, evt.index,
            *((gr.skip(),) * RESTORE_OUTPUTS if shown == gr.skip() else shown))


RESTORE_OUTPUTS = 4                 # before/after, stage 1, facts, result file


def stored_example(index, stage1):
    """Restore's outputs for example `index` from the result stored at start-up (no model, no GPU); gr.skip()
    while none is stored yet (restore_unless_stored then runs the model)."""
    stored = EXAMPLES.get(EXAMPLE_REGISTRY, index)
    if stored is None:
        return gr.skip()
    return ((str(stored.before), str(stored.after)), str(stored.stage1) if stage1 else None, stored.facts,
            str(stored.download))


@user_errors
def restore_unless_stored(index, stage1, progress=gr.Progress()):
    """After stored_example: the example restored as the Restore button would, when no result was stored for it."""
    if EXAMPLES.get(EXAMPLE_REGISTRY, index) is not None:
        return gr.skip()
    return restore(*D.examples()[index], stage1, progress=progress)


@user_errors
def on_upload(image):
    """On arrival of a photo: the reader's message or the diagnosis, the task it suggests ({"task": ...}; None:
    leave the choice as it is, after an unreadable file) and the diagnosis (the message follows later task
    choices). A photo that looks clean suggests no task ({"task": None}: Restore then asks which to run)."""
    report = D.check_input(image)
    return report.message, {"task": report.task} if report.select else None, report.diagnosis


def settle_task(message, suggestion, picked, diagnosis, task):
    """After the upload check: the message, and the task radio set to the check's suggestion unless the visitor
    picked a task while the check ran (picked); their choice then stays and the message speaks of it. The check
    takes a second or so, and its answer used to empty a task picked meanwhile (a clean photo, "Degrade a clean
    photo first" and denoise ticked at once: Compare then ran without a task). Both outputs land together."""
    if picked:      # the message follows their task, except an unreadable file's (no diagnosis to follow)
        return gr.skip(), message if diagnosis is None else follow_task(diagnosis, task)
    return (gr.update(value=suggestion["task"]) if suggestion is not None else gr.skip()), message


def pick_task(diagnosis, task):
    """The visitor picked a task: the upload message follows it, and a running upload check leaves it."""
    return follow_task(diagnosis, task), True


def follow_task(diagnosis, task):
    """The upload message once the visitor picks a task (none to follow after an unreadable file or an example)."""
    return gr.skip() if diagnosis is None else D.diagnosis_message(diagnosis, task)


@user_errors
def on_reference_upload(reference):
    return D.check_reference(reference)


@user_errors
def diagnose(image):            # numpy and scikit-image only: no GPU to ask for
    """Which task a photo needs, from its noise, rain streaks and blur (no model is run).

    Args:
        image: the photo (an image file; MCP: an http(s) URL or a data URL)
    Returns:
        {"task": denoise | derain | deblur | null (it looks clean), "finding": a sentence saying why, "scores": the
        measures behind it (noise sigma, brightness, detail, rain and blur scores)}
    """
    return D.diagnose_file(image)


def status():
    """Which task checkpoints are present (markdown)."""
    return D.status_markdown(REGISTRY)


# ---------------------------------------------------------------- UI

INTRO = """# DRCNet Explorer
Image restoration with **DRCNet** (Li et al., *Dynamic Image Restoration Contrastive Network*, ECCV 2022):
denoising, deraining and deblurring. Upload or paste a photo (or pick an example), choose the task, and either
restore it as it is or **degrade a clean photo first** with the project's synthetic noise, rain or motion blur,
so the result can be scored (PSNR/SSIM) against the original."""


@dataclass
class Controls:
    """The controls every tab reads: the input, its reference, the task and the six input settings."""
    image: gr.Image
    reference: gr.Image
    task: gr.Radio
    prep: list                      # the input settings' controls, in InputSettings.names()' order (made from it)
    upload_msg: gr.Markdown
    reference_msg: gr.Markdown
    current_tab: gr.State
    diagnosis: gr.State             # the input's diagnosis, which the upload message follows
    example: gr.State               # the index of the example clicked last


@dataclass
class TabRun:
    """What an example click runs on a tab: the handler, its inputs (without the current tab) and outputs."""
    tab: str
    fn: object
    inputs: list
    outputs: list
    kw: dict = field(default_factory=dict)
    then: "TabRun | None" = None    # a follow-up after success (Compare's pickers)


def build_settings(reference) -> list:
    """The input settings' controls (the reference is an upload beside the input), listed in InputSettings' order;
    each control's elem_id is setting-<its field> (the wiring's test reads it)."""
    controls = {"reference": reference}
    controls["synthesize"] = gr.Checkbox(DEFAULT.synthesize, elem_id="setting-synthesize",
                                         label="Degrade a clean photo first (the input is the clean photo)")
    with gr.Accordion("Synthetic degradation settings", open=False):
        controls["sigma"] = gr.Slider(0, 75, value=DEFAULT.sigma, step=1, elem_id="setting-sigma",
                                      label="Noise sigma (0-255 units), denoise")
        controls["rain"] = gr.Radio(["light", "heavy"], value=DEFAULT.rain, label="Rain, derain",
                                    elem_id="setting-rain")
        controls["blur_size"] = gr.Slider(13, 31, value=DEFAULT.blur_size, step=2, elem_id="setting-blur_size",
                                          label="Blur kernel size (px), deblur")
        controls["seed"] = gr.Number(DEFAULT.seed, precision=0, label="Seed", elem_id="setting-seed")
    return [controls[name] for name in InputSettings.names()]


def build_controls() -> Controls:
    current_tab = gr.State("restore")       # where an example click runs
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                image = PathImage(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                  label="Input image", height=280, elem_id="input-image")
                reference = PathImage(type="filepath", image_mode=None, sources=["upload", "clipboard"], height=280,
                                      label="Clean reference (optional, for PSNR/SSIM)", elem_id="setting-reference")
            with gr.Row():
                # checked on arrival, on every tab: the reader's message, or which task fits the photo
                upload_msg = gr.Markdown(elem_id="upload-message")
                reference_msg = gr.Markdown(elem_id="reference-message")
        with gr.Column(scale=2):
            # empty (None) after a photo that looks clean: every tab then asks which task to run
            task = gr.Radio(list(D.TASKS), value=FIRST_TASK, label="Task", elem_id="task")
            prep = build_settings(reference)
    c = Controls(image, reference, task, prep, upload_msg, reference_msg, current_tab, gr.State(None), gr.State(None))
    # the upload check's answer waits in states; settle_task then sets the message and the task together
    picked, message, suggestion = gr.State(False), gr.State(""), gr.State(None)
    image.upload(lambda: (False, None), None, [picked, suggestion], api_visibility="private", queue=False).then(
        on_upload, image, [message, suggestion, c.diagnosis], api_visibility="private").then(
        settle_task, [message, suggestion, picked, c.diagnosis, task], [task, upload_msg],
        api_visibility="private", queue=False)
    image.clear(lambda: ("", None), None, [upload_msg, c.diagnosis], api_visibility="private", queue=False)
    task.input(pick_task, [c.diagnosis, task], [upload_msg, picked], api_visibility="private", queue=False)
    reference.upload(on_reference_upload, reference, reference_msg, api_visibility="private")
    reference.clear(lambda: "", None, reference_msg, api_visibility="private", queue=False)
    diagnosis = gr.JSON(visible=False)
    gr.Button(visible=False).click(diagnose, image, diagnosis, api_name="diagnose")
    return c


def build_restore_tab(c: Controls) -> TabRun:
    with gr.Row():
        stage1 = gr.Checkbox(False, label="Also show the stage-1 output")
        run_btn = gr.Button("Restore", variant="primary")
    slider = gr.ImageSlider(type="pil", format="png", label="Before / after",
                            buttons=["download", "fullscreen"], max_height=600, elem_id="restore-slider")
    facts = gr.Markdown(label="facts", elem_id="restore-facts")
    stage1_img = gr.Image(type="pil", format="png", label="Stage-1 output", visible=False, height=360)
    stage1.change(lambda show: gr.update(visible=show), stage1, stage1_img, api_visibility="private", queue=False)
    result_file = gr.File(label="Result file (PNG as the input was: alpha, grey, 16-bit kept)", elem_id="result-file")
    inputs, outputs = [c.image, c.task, *c.prep, stage1], [slider, stage1_img, facts, result_file]
    run_btn.click(restore, inputs, outputs, api_name="restore", concurrency_limit=1)
    # an example click shows the example's stored result (computed at start-up) with the controls' values
    # (build_examples); the model runs, queued as the button's, only for an example whose result is not stored yet
    return TabRun("restore", restore_unless_stored, [c.example, stage1], outputs,
                  {"concurrency_limit": 1, "show_progress": "minimal"})


def build_inspect_tab(c: Controls) -> TabRun:
    gr.Markdown("Maps of one DFR block (spatial response, mask at t, spatial filter, energy attention, identity, "
                "fused output) and, when the degradation is known, how well each block's M_sr points at it. "
                "**Inputs are downscaled to at most "
                f"{REGISTRY.limits.inspect_max_side} px** (long side) here for speed. **Inspect** (and a new block) "
                "shows the trained t; moving t or the coverage re-runs the model.")
    with gr.Accordion("What the mask does", open=False, elem_id="mask-note"):
        gr.Markdown(D.MASK_NOTE)
        with gr.Accordion("The measurements (docs/science.md)", open=False):
            gr.Markdown(D.science_page())
    with gr.Row():
        stage = gr.Radio([1, 2], value=1, label="Stage")
        level = gr.Slider(0, 3, value=0, step=1, label="Level")
        # the engine's default takes the DFR statistics over training-patch windows; "whole" is the paper's (and
        # breaks smooth regions of large photos: docs/design.md)
        statistics = gr.Radio([("matched to training", "matched"), ("whole image (paper)", "whole")],
                              value="matched", label="DFR statistics", elem_id="statistics")
    with gr.Row(equal_height=True):
        # starts at the trained t over 0..1; after an inspect it spans the chosen block's M_sr (D.inspect's
        # t_control), in fine steps: a trained M_sr often spans only a few hundredths (e.g. 0.47-0.51)
        t = gr.Slider(0.0, 1.0, value=REGISTRY.trained_t(FIRST_TASK), step=0.0001,
                      label="Mask threshold t", elem_id="t-slider", scale=3)
        # released (or typed: its number box releases on blur), it sets t and re-inspects
        coverage = gr.Slider(1, 99, value=10, step=1, elem_id="coverage", scale=2, label="Mask coverage (%)",
                             info="sets t so that this share of the block's M_sr lies at or above it")
    c.task.change(lambda k: gr.update(minimum=0.0, maximum=1.0, value=REGISTRY.trained_t(k), label="Mask threshold t",
                                      info=None) if k else gr.update(), c.task, t, api_visibility="private",
                  queue=False)
    # and at each page load (a retrained checkpoint may have another t); a load event, not an API endpoint or MCP tool
    gr.on(None, lambda: REGISTRY.trained_t(FIRST_TASK), None, t, api_visibility="private", queue=False)
    with gr.Row():
        inspect_btn = gr.Button("Inspect", variant="primary")
        sweep_btn = gr.Button("Sweep t (9 runs)")
        fig_btn = gr.Button("Figure for slides (PNG + PDF)", elem_id="inspect-figure-btn")
    ins_fig = gr.File(label="Figure of this block (PNG 200 dpi, PDF)", file_count="multiple",
                      elem_id="inspect-figure", visible=False)
    ins_facts = gr.Markdown(label="facts", elem_id="inspect-facts")
    ins_slider = gr.ImageSlider(type="pil", format="png", label="Before / after at this t", max_height=420)
    block_img = gr.Image(type="pil", format="png", label="This block's maps", show_label=False, elem_id="inspect-block")
    overview_img = gr.Image(type="pil", format="png", label="All blocks: response maps and masks",
                            show_label=False, elem_id="inspect-overview")
    sweep_img = gr.Image(type="pil", format="png", label="Coverage and PSNR against t", elem_id="sweep-plot",
                         show_label=False, visible=False)     # shown once a sweep has run
    t_control = gr.State(None)            # the inspected block's t slider, applied by set_t_slider
    ins_in = [c.image, c.task, stage, level, t, *c.prep, statistics]
    trained_in = [c.image, c.task, stage, level, *c.prep, statistics]
    ins_out = [ins_slider, block_img, overview_img, ins_facts, t_control]

    def then_set_slider(event):
        return event.success(set_t_slider, t_control, t, api_visibility="private", queue=False)
    then_set_slider(t.release(inspect_on_page, ins_in, ins_out, api_visibility="private"))
    gr.Button(visible=False).click(inspect, ins_in, ins_out[:4], api_name="inspect")     # the API and MCP tool
    for event in (inspect_btn.click, stage.input, level.release, statistics.input):
        then_set_slider(event(inspect_trained, trained_in, ins_out, api_visibility="private"))
    sweep_btn.click(t_sweep, [c.image, c.task, stage, level, *c.prep], sweep_img, api_name="t_sweep").success(
        lambda: gr.update(visible=True), None, sweep_img, api_visibility="private", queue=False)
    coverage_in = [c.image, c.task, stage, level, t, coverage, *c.prep]
    then_set_slider(coverage.release(coverage_t, coverage_in, t, api_name="coverage_t").success(
        inspect_on_page, ins_in, ins_out, api_visibility="private"))
    fig_btn.click(inspect_figure, ins_in, ins_fig, api_name="inspect_figure").success(
        lambda: gr.update(visible=True), None, ins_fig, api_visibility="private", queue=False)
    return TabRun("inspect", inspect_trained, trained_in, ins_out,
                  then=TabRun("inspect", set_t_slider, [t_control], [t]))


def build_intra_cr_tab(c: Controls) -> TabRun:
    gr.Markdown("Negatives by mixup, **N = lambda I + (1 - lambda) J** (I degraded, J clean); the paper uses "
                "lambda = 1.0, 0.95, 0.9. The curves show the Intra-CR ratio d(X, J) / d(X, N) per VGG19 layer "
                "for the restored output, the degraded input and the clean image; Extra-CR uses another image's "
                "degraded version as the negative. Needs a clean reference (degrade a clean photo first, or "
                "upload one).")
    with gr.Row():
        lam = gr.Slider(0.0, 1.0, value=0.95, step=0.01, label="lambda")
        cr_btn = gr.Button("Explore", variant="primary")
    negatives = gr.Gallery(label="Negatives N (paper's lambdas and the slider's)", columns=4, height="auto",
                           format="png", elem_id="cr-negatives",
                           object_fit="contain")     # whole pictures: their labels are drawn in
    cr_plot = gr.Image(type="pil", format="png", label="Intra-CR ratio against lambda; Extra-CR",
                       elem_id="cr-plot", show_label=False)
    cr_table = gr.Dataframe(label="CR ratios per VGG layer", interactive=False, elem_id="cr-table")
    cr_in, cr_out = [c.image, c.task, lam, *c.prep], [negatives, cr_plot, cr_table]
    cr_btn.click(intra_cr, cr_in, cr_out, api_name="intra_cr")
    lam.release(intra_cr, cr_in, cr_out, api_visibility="private")
    return TabRun("intra_cr", intra_cr, cr_in, cr_out)


def bm3d_side() -> str:
    """BM3D's size limit in Compare as a visitor reads it ("128 x 128")."""
    from drcnet.eval.baselines import MAX_PIXELS
    side = int(MAX_PIXELS["bm3d"] ** 0.5)
    return f"{side} x {side}" if side * side == MAX_PIXELS["bm3d"] else f"{MAX_PIXELS['bm3d']:,}"


def build_compare_tab(c: Controls) -> TabRun:
    gr.Markdown("The input through DRCNet (and its stage 1), any ablation checkpoints (`<task>-*.safetensors`) "
                "and the classical baselines (inputs downscaled to at most "
                f"{REGISTRY.limits.inspect_max_side} px). BM3D runs on images up to {bm3d_side()} pixels (it takes "
                "seconds, and grows with the pixels) and joins the others when done.")
    cmp_btn = gr.Button("Compare", variant="primary")
    # one State for the comparison (Gradio's MCP tools drop one State output, not two), one for the zoom's point
    cmp_result, cmp_point = gr.State(None), gr.State(None)
    with gr.Row():
        left = gr.Dropdown([], label="Left of the slider", elem_id="cmp-left", interactive=True)
        right = gr.Dropdown([], label="Right of the slider", elem_id="cmp-right", interactive=True)
    pair_slider = gr.ImageSlider(type="pil", format="png", label="Pick any two results", elem_id="cmp-slider",
                                 max_height=520, buttons=["fullscreen"])
    with gr.Row():
        zoom_src = gr.Image(type="pil", format="png", label="Click a point to zoom every result there",
                            elem_id="zoom-source", interactive=False, height=320)
        with gr.Column():
            zoom_size = gr.Slider(16, 128, value=48, step=8, label="Zoom crop size (px)")
            cmp_fig_btn = gr.Button("Figure for slides (PNG + PDF)", elem_id="compare-figure-btn")
            cmp_fig = gr.File(label="Comparison figure (PNG 200 dpi, PDF)", file_count="multiple",
                              elem_id="compare-figure")
    zoom_gallery = gr.Gallery(label="The same crop of every result (the table's order)", columns=6, height="auto",
                              format="png", elem_id="zoom-crops", allow_preview=False,
                              object_fit="contain")    # whole crops: their labels are drawn in
    cmp_table = gr.Dataframe(label="Metrics and timings (best PSNR first)", interactive=False, elem_id="compare-table")
    cmp_notes = gr.Markdown(label="notes", elem_id="compare-notes")
    gallery = gr.Gallery(label="All results", columns=5, height=360, format="png")
    cmp_in, cmp_out = [c.image, c.task, *c.prep], [gallery, cmp_table, cmp_notes, cmp_result]
    choices = TabRun("compare", compare_choices, [cmp_result], [left, right, pair_slider, zoom_src])
    cmp_btn.click(compare_on_page, cmp_in, cmp_out, api_visibility="private").success(
        compare_choices, choices.inputs, choices.outputs, api_visibility="private")
    for dd in (left, right):
        dd.input(compare_pair, [cmp_result, left, right], pair_slider, api_visibility="private")
    zoom_src.select(zoom, [cmp_result, zoom_size], [zoom_gallery, cmp_point], api_visibility="private")
    cmp_fig_btn.click(compare_figure, [cmp_result, cmp_point, zoom_size], cmp_fig,
                      api_visibility="private")   # works on session state: no API use
    gr.Button(visible=False).click(compare, cmp_in, cmp_out[:3], api_name="compare")    # the API and MCP tool
    return TabRun("compare", compare_on_page, cmp_in, cmp_out, then=choices)


def build_examples(c: Controls, runs: list[TabRun]) -> None:
    """A captioned gallery instead of gr.Examples' table of raw parameters; a click fills the (hidden) parameters
    into the controls and, on Restore, shows the example's stored result (at once, outside the queue), then runs
    the tab the visitor is on (Restore: only when no result is stored)."""
    if not D.examples():
        return
    ex_gallery = gr.Gallery(D.example_gallery(), columns=6, height="auto", allow_preview=False,
                            label="Examples (click one to run the tab you are on; \"clean + ...\": a clean photo, "
                                  "degraded that way when clicked)", elem_id="examples", format="png")
    restore_run = next(run for run in runs if run.tab == "restore")
    _, stage1 = restore_run.inputs
    filled = ex_gallery.select(example_values, [c.current_tab, stage1],
                               [c.image, c.task, *c.prep, c.upload_msg, c.reference_msg, c.diagnosis, c.example,
                                *restore_run.outputs], api_visibility="private", queue=False)
    for run in runs:
        step = filled.success(only_on(run.tab, run.fn, len(run.outputs)), [c.current_tab, *run.inputs],
                              run.outputs, api_visibility="private", **run.kw)
        if run.then is not None:
            then = run.then
            step.success(only_on(then.tab, then.fn, len(then.outputs)), [c.current_tab, *then.inputs],
                         then.outputs, api_visibility="private", **then.kw)


TABS = (("Restore", "restore", build_restore_tab), ("Inspect DFR", "inspect", build_inspect_tab),
        ("Intra-CR explorer", "intra_cr", build_intra_cr_tab), ("Compare", "compare", build_compare_tab))


def build() -> gr.Blocks:
    with gr.Blocks(title="DRCNet Explorer") as app:
        gr.Markdown(INTRO)
        status_md = gr.Markdown(D.status_markdown(REGISTRY), elem_id="checkpoint-status")
        c = build_controls()
        runs = []
        with gr.Tabs():
            for label, tab_id, builder in TABS:
                with gr.Tab(label, id=tab_id) as tab:
                    runs.append(builder(c))
                tab.select(lambda tab_id=tab_id: tab_id, None, c.current_tab, api_visibility="private", queue=False)
        build_examples(c, runs)
        refresh = gr.Button("Refresh checkpoint status", size="sm")
        refresh.click(status, None, status_md, api_name="status")
    return app


demo = build()
demo.queue(default_concurrency_limit=1, max_size=16)
if ZERO_GPU:
    REGISTRY.load_all(TASK_ORDER)       # on CUDA at module scope: ZeroGPU packs them and streams them to each call

if __name__ == "__main__":
    log_to_stderr()         # the start-up's steps with their times, graphs built or loaded, eager fallbacks
    # Graphs compiled at an earlier start are loaded and run once before the page is served (a second or two), so
    # the first visitor's request is as fast as any; graphs not built yet are built in the background below.
    if not ZERO_GPU:
        REGISTRY.load_kept_graphs(TASK_ORDER)
    # No server_name / server_port here: Gradio then reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself. MCP tools
    # (/gradio_api/mcp/) where the `mcp` package is installed.
    demo.launch(max_file_size=MAX_FILE_SIZE, allowed_paths=[str(ASSETS), str(EXAMPLES.folder)],
                mcp_server=mcp_installed(), prevent_thread_lock=True)
    # Once the page is served, in the background, one task at a time (the page's first task first): its model, its
    # examples' results (on EXAMPLE_REGISTRY's own models), then its compiled graph (none on ZeroGPU).
    REGISTRY.warm_up(TASK_ORDER, after_each=functools.partial(EXAMPLES.fill, EXAMPLE_REGISTRY))
    demo.block_thread()
