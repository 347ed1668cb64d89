"""DRCNet Explorer: the Gradio app (a thin layer: the logic lives in the drcnet/demo/ package, tested without a browser).

    python app.py                       # honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
    DRCNET_CHECKPOINTS=/path python app.py

API endpoints (see the README, "The app"): /restore, /inspect, /t_sweep, /intra_cr, /compare, /diagnose,
/status.
"""
from __future__ import annotations

import contextlib
import functools
import inspect as inspect_module
import logging
import os

import gradio as gr

from drcnet import demo as D
from drcnet.model.config import T_DEFAULT

log = logging.getLogger("drcnet.app")

try:                                    # Hugging Face ZeroGPU: a GPU is attached per call
    import spaces
    gpu = spaces.GPU
except ImportError:                     # anywhere else: a no-op
    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

MAX_FILE_SIZE = os.environ.get("DRCNET_MAX_FILE_SIZE", "25mb")


class PathImage(gr.Image):
    """gr.Image that hands the uploaded file's path over untouched: gr.Image(type="filepath") still opens the
    file with PIL first (an unreadable upload then fails inside Gradio with a generic message, and a non-RGB
    image_mode converts it). Decoding, EXIF, 16-bit, alpha and the bomb guard are drcnet.serve.imageio's job."""
    is_template = True              # the browser side is the ordinary Image component

    def preprocess(self, payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return super().preprocess(payload)


def user_errors(fn):
    """Errors a user can act on become gr.Error (shown in the UI, raised by gradio_client with this text);
    anything else is logged and reported briefly, and the app stays up. Generators (Compare) are wrapped
    as generators, so an error in a later step is caught too."""
    if inspect_module.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            with _user_errors(fn):
                yield from fn(*args, **kwargs)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _user_errors(fn):
            return fn(*args, **kwargs)
    return wrapper


@contextlib.contextmanager
def _user_errors(fn):
    try:
        yield
    except gr.Error:
        raise
    except Exception as e:
        message = D.user_message(e)         # a bad file, a missing checkpoint, out of memory
        if message is not None:
            raise gr.Error(message, print_exception=False) from None
        log.exception("unexpected error in %s", fn.__name__)
        raise gr.Error(f"Unexpected error ({type(e).__name__}: {D.hide_paths(str(e))}); the app is still "
                       "running.") from None


# ---------------------------------------------------------------- handlers (API signatures)

@gpu
@user_errors
def restore(image, task, reference=None, synthesize=False, sigma=25, rain="light", blur_size=21, seed=0,
            stage1=False, progress=gr.Progress()):
    """Restore one image. image: file path; task: denoise | derain | deblur (None, no task selected: an error
    message that asks which, with the clean-photo warning when the photo looks clean). Returns (before, after),
    the stage-1 output (or None), a line of facts (device, precision, time, tiles, PSNR/SSIM when known) and the
    result as a PNG file the way the input was (alpha re-attached, grey, 16 bits)."""
    def tick(i, n):
        progress(i / n, desc=f"tile {i}/{n}")
    r = D.restore(image, task, reference, synthesize, sigma, rain, blur_size, seed, stage1, progress=tick)
    return (D.display_png(r.before, "before"), D.display_png(r.after, "after")), r.stage1, r.facts, str(r.download)


@gpu
@user_errors
def inspect(image, task, stage=1, level=0, t=T_DEFAULT, reference=None, synthesize=False, sigma=25, rain="light",
            blur_size=21, seed=0, statistics="matched"):
    """Re-run at threshold t and return (before, after), the chosen block's maps and the all-blocks overview.
    statistics: "matched" (DFR statistics over windows of the training patch) or "whole" (the paper's)."""
    r = D.inspect(image, task, stage, level, t, reference, synthesize, sigma, rain, blur_size, seed, statistics)
    return ((D.display_png(r.before, "before"), D.display_png(r.after, "after")), D.display_png(r.block, "block"),
            D.display_png(r.overview, "overview"), r.facts)


@gpu
@user_errors
def quantile_t(image, task, stage=1, level=0, t=T_DEFAULT, q=0.9, reference=None, synthesize=False, sigma=25,
               rain="light", blur_size=21, seed=0):
    """The t at the q-quantile of the chosen block's M_sr (coverage 1 - q); the UI then re-inspects."""
    return D.quantile_t(image, task, stage, level, t, q, reference, synthesize, sigma, rain, blur_size, seed)


@gpu
@user_errors
def inspect_figure(image, task, stage=1, level=0, t=T_DEFAULT, reference=None, synthesize=False, sigma=25,
                   rain="light", blur_size=21, seed=0, statistics="matched"):
    """The chosen block's figure as a high-resolution PNG and a PDF, for slides."""
    return [str(p) for p in D.inspect_figure(image, task, stage, level, t, reference, synthesize, sigma, rain,
                                             blur_size, seed, statistics)]


@gpu
@user_errors
def t_sweep(image, task, stage=1, level=0, reference=None, synthesize=False, sigma=25, rain="light",
            blur_size=21, seed=0):
    """Mask coverage (and PSNR with a reference) for 8 values of t at quantiles of the block's own M_sr."""
    plot, rows = D.t_sweep(image, task, stage, level, reference, synthesize, sigma, rain, blur_size, seed)
    return plot


@gpu
@user_errors
def intra_cr(image, task, lam=0.95, reference=None, synthesize=True, sigma=25, rain="light", blur_size=21,
             seed=0):
    """Negatives N = lambda I + (1-lambda) J, Intra-CR ratios per VGG layer against lambda, Extra-CR beside it."""
    r = D.intra_cr(image, task, lam, reference, synthesize, sigma, rain, blur_size, seed)
    return [img for img, _ in r.negatives], r.plot, {"headers": r.headers, "data": r.table}   # labels drawn in


@gpu
@user_errors
def compare(image, task, reference=None, synthesize=False, sigma=25, rain="light", blur_size=21, seed=0,
            progress=gr.Progress()):
    """DRCNet, its stage 1, ablation checkpoints and classical baselines on one input: gallery, metrics table
    (best PSNR first), notes. Yields the fast methods first, then BM3D when it is done. The results themselves go
    to a session State (not part of the API answer) for the slider, the zoom and the figure."""
    def tick(i, n, name):
        progress(i / n, desc=f"{name} ({i + 1}/{n})")
    for r in D.compare_steps(image, task, reference, synthesize, sigma, rain, blur_size, seed, progress=tick):
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
    return [str(p) for p in D.compare_figure(images, table, point, int(size))]


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


def only_on(tab: str, fn, outputs: int):
    """fn as a listener of an example click that runs only when the visitor is on `tab` (the first argument,
    the current tab's id); on any other tab it changes none of its `outputs`. Generators stay generators."""
    skip = tuple(gr.skip() for _ in range(outputs))
    takes_progress = "progress" in inspect_module.signature(fn).parameters
    if inspect_module.isgeneratorfunction(fn):
        def run_stream(current, *args, progress=gr.Progress()):
            if current != tab:
                yield skip
                return
            yield from fn(*args, **({"progress": progress} if takes_progress else {}))
        return run_stream

    def run(current, *args, progress=gr.Progress()):
        if current != tab:
            return skip
        return fn(*args, **({"progress": progress} if takes_progress else {}))
    return run


def status():
    """Which task checkpoints are present (markdown)."""
    return D.status_markdown()


# ---------------------------------------------------------------- UI

INTRO = """# DRCNet Explorer
Image restoration with **DRCNet** (Li et al., *Dynamic Image Restoration Contrastive Network*, ECCV 2022):
denoising, deraining and deblurring. Upload or paste a photo (or pick an example), choose the task, and either
restore it as it is or **degrade a clean photo first** with the project's synthetic noise, rain or motion blur,
so the result can be scored (PSNR/SSIM) against the original."""


def build() -> gr.Blocks:
    with gr.Blocks(title="DRCNet Explorer") as app:
        current_tab = gr.State("restore")       # where an example click runs
        gr.Markdown(INTRO)
        status_md = gr.Markdown(D.status_markdown(), elem_id="checkpoint-status")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    image = PathImage(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                      label="Input image",
                                     height=280)
                    reference = PathImage(type="filepath", image_mode=None, sources=["upload", "clipboard"], height=280,
                                         label="Clean reference (optional, for PSNR/SSIM)")
                with gr.Row():
                    # checked on arrival, on every tab: the reader's message, or which task fits the photo
                    upload_msg = gr.Markdown(elem_id="upload-message")
                    reference_msg = gr.Markdown(elem_id="reference-message")
            with gr.Column(scale=2):
                # empty (None) after a photo that looks clean: every tab then asks which task to run
                task = gr.Radio(list(D.TASKS), value="denoise", label="Task")
                synthesize = gr.Checkbox(False, label="Degrade a clean photo first (the input is the clean photo)")
                with gr.Accordion("Synthetic degradation settings", open=False):
                    sigma = gr.Slider(0, 75, value=25, step=1, label="Noise sigma (0-255 units), denoise")
                    rain = gr.Radio(["light", "heavy"], value="light", label="Rain, derain")
                    blur_size = gr.Slider(13, 31, value=21, step=2, label="Blur kernel size (px), deblur")
                    seed = gr.Number(0, precision=0, label="Seed")
        prep = [reference, synthesize, sigma, rain, blur_size, seed]
        image.upload(on_upload, image, [upload_msg, task], api_name=False)
        image.clear(lambda: "", None, upload_msg, api_name=False, queue=False)
        reference.upload(on_reference_upload, reference, reference_msg, api_name=False)
        reference.clear(lambda: "", None, reference_msg, api_name=False, queue=False)
        diagnosis = gr.JSON(visible=False)
        gr.Button(visible=False).click(diagnose, image, diagnosis, api_name="diagnose")

        with gr.Tabs():
            with gr.Tab("Restore", id="restore") as restore_tab:
                with gr.Row():
                    stage1 = gr.Checkbox(False, label="Also show the stage-1 output")
                    run_btn = gr.Button("Restore", variant="primary")
                slider = gr.ImageSlider(type="pil", format="png", label="Before / after",
                                        buttons=["download", "fullscreen"], max_height=600, elem_id="restore-slider")
                facts = gr.Markdown(label="facts", elem_id="restore-facts")
                stage1_img = gr.Image(type="pil", format="png", label="Stage-1 output", visible=False, height=360)
                stage1.change(lambda show: gr.update(visible=show), stage1, stage1_img, api_name=False,
                              queue=False)
                result_file = gr.File(label="Result file (PNG as the input was: alpha, grey, 16-bit kept)",
                                      elem_id="result-file")
                restore_out = [slider, stage1_img, facts, result_file]
                run_btn.click(restore, [image, task, *prep, stage1], restore_out, api_name="restore",
                              concurrency_limit=1)

            with gr.Tab("Inspect DFR", id="inspect") as inspect_tab:
                gr.Markdown("Maps of one DFR block (spatial response, mask at t, spatial filter, energy attention, "
                            "identity, fused output). **Inputs are downscaled to at most "
                            f"{D.INSPECT_MAX_SIDE} px** (long side) here for speed. Moving t re-runs the model.")
                with gr.Row():
                    stage = gr.Radio([1, 2], value=1, label="Stage")
                    level = gr.Slider(0, 3, value=0, step=1, label="Level")
                    # fine steps: a trained M_sr often spans only a few hundredths (e.g. 0.47-0.51)
                    t = gr.Slider(0.0, 1.0, value=T_DEFAULT, step=0.0001, label="Mask threshold t", elem_id="t-slider")
                    # the engine's default takes the DFR statistics over training-patch windows; "whole" is the
                    # paper's (and breaks smooth regions of large photos: docs/design.md)
                    statistics = gr.Radio([("matched to training", "matched"), ("whole image (paper)", "whole")],
                                          value="matched", label="DFR statistics", elem_id="statistics")
                with gr.Row():
                    inspect_btn = gr.Button("Inspect", variant="primary")
                    sweep_btn = gr.Button("Sweep t (9 runs)")
                    q = gr.Number(0.9, minimum=0, maximum=1, step=0.05, elem_id="quantile",
                                  label="Quantile q of this block's M_sr (mask coverage 1 - q)")
                    q_btn = gr.Button("Set t at this quantile", elem_id="quantile-btn")
                    fig_btn = gr.Button("Figure for slides (PNG + PDF)", elem_id="inspect-figure-btn")
                ins_fig = gr.File(label="Figure of this block (PNG 200 dpi, PDF)", file_count="multiple",
                                  elem_id="inspect-figure", visible=False)
                ins_facts = gr.Markdown(label="facts", elem_id="inspect-facts")
                ins_slider = gr.ImageSlider(type="pil", format="png", label="Before / after at this t",
                                            max_height=420)
                block_img = gr.Image(type="pil", format="png", label="This block's maps", show_label=False,
                                     elem_id="inspect-block")
                overview_img = gr.Image(type="pil", format="png", label="All blocks: response maps and masks",
                                        show_label=False, elem_id="inspect-overview")
                sweep_img = gr.Image(type="pil", format="png", label="Coverage and PSNR against t", elem_id="sweep-plot",
                                     show_label=False, visible=False)     # shown once a sweep has run
                ins_in = [image, task, stage, level, t, *prep, statistics]
                ins_out = [ins_slider, block_img, overview_img, ins_facts]
                inspect_btn.click(inspect, ins_in, ins_out, api_name="inspect")
                t.release(inspect, ins_in, ins_out, api_name=False)
                stage.input(inspect, ins_in, ins_out, api_name=False)
                level.release(inspect, ins_in, ins_out, api_name=False)
                statistics.input(inspect, ins_in, ins_out, api_name=False)
                sweep_btn.click(t_sweep, [image, task, stage, level, *prep], sweep_img, api_name="t_sweep").success(
                    lambda: gr.update(visible=True), None, sweep_img, api_name=False, queue=False)
                q_btn.click(quantile_t, [image, task, stage, level, t, q, *prep], t, api_name="quantile_t").success(
                    inspect, ins_in, ins_out, api_name=False)
                fig_btn.click(inspect_figure, ins_in, ins_fig, api_name="inspect_figure").success(
                    lambda: gr.update(visible=True), None, ins_fig, api_name=False, queue=False)

            with gr.Tab("Intra-CR explorer", id="intra_cr") as intra_cr_tab:
                gr.Markdown("Negatives by mixup, **N = lambda I + (1 - lambda) J** (I degraded, J clean); the "
                            "paper uses lambda = 1.0, 0.95, 0.9. The curves show the Intra-CR ratio "
                            "d(X, J) / d(X, N) per VGG19 layer for the restored output, the degraded input and the "
                            "clean image; Extra-CR uses another image's degraded version as the negative. Needs a "
                            "clean reference (degrade a clean photo first, or upload one).")
                with gr.Row():
                    lam = gr.Slider(0.0, 1.0, value=0.95, step=0.01, label="lambda")
                    cr_btn = gr.Button("Explore", variant="primary")
                negatives = gr.Gallery(label="Negatives N (paper's lambdas and the slider's)", columns=4,
                                       height="auto", format="png", elem_id="cr-negatives",
                                       object_fit="contain")     # whole pictures: their labels are drawn in
                cr_plot = gr.Image(type="pil", format="png", label="Intra-CR ratio against lambda; Extra-CR",
                                   elem_id="cr-plot", show_label=False)
                cr_table = gr.Dataframe(label="CR ratios per VGG layer", interactive=False, elem_id="cr-table")
                cr_in = [image, task, lam, *prep]
                cr_btn.click(intra_cr, cr_in, [negatives, cr_plot, cr_table], api_name="intra_cr")
                lam.release(intra_cr, cr_in, [negatives, cr_plot, cr_table], api_name=False)

            with gr.Tab("Compare", id="compare") as compare_tab:
                gr.Markdown("The input through DRCNet (and its stage 1), any ablation checkpoints "
                            "(`<task>-*.safetensors`) and the classical baselines (inputs downscaled to at most "
                            f"{D.INSPECT_MAX_SIDE} px). BM3D is slow: the other results appear first.")
                cmp_btn = gr.Button("Compare", variant="primary")
                cmp_images, cmp_rows, cmp_point = gr.State(None), gr.State(None), gr.State(None)
                with gr.Row():
                    left = gr.Dropdown([], label="Left of the slider", elem_id="cmp-left", interactive=True)
                    right = gr.Dropdown([], label="Right of the slider", elem_id="cmp-right", interactive=True)
                pair_slider = gr.ImageSlider(type="pil", format="png", label="Pick any two results",
                                             elem_id="cmp-slider", max_height=520, buttons=["fullscreen"])
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
                cmp_table = gr.Dataframe(label="Metrics and timings (best PSNR first)", interactive=False,
                                         elem_id="compare-table")
                cmp_notes = gr.Markdown(label="notes", elem_id="compare-notes")
                gallery = gr.Gallery(label="All results", columns=5, height=360, format="png")
                cmp_btn.click(compare, [image, task, *prep], [gallery, cmp_table, cmp_notes, cmp_images, cmp_rows],
                              api_name="compare").success(
                    compare_choices, cmp_images, [left, right, pair_slider, zoom_src], api_name=False)
                for dd in (left, right):
                    dd.input(compare_pair, [cmp_images, left, right], pair_slider, api_name=False)
                zoom_src.select(zoom, [cmp_images, cmp_rows, zoom_size], [zoom_gallery, cmp_point], api_name=False)
                cmp_fig_btn.click(compare_figure, [cmp_images, cmp_rows, cmp_point, zoom_size], cmp_fig,
                                  api_name=False)   # works on session state: no API use

        for tab in (restore_tab, inspect_tab, intra_cr_tab, compare_tab):
            tab.select(lambda tab_id=tab.id: tab_id, None, current_tab, api_name=False, queue=False)
        rows = D.examples()
        if rows:
            # a captioned gallery instead of gr.Examples' table of raw parameters; a click fills the (hidden)
            # parameters into the controls, then runs the tab the visitor is on
            ex_gallery = gr.Gallery(D.example_gallery(), columns=6, height="auto", allow_preview=False,
                                    label="Examples (click one to run the tab you are on; \"clean + ...\": a clean "
                                          "photo, degraded that way when clicked)", elem_id="examples", format="png")
            filled = ex_gallery.select(example_values, None, [image, task, *prep, upload_msg, reference_msg],
                                       api_name=False)
            filled.success(only_on("restore", restore, len(restore_out)), [current_tab, image, task, *prep, stage1],
                           restore_out, api_name=False, concurrency_limit=1)
            filled.success(only_on("inspect", inspect, len(ins_out)), [current_tab, *ins_in], ins_out,
                           api_name=False)
            filled.success(only_on("intra_cr", intra_cr, 3), [current_tab, *cr_in], [negatives, cr_plot, cr_table],
                           api_name=False)
            filled.success(only_on("compare", compare, 5), [current_tab, image, task, *prep],
                           [gallery, cmp_table, cmp_notes, cmp_images, cmp_rows], api_name=False).success(
                only_on("compare", compare_choices, 4), [current_tab, cmp_images], [left, right, pair_slider, zoom_src],
                api_name=False)
        refresh = gr.Button("Refresh checkpoint status", size="sm")
        refresh.click(status, None, status_md, api_name="status")
    return app


demo = build()
demo.queue(default_concurrency_limit=1, max_size=16)

if __name__ == "__main__":
    # No server_name / server_port here: Gradio then reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself.
    demo.launch(max_file_size=MAX_FILE_SIZE, allowed_paths=[str(D.ASSETS)], prevent_thread_lock=True)
    D.warm_up_compiled()          # compiled graphs build in the background once the page is served
    demo.block_thread()
