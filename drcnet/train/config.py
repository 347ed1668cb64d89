"""The run's configuration: `TrainConfig` (a frozen dataclass, one field per flag of `python -m drcnet.train`),
the command-line parser built from its fields, and `--recipe` defaults."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from drcnet.core.tasks import TASKS
from drcnet.data.degrade import TRAIN_KERNELS, KernelSizes
from drcnet.model.config import PRESETS

DESCRIPTION = "Train DRCNet (python -m drcnet.train). The defaults are the paper's recipe (spec section 5)."
LOSSES = ("intra-cr", "extra-cr", "aecr", "l1", "l1+fft")


@dataclass(frozen=True)
class TrainConfig:
    """The run's configuration, as given on the command line (or by a recipe); never changed while training."""
    # what to train
    recipe: typing.Optional[str] = field(default=None, metadata={
        "help": "take the [train] table of drcnet/recipes/RECIPE.toml as defaults (and its task); flags given "
                "on the command line still win"})
    task: str = field(default="denoise", metadata={"help": "denoise | derain | deblur"})
    preset: str = field(default="paper", metadata={"help": "model size: paper | lite | tiny"})
    # data
    data: typing.Optional[str] = field(default=None, metadata={
        "help": "folder of clean photos, degraded on the fly (default: the fetched training split)"})
    paired: typing.Optional[str] = field(default=None, metadata={
        "help": "folder of a real paired benchmark (instead of --data)"})
    layout: str = field(default="generic", metadata={"help": "layout of --paired: sidd | gopro | rain13k | generic"})
    val_data: typing.Optional[str] = field(default=None, metadata={
        "help": "folder of clean validation photos (default: the fetched validation split, else the --data photos)"})
    max_side: typing.Optional[int] = field(default=None, metadata={
        "help": "downscale photos whose longer side exceeds this before cropping"})
    blur_kernels: str = field(default=TRAIN_KERNELS, metadata={
        "help": "deblur training kernel sizes: odd ranges with weights, e.g. '7-17:0.7,19-31:0.3' (70 %% of "
                "kernels uniform over the odd sizes 7..17, 30 %% over 19..31); validation keeps its fixed "
                "13/19/25/31 px kernels"})
    clean_share: float = field(default=0.0, metadata={
        "help": "share (0 <= x < 1) of the training samples left undegraded, their input the clean target, so "
                "that a photo without degradation comes back unchanged (a derain model that never saw a clean "
                "photo takes fine stripes for rain); the choice is per sample and fixed by --seed; validation "
                "stays degraded. A deviation from the paper, which trains on degraded pairs only"})
    clean_textures: float = field(default=0.0, metadata={
        "help": "share (0 <= x <= 1) of the clean samples of --clean-share cut from the clean textures of "
                "data/textures (scikit-image's brick, grass, gravel: fine repeated structure) instead of the "
                "training photos, so that derain learns that such structure is not rain; synthetic pairs on the "
                "loader path only. A deviation from the paper"})
    clean_stripes: float = field(default=0.0, metadata={
        "help": "share (0 <= x <= 1, with --clean-textures at most 1) of the clean samples of --clean-share that "
                "are their photo crop printed with a regular grating (drcnet/data/stripes.py: striped fabric, "
                "blinds), so that derain learns that regular stripes are not rain; synthetic pairs on the loader "
                "path only. A deviation from the paper"})
    # optimisation (paper)
    iters: int = field(default=400_000, metadata={"help": "total iterations (the length of the cosine schedule)"})
    batch: int = field(default=32, metadata={"help": "global batch size (split over DDP processes)"})
    patch: int = field(default=256, metadata={"help": "training patch size"})
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate"})
    lr_min: float = field(default=1e-7, metadata={"help": "cosine annealing floor"})
    beta1: float = 0.9
    beta2: float = 0.999
    loss: str = field(default="intra-cr", metadata={
        "help": "intra-cr | extra-cr | aecr | l1 | l1+fft (L1 + --fft-weight times MIMO-UNet's frequency L1; "
                "a deviation from the paper)"})
    alpha: float = field(default=0.04, metadata={"help": "weight of the contrastive term"})
    fft_weight: float = field(default=0.1, metadata={
        "help": "weight w of --loss l1+fft's frequency term w * mean|rfft2(X) - rfft2(J)| (real and imaginary "
                "parts; MIMO-UNet's 0.1); other losses ignore it"})
    stage1_weight: float = field(default=1.0, metadata={
        "help": "weight of the loss on the stage-1 output out1; the loss on out2 keeps weight 1. The paper sums "
                "both (1); below 1 asks less of stage 1 and so leaves stage 2 more to do (issue 38: on a 21 px "
                "blur out1 was as good as out2). A deviation from the paper"})
    vgg_weights: typing.Optional[str] = field(default=None, metadata={"help": "VGG19 safetensors for the CR loss"})
    clip: float = field(default=0.0, metadata={"help": "clip the gradient norm at this value (0: off; code used 0.01)"})
    augment: bool = field(default=True, metadata={"help": "random flips and 90-degree rotations"})
    # model knobs
    t: typing.Optional[float] = field(default=None, metadata={"help": "mask threshold t (default: the preset's)"})
    variant: typing.Optional[str] = field(default=None, metadata={"help": "Table 4 variant (default DFR)"})
    mask_quantile: typing.Optional[float] = field(default=None, metadata={
        "help": "set each DFR block's t per image at this quantile of its own M_sr (0.9: every mask covers the "
                "top 10 %%) instead of the fixed t; a deviation from the paper (docs/science.md), written into "
                "the checkpoint's config so inference masks the same way"})
    # bookkeeping
    out: typing.Optional[str] = field(default=None, metadata={"help": "run directory (default runs/TASK-PRESET)"})
    resume: bool = field(default=False, metadata={"help": "continue from OUT/state.pt (a fresh start if absent)"})
    stop_at: typing.Optional[int] = field(default=None, metadata={
        "help": "stop (and save) at this iteration although the schedule runs to --iters"})
    init: typing.Optional[str] = field(default=None, metadata={
        "help": "start from this checkpoint's weights (a fresh optimizer and schedule); how a shipped model "
                "is continued. Ignored by --resume, whose state already holds the weights"})
    minutes: typing.Optional[float] = field(default=None, metadata={
        "help": "wall-clock budget. --schedule iters: after a short warm-up, measure the step rate and fit "
                "--iters (the cosine schedule's length) so that the run ends within this many minutes. "
                "--schedule time: the learning rate follows the elapsed fraction of the budget"})
    schedule: str = field(default="iters", metadata={
        "help": "iters: cosine over --iters iterations (bitwise resumable); time: a short linear warm-up, then "
                "cosine to --lr-min over the elapsed fraction of --minutes, stopping at the deadline after a "
                "final validation and save (resumable, the clock continues, but not bitwise: the learning rate "
                "of a step depends on the wall clock)"})
    ema: float = field(default=0.999, metadata={
        "help": "decay of an fp32 exponential moving average of the weights, validated beside the raw ones "
                "(best/last.safetensors keep the better); 0: off"})
    compile: str = field(default="auto", metadata={
        "help": "torch.compile the training forward: on | off | auto (on for runs long enough to repay the "
                "compile, ~2 min on a CPU: --minutes >= 10 or >= 1000 iterations to go, when a C++ compiler "
                "(CPU) or Triton (CUDA) is there). A failing compile falls back to eager"})
    seed: int = 0
    log_every: int = field(default=100, metadata={"help": "iterations per log line"})
    val_every: int = field(default=5000, metadata={"help": "iterations per validation (0: only at the end)"})
    save_every: int = field(default=1000, metadata={"help": "iterations per state save"})
    val_count: int = field(default=16, metadata={"help": "number of validation crops"})
    val_size: int = field(default=256, metadata={"help": "side of the validation crops"})
    # hardware
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    precision: str = field(default="auto", metadata={
        "help": "auto | bf16 | fp32 (auto: bf16 on CUDA and on CPUs with AVX512-BF16/AMX)"})
    channels_last: bool = True
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: all cores, shared among local ranks)"})
    workers: int = field(default=-1, metadata={"help": "data loader workers (-1: auto; 0 on CPU)"})
    batches: str = field(default="auto", metadata={
        "help": "where training pairs are made: loader (numpy in loader workers), device (recipes on the CPU, "
                "pixels on the training device; synthetic data only), auto (device on CUDA, else loader)"})
    progress: bool = field(default=True, metadata={"help": "show a tqdm progress bar"})
    command: typing.Optional[str] = field(default=None, metadata={
        "help": "command line recorded in the checkpoint (default: sys.argv)"})

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {TASKS}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.batches not in ("auto", "loader", "device"):
            raise ValueError(f"unknown batches {self.batches!r}; choose auto, loader or device")
        if self.batches == "device" and self.paired:
            raise ValueError("--batches device makes synthetic pairs; a --paired folder needs --batches loader")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"unknown precision {self.precision!r}; choose auto, bf16 or fp32")
        if self.data and self.paired:
            raise ValueError("give --data (clean photos) or --paired (a benchmark folder), not both")
        for name in ("iters", "batch", "patch", "log_every", "save_every", "val_count", "val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.mask_quantile is not None and not 0.0 < self.mask_quantile < 1.0:
            raise ValueError(f"mask_quantile must lie strictly between 0 and 1, got {self.mask_quantile}")
        if self.fft_weight < 0:
            raise ValueError(f"fft_weight must not be negative, got {self.fft_weight}")
        if self.stage1_weight < 0:
            raise ValueError(f"stage1_weight must not be negative, got {self.stage1_weight}")
        if not 0.0 <= self.clean_share < 1.0:
            raise ValueError(f"clean_share must be in [0, 1) (0: every sample degraded), got {self.clean_share}")
        if not 0.0 <= self.clean_textures <= 1.0:
            raise ValueError(f"clean_textures must be in [0, 1], got {self.clean_textures}")
        if not 0.0 <= self.clean_stripes <= 1.0 - self.clean_textures:
            raise ValueError(f"clean_stripes must be in [0, 1 - clean_textures], got {self.clean_stripes}")
        if (self.clean_textures or self.clean_stripes) and not self.clean_share:
            raise ValueError("clean_textures and clean_stripes are shares of the clean samples: give --clean-share "
                             "too")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError("minutes must be positive")
        if self.schedule not in ("iters", "time"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose iters or time")
        if self.schedule == "time" and self.minutes is None:
            raise ValueError("--schedule time needs --minutes")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if self.compile not in ("auto", "on", "off"):
            raise ValueError(f"unknown compile {self.compile!r}; choose auto, on or off")
        KernelSizes.parse(self.blur_kernels)            # a bad spec fails here, not in a loader worker
        if self.out is None:
            object.__setattr__(self, "out", str(Path("runs") / f"{self.task}-{self.preset}"))


CHOICES = {"task": TASKS, "loss": LOSSES, "precision": ("auto", "bf16", "fp32"), "batches": ("auto", "loader", "device"),
           "preset": tuple(PRESETS), "layout": ("sidd", "gopro", "rain13k", "generic"), "schedule": ("iters", "time"),
           "compile": ("auto", "on", "off")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drcnet.train", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        help_ = f.metadata.get("help", " ")
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
            continue
        args = typing.get_args(kind)
        base = next((a for a in args if a is not type(None)), kind) if args else kind
        p.add_argument(flag, type=base, default=f.default, help=help_, dest=f.name, choices=CHOICES.get(f.name))
    return p


def recipe_defaults(task: str) -> dict:
    """--recipe TASK: the recipe's task and its [train] table as TrainConfig defaults. A key that is not a
    TrainConfig field is an error (a typo would otherwise be dropped silently)."""
    from drcnet.train.recipe import RECIPES, load_recipe

    recipe = load_recipe(task)
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"recipe"}
    unknown = sorted(set(recipe.train) - known)
    if unknown:
        raise ValueError(f"{RECIPES / (task + '.toml')}: unknown [train] keys {unknown}; they must be TrainConfig "
                         f"fields (the flags of python -m drcnet.train without the dashes, - as _)")
    return {"task": recipe.task, **recipe.train}


def parse_config(argv=None) -> TrainConfig:
    """The command line as a TrainConfig; with --recipe, the recipe fills in what the command line leaves out."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.recipe:
        parser.set_defaults(**recipe_defaults(args.recipe))
        args = parser.parse_args(argv)
    return TrainConfig(**vars(args))
