"""The compiled-path speed table (issue 20): `python scripts/benchmark.py [--quick]`.

Every row times its methods in turns in this one process (drcnet.eval.timing.interleaved_medians: a, b, c, a, b, c
..., median of --repeats after a warm-up), so the ratios survive a machine whose load changes; the seconds do
not, so run it on an idle machine. Compile times are cold unless .cache/graphs already holds the graph (the
engine's compiled tile graph) or .cache/inductor the training kernels.

- engine: the shipped denoise checkpoint (lite) through Restorer.restore (numpy in and out) on a real --size px
  photo: the eager whole-image pass (the paper's statistics, the baseline), the default path (the checkpoint's
  inference spec: matched tiles) eager and compiled, and NAFNet-w32 (drcnet/eval/nafnet.py) as its own code
  runs: eager, bf16 weights, channels_last.
- floor: the paper model compiled against the bf16 convolution floor (its conv FLOPs at the FLOP/s of one large
  bf16 conv, drcnet.eval.bench.peak_conv_flops), the conv measured in the same turns.
- train: patches/s of one lite training step (batch --batch of --patch px, bf16 autocast where the CPU has fast
  bf16, channels_last, Adam; out1 and out2 each take the loss, as the trainer does), with L1 and with Intra-CR,
  eager and with torch.compile of the network and the loss's VGG.
Random weights in the floor and training rows: the speed of a forward does not depend on their values.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn

from drcnet.core.device import cpu_has_fast_bf16, describe_device
from drcnet.eval.timing import conv_flops, floor_conv, interleaved_medians, synthetic_image
from drcnet.serve.engine import Restorer
from drcnet.model.network import create_model
from drcnet.eval import nafnet


def real_photo(size: int) -> np.ndarray:
    """scikit-image's astronaut (a real 512 px photo, bundled: no download) at size x size, float32 RGB."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC)
    return np.asarray(photo, np.float32) / 255


def checked_graph(checkpoint, task: str, inspector: bool = False) -> tuple[Restorer, float]:
    """A compiling Restorer as the app makes it: its graph (inspector: and the inspector's graph) built and
    checked against eager on the task's example photos; and the seconds that took. Exits when a graph does not
    serve here."""
    from drcnet.eval.safety import example_photos

    restorer = Restorer.from_checkpoint(checkpoint, device="cpu", compile=True)
    start = time.perf_counter()
    photos = list(example_photos(task).values())
    restorer.warm_up(photos, wait=True)
    if inspector:
        restorer.warm_up_inspector(photos, wait=True)
    for graph in [restorer.graph] + ([restorer.probe_graph] if inspector else []):
        if graph.state != "ready":
            raise SystemExit(f"the compiled graph does not serve here: {graph.describe()}")
    return restorer, time.perf_counter() - start


def engine_row(size: int, repeats: int) -> dict:
    """The shipped denoise checkpoint on a real photo: the engine's eager whole-image pass (the paper's
    statistics: the baseline of every ratio), its default path (the checkpoint's inference spec) eager and
    compiled (the graph checked against eager on the task's examples, as the app builds it), and NAFNet-w32 as
    its own code runs (eager, bf16 weights, channels_last)."""
    from drcnet.core.paths import checkpoint_file, checkpoints_dir

    checkpoint = checkpoint_file(checkpoints_dir(), "denoise")
    whole = Restorer.from_checkpoint(checkpoint, device="cpu", statistics="whole")
    eager = Restorer.from_checkpoint(checkpoint, device="cpu")
    compiled, compile_s = checked_graph(checkpoint, "denoise", inspector=True)
    image = real_photo(size)
    _, run_nafnet = nafnet.as_its_code_runs(image)
    t = interleaved_medians({"eager whole image": lambda: whole.restore(image, tile=0),
                             "default eager": lambda: eager.restore(image),
                             "default compiled": lambda: compiled.restore(image),
                             "NAFNet-w32 eager": run_nafnet,
                             "inspector eager": lambda: inspector_pass(eager, image),
                             "inspector compiled": lambda: inspector_pass(compiled, image)}, repeats)
    assert compiled.last_stats["compiled"] >= 1, "the inspector's graph did not run"
    compiled.restore(image)
    assert compiled.last_stats["compiled"] >= 1, "the compiled graph did not run"
    return dict(t, compile_s=compile_s, spec=eager.describe_statistics(), tiles=eager.last_stats["tiles"],
                agreement=compiled.graph.agreement)


def inspector_pass(restorer: Restorer, image: np.ndarray) -> None:
    """The probed pass of /inspect (drcnet.demo.inspect_tab.probe_run): every block's M_sr and mask, one block's
    every map, stitched from the tiles; through the inspector's graph where it is ready, else the hooks."""
    from drcnet.model.probes import FeatureProbe

    with FeatureProbe(restorer.model, pca=False, full_blocks={(1, 0)}) as probe:
        restorer.restore(image, probe=probe)
        assert probe.maps


def floor_row(size: int, repeats: int) -> dict:
    """The paper model compiled (whole image, random weights) against the bf16 convolution floor."""
    torch.manual_seed(0)
    model = create_model("paper").eval().to(torch.bfloat16, memory_format=torch.channels_last)
    image = synthetic_image(size, size)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(model, dynamic=False)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
    compile_s = time.perf_counter() - start

    def run_compiled():
        with torch.inference_mode():
            compiled(x)

    flops = conv_flops(create_model("paper").eval(), torch.from_numpy(image).permute(2, 0, 1)[None])
    conv, conv_flops_per_run = floor_conv(torch.device("cpu"))
    t = interleaved_medians({"paper compiled": run_compiled, "floor conv": conv}, repeats)
    floor = flops / (conv_flops_per_run / t["floor conv"])     # the paper's conv FLOPs at the floor conv's pace
    return {"paper compiled": t["paper compiled"], "floor": floor, "gflops": flops / 1e9, "compile_s": compile_s}


# ---------------------------------------------------------------- training steps

def train_step(preset: str, loss_name: str, batch: int, patch: int, compile: bool):
    """One training step as the trainer takes it (out1 and out2 each under the loss, Adam): (step(), model)."""
    from drcnet.train.losses import make_loss

    torch.manual_seed(0)
    memory_format = torch.channels_last
    model = create_model(preset).train().to(memory_format=memory_format)
    criterion = make_loss(loss_name)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4)
    clean = torch.rand(batch, 3, patch, patch)
    degraded = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1).contiguous(memory_format=memory_format)
    bf16 = cpu_has_fast_bf16()

    # Compiled: the network and the loss's VGG, module by module. Compiling the whole loss function instead
    # breaks the graph 7 times on the Intra-CR feature memo (losses.py, _reference_features) and ran slower than
    # eager in a smoke run; the loss's own arithmetic on the features is small and stays eager.
    net = torch.compile(model) if compile else model
    if compile and getattr(criterion, "cr", None) is not None:
        criterion.cr.vgg = torch.compile(criterion.cr.vgg)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out1, out2 = net(degraded)
            loss = criterion(out1, clean, degraded) + criterion(out2, clean, degraded)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step, model


def train_row(preset: str, loss_name: str, batch: int, patch: int, repeats: int) -> dict:
    eager, _ = train_step(preset, loss_name, batch, patch, compile=False)
    compiled, _ = train_step(preset, loss_name, batch, patch, compile=True)
    start = time.perf_counter()
    compiled()                                  # compiles the forward and its backward (Adam stays eager)
    compile_s = time.perf_counter() - start
    t = interleaved_medians({"eager": eager, "compiled": compiled}, repeats)
    return {"eager": batch / t["eager"], "compiled": batch / t["compiled"], "compile_s": compile_s}


# ---------------------------------------------------------------- the table

def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="scripts/benchmark.py", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7, help="timed turns per row after one warm-up (>= 5)")
    p.add_argument("--size", type=int, default=512, help="inference rows: image side in px")
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rows", default="engine,floor,train", help="any of engine, floor, train")
    p.add_argument("--losses", default="l1,intra-cr", help="the training rows' losses")
    p.add_argument("--quick", action="store_true", help="smoke run: 128 px, tiny-preset training on batch 2 of "
                                                       "64 px, 2 repeats")
    args = p.parse_args(argv)
    train_preset = "lite"
    if args.quick:
        args.size, args.patch, args.batch, args.repeats, train_preset = 128, 64, 2, 2, "tiny"
    rows = args.rows.split(",")
    print(f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}, median of {args.repeats} turns "
          f"after 1 warm-up, interleaved per row\n")
    print("| row | method | median | ratio | target | compile (s) |")
    print("|---|---|---:|---:|---|---:|")
    s = args.size
    if "engine" in rows:
        r = engine_row(s, args.repeats)
        base = r["eager whole image"]
        db, worst = r["agreement"]
        print(f"| engine, shipped denoise (lite), {s}x{s} photo | eager, whole image (the paper's statistics) "
              f"| {base:.3f} s | 1.00 | | |")
        print(f"| | default path eager ({r['spec']}, {r['tiles']} tiles) | {r['default eager']:.3f} s "
              f"| {r['default eager'] / base:.2f} | | |")
        print(f"| | default path compiled (checked: {db:.1f} dB, worst {worst} levels) "
              f"| {r['default compiled']:.3f} s | {r['default compiled'] / base:.2f} | <= 1.0 | {r['compile_s']:.0f} |")
        print(f"| | NAFNet-w32 eager bf16 | {r['NAFNet-w32 eager']:.3f} s | {r['NAFNet-w32 eager'] / base:.2f} "
              f"| default compiled no slower | |")
        for path in ("eager", "compiled"):
            print(f"| | inspector pass {path} (probed: every block's M_sr and mask, one block's maps) "
                  f"| {r[f'inspector {path}']:.3f} s | {r[f'inspector {path}'] / base:.2f} | | |")
    if "floor" in rows:
        r = floor_row(s, args.repeats)
        print(f"| paper {s}x{s} ({r['gflops']:.0f} conv GFLOPs) | bf16 conv floor | {r['floor']:.3f} s | 1.00 | | |")
        print(f"| | compiled | {r['paper compiled']:.3f} s | {r['paper compiled'] / r['floor']:.2f} x floor "
              f"| <= 1.5x | {r['compile_s']:.0f} |")
    if "train" in rows:
        for loss in args.losses.split(","):
            r = train_row(train_preset, loss, args.batch, args.patch, args.repeats)
            name = f"train {train_preset} {args.batch}x{args.patch}px, {loss}"
            print(f"| {name} | eager | {r['eager']:.2f} patches/s | 1.00 | | |")
            print(f"| | compiled | {r['compiled']:.2f} patches/s | {r['compiled'] / r['eager']:.2f} x | >= 1.4x "
                  f"| {r['compile_s']:.0f} |")
