"""DRCNet Explorer: the Gradio app (a thin layer: the logic lives in the drcnet/demo/ package, tested without a browser).

    python app.py                       # honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
    DRCNET_CHECKPOINTS=/path python app.py

API endpoints (see the README, "The app"): /restore, /inspect, /t_sweep, /coverage_t, /intra_cr, /compare,
/diagnose, /status.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import gradio as gr

from drcnet import demo as D
from drcnet.core.paths import ASSETS
from drcnet.demo import InputSettings
from drcnet.demo.gradio_parts import PathImage, errors_shown_to_users, only_on  # noqa: F401 (tests: app["only_on"])

try:                                    # Hugging Face ZeroGPU: a GPU is attached per call
    import spaces
    gpu = spaces.GPU
except ImportError:                     # anywhere else: a no-op
    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

MAX_FILE_SIZE = os.environ.get("DRCNET_MAX_FILE_SIZE", "25mb")


REGISTRY = D.Registry()        # the composition root: made once, passed into every D. call
user_errors = errors_shown_to_users(lambda: REGISTRY.folder)
DEFAULT = InputSettings()      # the handlers' defaults read it: no setting's default is written twice here
_R, _S, _SIG, _RAIN, _BLUR, _SEED = DEFAULT.as_row()


# ---------------------------------------------------------------- handlers (API signatures)

@gpu
@user_errors
def restore(image, task, reference=_R, synthesize=_S, sigma=_SIG, rain=_RAIN, blur_size=_BLUR, seed=_SEED,
            stage1=False, progress=gr.Progress()):
    """Restore one image. image: file path; task: denoise | derain | deblur (None, no task selected: an error
    message that asks which, with the clean-photo warning when the photo looks clean). Returns (before, after),
    the stage-1 output (or None), a line of facts (device, precision, time, tiles, PSNR/SSIM when known) and the
    result as a PNG file the way the input was (alpha re-attached, grey, 16 bits)."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)

    def tick(i, n):
        progress(i / n, desc=f"tile {i}/{n}")
    r = D.restore(REGISTRY, image, task, settings, stage1=stage1, progress=tick)
    out = REGISTRY.outputs
    return (out.display_png(r.before, "before"), out.display_png(r.after, "after")), r.stage1, r.facts, \
        str(r.download)


@gpu
@user_errors
def inspect(image, task, stage=1, level=0, t=None, reference=_R, synthesize=_S, sigma=_SIG, rain=_RAIN,
            blur_size=_BLUR, seed=_SEED, statistics="matched"):
    """Re-run at threshold t (None: the checkpoint's trained t) and return (before, after), the chosen block's
    maps and the all-blocks overview (with each block's AUC when the degradation is known) and the facts; last,
    for the page only (a State, not part of the API answer), the t slider for this block (set_t_slider).
    statistics: "matched" (DFR statistics over windows of the training patch) or "whole" (the paper's)."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)
    r = D.inspect(REGISTRY, image, task, stage, level, t, settings, statistics)
    out = REGISTRY.outputs
    return ((out.display_png(r.before, "before"), out.display_png(r.after, "after")),
            out.display_png(r.block, "block"), out.display_png(r.overview, "overview"), r.facts, r.t_control)


def inspect_trained(image, task, stage=1, level=0, *rest):
    """inspect at the trained t (the default view): what the Inspect button, a block change and an example run."""
    return inspect(image, task, stage, level, None, *rest)


def set_t_slider(control):
    """The t slider spanned over the inspected block's M_sr, its label giving the range and the trained t. Run by
    the page after an inspect, never by an API call: a session's slider bounds would refuse its next t."""
    return gr.update(**control) if control else gr.update()


@gpu
@user_errors
def coverage_t(image, task, stage=1, level=0, t=None, coverage=10, reference=_R, synthesize=_S, sigma=_SIG,
               rain=_RAIN, blur_size=_BLUR, seed=_SEED):
    """The t at which the chosen block's mask covers `coverage` % of its pixels; the UI then re-inspects (which
    spans the slider over the block's M_sr again: until then it spans 0..1, so the new t always fits)."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)
    return gr.update(minimum=0.0, maximum=1.0, value=D.coverage_t(REGISTRY, image, task, stage, level, t, coverage,
                                                                  settings))


@gpu
@user_errors
def inspect_figure(image, task, stage=1, level=0, t=None, reference=_R, synthesize=_S, sigma=_SIG, rain=_RAIN,
                   blur_size=_BLUR, seed=_SEED, statistics="matched"):
    """The chosen block's figure as a high-resolution PNG and a PDF, for slides."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)
    return [str(p) for p in D.inspect_figure(REGISTRY, image, task, stage, level, t, settings, statistics)]


@gpu
@user_errors
def t_sweep(image, task, stage=1, level=0, reference=_R, synthesize=_S, sigma=_SIG, rain=_RAIN, blur_size=_BLUR,
            seed=_SEED):
    """Mask coverage (and PSNR with a reference) for 8 values of t at quantiles of the block's own M_sr."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)
    plot, rows = D.t_sweep(REGISTRY, image, task, stage, level, settings)
    return plot


@gpu
@user_errors
def intra_cr(image, task, lam=0.95, reference=_R, synthesize=True, sigma=_SIG, rain=_RAIN, blur_size=_BLUR, seed=_SEED):
    """Negatives N = lambda I + (1-lambda) J, Intra-CR ratios per VGG layer against lambda, Extra-CR beside it."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)
    r = D.intra_cr(REGISTRY, image, task, lam, settings)
    return [img for img, _ in r.negatives], r.plot, {"headers": r.headers, "data": r.table}   # labels drawn in


@gpu
@user_errors
def compare(image, task, reference=_R, synthesize=_S, sigma=_SIG, rain=_RAIN, blur_size=_BLUR, seed=_SEED,
            progress=gr.Progress()):
    """DRCNet, its stage 1, ablation checkpoints and classical baselines on one input: gallery, metrics table
    (best PSNR first), notes. Yields the fast methods first, then BM3D when it is done. The results themselves go
    to a session State (not part of the API answer) for the slider, the zoom and the figure."""
    settings = InputSettings(reference, synthesize, sigma, rain, blur_size, seed)

    def tick(i, n, name):
        progress(i / n, desc=f"{name} ({i + 1}/{n})")
    for r in D.compare_steps(REGISTRY, image, task, settings, progress=tick):
        notes = "\n".join(f"- {n}" for n in r.notes)
        yield r.gallery, {"headers": r.headers, "data": r.table}, notes, r.images, r.table


def compare_choices(images):
    """Fill the slider's two pickers (DRCNet against the input by default) and the image to click for the zoom."""
    names = list(images or {})
    if not names:
        return gr.update(), gr.update(), None, None
    right = "DRCNet" if "DRCNet" in names else names[-1]
    pair = D.compare_pair(images, names[0], right)
    return (gr.update(choices=names, value=names[0]), gr.update(choices=names, value=right), pair,
            D.zoom_source(images, names[0]))


@user_errors
def compare_pair(images, left, right):
    return D.compare_pair(images, left, right)


@user_errors
def zoom(images, rows, size, evt: gr.SelectData):
    """The same crop of every result around the clicked point (clicked on the enlarged D.zoom_source), in the
    metrics table's order; each crop carries its label under it (no gallery caption over the picture)."""
    x, y = D.zoom_point(images, *evt.index)
    crops = [crop for crop, _ in D.zoom_crops(images, x, y, int(size), table=rows)]
    x0, y0, x1, y1 = D.crop_box(images[D.INPUT].shape, x, y, int(size))
    return gr.update(value=crops, label=f"The same crop [{x0}:{x1}, {y0}:{y1}] of every result, in the table's "
                                        "order"), (x, y)


@user_errors
def compare_figure(images, table, point, size):
    return [str(p) for p in D.compare_figure(REGISTRY, images, table, point, int(size))]


def example_values(evt: gr.SelectData):
    """The clicked example's parameters, in the order [image, task, reference, synthesize, sigma, rain,
    blur_size, seed], and empty upload messages (they spoke of the previous photo)."""
    return *D.examples()[evt.index], "", ""


@user_errors
def on_upload(image):
    """On arrival of a photo: the reader's message or the diagnosis, and the task it suggests (selected); a photo
    that looks clean empties the selection (Restore then asks which task to run); an unreadable one leaves it."""
    report = D.check_input(image)
    return report.message, gr.update(value=report.task) if report.select else gr.update()


@user_errors
def on_reference_upload(reference):
    return D.check_reference(reference)


@user_errors
def diagnose(image):            # numpy and scikit-image only: no GPU to ask for
    """Which task fits a photo: {"task": denoise | derain | deblur | null (looks clean), "finding": a sentence,
    "scores": the measures behind it} (drcnet/serve/diagnose.py)."""
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
    prep: list                      # [reference, synthesize, sigma, rain, blur_size, seed]: InputSettings' order
    upload_msg: gr.Markdown
    reference_msg: gr.Markdown
    current_tab: gr.State


@dataclass
class TabRun:
    """What an example click runs on a tab: the handler, its inputs (without the current tab) and outputs."""
    tab: str
    fn: object
    inputs: list
    outputs: list
    kw: dict = field(default_factory=dict)
    then: "TabRun | None" = None    # a follow-up after success (Compare's pickers)


def build_controls() -> Controls:
    current_tab = gr.State("restore")       # where an example click runs
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                image = PathImage(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                  label="Input image", height=280)
                reference = PathImage(type="filepath", image_mode=None, sources=["upload", "clipboard"], height=280,
                                      label="Clean reference (optional, for PSNR/SSIM)")
            with gr.Row():
                # checked on arrival, on every tab: the reader's message, or which task fits the photo
                upload_msg = gr.Markdown(elem_id="upload-message")
                reference_msg = gr.Markdown(elem_id="reference-message")
        with gr.Column(scale=2):
            # empty (None) after a photo that looks clean: every tab then asks which task to run
            task = gr.Radio(list(D.TASKS), value="denoise", label="Task")
            synthesize = gr.Checkbox(DEFAULT.synthesize,
                                     label="Degrade a clean photo first (the input is the clean photo)")
            with gr.Accordion("Synthetic degradation settings", open=False):
                sigma = gr.Slider(0, 75, value=DEFAULT.sigma, step=1, label="Noise sigma (0-255 units), denoise")
                rain = gr.Radio(["light", "heavy"], value=DEFAULT.rain, label="Rain, derain")
                blur_size = gr.Slider(13, 31, value=DEFAULT.blur_size, step=2, label="Blur kernel size (px), deblur")
                seed = gr.Number(DEFAULT.seed, precision=0, label="Seed")
    c = Controls(image, reference, task, [reference, synthesize, sigma, rain, blur_size, seed], upload_msg,
                 reference_msg, current_tab)
    image.upload(on_upload, image, [upload_msg, task], api_name=False)
    image.clear(lambda: "", None, upload_msg, api_name=False, queue=False)
    reference.upload(on_reference_upload, reference, reference_msg, api_name=False)
    reference.clear(lambda: "", None, reference_msg, api_name=False, queue=False)
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
    stage1.change(lambda show: gr.update(visible=show), stage1, stage1_img, api_name=False, queue=False)
    result_file = gr.File(label="Result file (PNG as the input was: alpha, grey, 16-bit kept)", elem_id="result-file")
    inputs, outputs = [c.image, c.task, *c.prep, stage1], [slider, stage1_img, facts, result_file]
    run_btn.click(restore, inputs, outputs, api_name="restore", concurrency_limit=1)
    return TabRun("restore", restore, inputs, outputs, {"concurrency_limit": 1})


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
        t = gr.Slider(0.0, 1.0, value=lambda: REGISTRY.trained_t("denoise"), step=0.0001, label="Mask threshold t",
                      elem_id="t-slider", scale=3)
        # released (or typed: its number box releases on blur), it sets t and re-inspects
        coverage = gr.Slider(1, 99, value=10, step=1, elem_id="coverage", scale=2, label="Mask coverage (%)",
                             info="sets t so that this share of the block's M_sr lies at or above it")
    c.task.change(lambda k: gr.update(minimum=0.0, maximum=1.0, value=REGISTRY.trained_t(k), label="Mask threshold t",
                                      info=None) if k else gr.update(), c.task, t, api_name=False, queue=False)
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
        return event.success(set_t_slider, t_control, t, api_name=False, queue=False)
    then_set_slider(t.release(inspect, ins_in, ins_out, api_name="inspect"))
    for event in (inspect_btn.click, stage.input, level.release, statistics.input):
        then_set_slider(event(inspect_trained, trained_in, ins_out, api_name=False))
    sweep_btn.click(t_sweep, [c.image, c.task, stage, level, *c.prep], sweep_img, api_name="t_sweep").success(
        lambda: gr.update(visible=True), None, sweep_img, api_name=False, queue=False)
    coverage_in = [c.image, c.task, stage, level, t, coverage, *c.prep]
    then_set_slider(coverage.release(coverage_t, coverage_in, t, api_name="coverage_t").success(
        inspect, ins_in, ins_out, api_name=False))
    fig_btn.click(inspect_figure, ins_in, ins_fig, api_name="inspect_figure").success(
        lambda: gr.update(visible=True), None, ins_fig, api_name=False, queue=False)
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
    lam.release(intra_cr, cr_in, cr_out, api_name=False)
    return TabRun("intra_cr", intra_cr, cr_in, cr_out)


def build_compare_tab(c: Controls) -> TabRun:
    gr.Markdown("The input through DRCNet (and its stage 1), any ablation checkpoints (`<task>-*.safetensors`) "
                "and the classical baselines (inputs downscaled to at most "
                f"{REGISTRY.limits.inspect_max_side} px). BM3D is slow: the other results appear first.")
    cmp_btn = gr.Button("Compare", variant="primary")
    cmp_images, cmp_rows, cmp_point = gr.State(None), gr.State(None), gr.State(None)
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
    cmp_in, cmp_out = [c.image, c.task, *c.prep], [gallery, cmp_table, cmp_notes, cmp_images, cmp_rows]
    choices = TabRun("compare", compare_choices, [cmp_images], [left, right, pair_slider, zoom_src])
    cmp_btn.click(compare, cmp_in, cmp_out, api_name="compare").success(
        compare_choices, choices.inputs, choices.outputs, api_name=False)
    for dd in (left, right):
        dd.input(compare_pair, [cmp_images, left, right], pair_slider, api_name=False)
    zoom_src.select(zoom, [cmp_images, cmp_rows, zoom_size], [zoom_gallery, cmp_point], api_name=False)
    cmp_fig_btn.click(compare_figure, [cmp_images, cmp_rows, cmp_point, zoom_size], cmp_fig,
                      api_name=False)   # works on session state: no API use
    return TabRun("compare", compare, cmp_in, cmp_out, then=choices)


def build_examples(c: Controls, runs: list[TabRun]) -> None:
    """A captioned gallery instead of gr.Examples' table of raw parameters; a click fills the (hidden) parameters
    into the controls, then runs the tab the visitor is on."""
    if not D.examples():
        return
    ex_gallery = gr.Gallery(D.example_gallery(), columns=6, height="auto", allow_preview=False,
                            label="Examples (click one to run the tab you are on; \"clean + ...\": a clean photo, "
                                  "degraded that way when clicked)", elem_id="examples", format="png")
    filled = ex_gallery.select(example_values, None, [c.image, c.task, *c.prep, c.upload_msg, c.reference_msg],
                               api_name=False)
    for run in runs:
        step = filled.success(only_on(run.tab, run.fn, len(run.outputs)), [c.current_tab, *run.inputs],
                              run.outputs, api_name=False, **run.kw)
        if run.then is not None:
            then = run.then
            step.success(only_on(then.tab, then.fn, len(then.outputs)), [c.current_tab, *then.inputs],
                         then.outputs, api_name=False)


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
                tab.select(lambda tab_id=tab_id: tab_id, None, c.current_tab, api_name=False, queue=False)
        build_examples(c, runs)
        refresh = gr.Button("Refresh checkpoint status", size="sm")
        refresh.click(status, None, status_md, api_name="status")
    return app


demo = build()
demo.queue(default_concurrency_limit=1, max_size=16)

if __name__ == "__main__":
    # No server_name / server_port here: Gradio then reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself.
    demo.launch(max_file_size=MAX_FILE_SIZE, allowed_paths=[str(ASSETS)], prevent_thread_lock=True)
    REGISTRY.warm_up()          # compiled graphs build in the background once the page is served
    demo.block_thread()
