"""Train DRCNet: one module, nanoGPT style (python -m drcnet.train runs its main). The defaults are the paper's
recipe (spec section 5).

    python -m drcnet.train --task denoise --preset lite                      # fetched photos, synthetic noise
    python -m drcnet.train --task denoise --data DIR --iters 2000 --patch 64 --batch 8 --out runs/mine
    python -m drcnet.train --task deblur --paired /data/GoPro --layout gopro
    python -m drcnet.train ... --out runs/mine --resume                      # continue after a stop or a crash
    python -m drcnet.train --recipe deblur --init checkpoints/deblur.safetensors --schedule time --minutes 60
    torchrun --nproc_per_node 4 -m drcnet.train ...                          # DDP, one process per GPU

Recipe: Adam lr 2e-4, cosine annealing per iteration down to 1e-7, 256x256 patches, batch 32, 400k iterations,
flips and 90-degree rotations, loss L1 + alpha * Intra-CR (alpha 0.04) applied to out1 and to out2 and summed,
no gradient clipping (the public code clipped the norm at 0.01: --clip 0.01).

The data stream is a pure function of (seed, iteration): the batch at iteration k is made of dataset items
k*B .. k*B+B-1 (B the global batch; rank r of a DDP job takes its slice of those). The datasets are
deterministic per item, so a resumed run sees exactly the batches it would have seen, and no sampler state is
saved. A run directory holds:

    state.pt           full training state (model, EMA, Adam, scheduler, RNG states, iteration, elapsed seconds,
                       cumulative lr), written atomically
    last.safetensors   the latest weights (raw or EMA, whichever validated better) as a drcnet checkpoint
    best.safetensors   the weights with the best validation PSNR so far (metadata "weights": "raw" | "ema")
    log.jsonl          one JSON line per log interval, per validation, and the DFR mask statistics
    config.json        the TrainConfig of the latest start

A kill -9 at any moment loses at most the iterations since the last save (--save-every). Resuming is bitwise
exact for iteration schedules (with --compile off); a --schedule time run resumes on its clock (the elapsed
seconds in state.pt) but not bit for bit, since the learning rate of a step depends on the wall clock.

Every validation scores the raw weights and their EMA (--ema) and logs the DFR mask statistics
(drcnet/train/maskstats.py); best/last.safetensors keep the better weights, labelled "weights": "raw" | "ema".
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import threading
import time
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from drcnet.core.device import describe_device, pick_precision
from drcnet.core.files import append_jsonl, atomic_torch_save, trim_jsonl
from drcnet.core.metrics import batch_psnr
from drcnet.model.checkpoint import save_checkpoint
from drcnet.model.config import PRESETS
from drcnet.data.degrade import TRAIN_KERNELS, KernelSizes
from drcnet.train.maskstats import MaskStats
from drcnet.model.network import create_model
from drcnet.core.tasks import TASKS
from drcnet.core.paths import checkpoint_file

LOSSES = ("intra-cr", "extra-cr", "aecr", "l1")
VAL_SEED = 20220101          # the validation crops and their degradations never change between runs
VAL_SIGMA = 25.0             # denoise validation: additive Gaussian noise at sigma 25 (of 255)


@dataclass
class TrainConfig:
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
    # optimisation (paper)
    iters: int = field(default=400_000, metadata={"help": "total iterations (the length of the cosine schedule)"})
    batch: int = field(default=32, metadata={"help": "global batch size (split over DDP processes)"})
    patch: int = field(default=256, metadata={"help": "training patch size"})
    lr: float = field(default=2e-4, metadata={"help": "Adam learning rate"})
    lr_min: float = field(default=1e-7, metadata={"help": "cosine annealing floor"})
    beta1: float = 0.9
    beta2: float = 0.999
    loss: str = field(default="intra-cr", metadata={"help": "intra-cr | extra-cr | aecr | l1"})
    alpha: float = field(default=0.04, metadata={"help": "weight of the contrastive term"})
    vgg_weights: typing.Optional[str] = field(default=None, metadata={"help": "VGG19 safetensors for the CR loss"})
    clip: float = field(default=0.0, metadata={"help": "clip the gradient norm at this value (0: off; code used 0.01)"})
    augment: bool = field(default=True, metadata={"help": "random flips and 90-degree rotations"})
    # model knobs
    t: typing.Optional[float] = field(default=None, metadata={"help": "mask threshold t (default: the preset's)"})
    variant: typing.Optional[str] = field(default=None, metadata={"help": "Table 4 variant (default DFR)"})
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
            self.out = str(Path("runs") / f"{self.task}-{self.preset}")


# ----------------------------------------------------------------------------------------------------------------
# distributed

class Dist:
    """The process's place in a torchrun job (WORLD_SIZE/RANK/LOCAL_RANK), or a single process."""

    def __init__(self, cfg: TrainConfig):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        want = cfg.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda":                   # this process's GPU: cuda:LOCAL_RANK (cuda:0 for a single process)
            want = f"cuda:{self.local_rank}"
        self.device = torch.device(want)
        if self.device.type == "cuda":
            # An explicit index: torch 2.14 raises ValueError for set_device(torch.device("cuda")).
            torch.cuda.set_device(self.device.index)
        self.owns_group = False
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            kw = {"device_id": self.device} if backend == "nccl" else {}
            torch.distributed.init_process_group(backend, **kw)
            self.owns_group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree_min(self, value: int) -> int:
        """The smallest of the ranks' values, so that every rank takes the same decision."""
        if self.world > 1:
            t = torch.tensor([value], dtype=torch.int64, device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
            value = int(t.item())
        return value

    def from_main(self, values: torch.Tensor) -> torch.Tensor:
        """Rank 0's values on every rank (decisions taken on rank 0's clock)."""
        if self.world > 1:
            values = values.clone()
            torch.distributed.broadcast(values, src=0)
        return values

    def all_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            values = values.clone()
            torch.distributed.all_reduce(values)
            values /= self.world
        return values

    def close(self):
        if self.owns_group:
            torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------------
# data

class IterationBatches(torch.utils.data.Sampler):
    """Index lists for iterations start..stop-1: iteration k takes global items k*B .. k*B+B-1 and this rank the
    slice [rank*b, rank*b + b) of them (b = B / world). A pure function of k: no state to save."""

    def __init__(self, start: int, stop: int, batch: int, rank: int = 0, world: int = 1, length: int = 10 ** 9):
        self.start, self.stop, self.batch, self.rank, self.world, self.length = start, stop, batch, rank, world, length
        self.local = batch // world

    def __iter__(self):
        for k in range(self.start, self.stop):
            base = k * self.batch + self.rank * self.local
            yield [(base + j) % self.length for j in range(self.local)]

    def __len__(self):
        return max(0, self.stop - self.start)


def build_train_data(cfg: TrainConfig, device=None, rank: int = 0, world: int = 1, workers: int = 0):
    """(dataset, description) for the configured source. Both datasets are deterministic in (seed, index).
    device: make the synthetic pairs on this device (a DeviceBatchStream) instead of a numpy dataset."""
    from drcnet.data.datasets import PairedFolder, SyntheticPairs, list_images, split_images

    if cfg.paired:
        ds = PairedFolder(cfg.paired, cfg.layout, patch=cfg.patch, augment=cfg.augment, seed=cfg.seed,
                          length=10 ** 9)
        return ds, f"paired {cfg.layout} folder {cfg.paired} ({len(ds.pairs)} pairs)"
    if cfg.data:
        images, source = list_images(cfg.data), f"clean photos in {cfg.data}"
    else:
        try:
            images, source = split_images("train"), "photos of the fetched training split"
        except FileNotFoundError:
            images, source = [], "the fetched training split"
    if not images:
        raise ValueError(f"no training images ({source}): pass --data DIR with photos, --paired DIR, or run "
                         f"scripts/fetch_data.py")
    desc = f"synthetic {cfg.task} pairs from {len(images)} {source}" + (
        f" (longer side at most {cfg.max_side})" if cfg.max_side else "")
    kernels = {}
    if cfg.task == "deblur":
        kernels = {"sizes": KernelSizes.parse(cfg.blur_kernels)}
        desc += f", kernel sizes {kernels['sizes']}"
    if device is not None:
        from drcnet.data.device_batches import DeviceBatchStream

        stream = DeviceBatchStream(images, cfg.task, cfg.patch, cfg.batch, device, seed=cfg.seed,
                                   augment=cfg.augment, max_side=cfg.max_side, rank=rank, world=world,
                                   workers=workers, blur_kernels=cfg.blur_kernels)
        return stream, desc + ", made on " + str(device)
    ds = SyntheticPairs(images, cfg.task, patch=cfg.patch, length=10 ** 9, seed=cfg.seed, augment=cfg.augment,
                        max_side=cfg.max_side, **kernels)
    return ds, desc


def load_init_weights(model: nn.Module, path) -> None:
    """--init: copy a checkpoint's weights into the freshly built model (a warm start: the optimizer and the
    schedule start afresh). The architecture must match; knobs that own no weights (t, delta) may differ."""
    from drcnet.model.checkpoint import check_state_dict, load_checkpoint

    weights = load_checkpoint(path)[0].state_dict()
    check_state_dict(model, weights, path)
    model.load_state_dict(weights)


def val_settings(task: str) -> list[dict]:
    """The degradations of the validation crops: sigma 25 for denoise, every evaluation setting otherwise
    (crop i uses setting i mod n)."""
    from drcnet.data.degrade import eval_settings

    settings = eval_settings(task)
    if task == "denoise":
        settings = [s for s in settings if s.get("sigma") == VAL_SIGMA] or [{"name": "sigma25", "sigma": VAL_SIGMA}]
    return settings


def synthetic_val_pairs(paths, task: str, count: int, size: int, max_side=None):
    """count fixed (degraded, clean) crops: photo i mod N, its centre crop first, then crops at fixed random
    places; the degradation of crop i comes from default_rng([VAL_SEED, i]). The same on every run."""
    from drcnet.data.datasets import CONTEXT, read_photo, random_crop
    from drcnet.data.degrade import degrade

    photos = [read_photo(p, max_side) for p in list(paths)[:count]]
    settings, margin = val_settings(task), CONTEXT.get(task, 0)
    side, items = size + 2 * margin, []
    for i in range(count):
        image, rng = photos[i % len(photos)], np.random.default_rng([VAL_SEED, i])
        if i < len(photos):                              # the centre crop (reflect-padded if the photo is small)
            h, w = image.shape[:2]
            top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
            image = image[top:top + side, left:left + side]
        (clean,) = random_crop([image], side, rng)
        degraded, _ = degrade(clean, task, rng, **settings[i % len(settings)])
        if margin:
            clean, degraded = (x[margin:-margin, margin:-margin] for x in (clean, degraded))
        items.append((torch.from_numpy(np.ascontiguousarray(degraded.transpose(2, 0, 1), dtype=np.float32)),
                      torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1), dtype=np.float32))))
    return items


def build_val_set(cfg: TrainConfig):
    """Fixed validation pairs as two stacked tensors (degraded, clean), and a description; (None, "none") if
    there is nothing to validate on."""
    from drcnet.data.datasets import PairedFolder, list_images, split_images

    if cfg.paired:
        folder = cfg.val_data or cfg.paired
        ds = PairedFolder(folder, cfg.layout, patch=cfg.val_size, augment=False, seed=VAL_SEED)
        n = min(cfg.val_count, len(ds.pairs))
        items = [ds[len(ds.pairs) - 1 - i] for i in range(n)]          # the last pairs of the folder
        desc = f"{n} crops {cfg.val_size}px of the pairs in {folder}"
        if not cfg.val_data:
            desc += " (training pairs: no --val-data given)"
    else:
        images, source = [], ""
        if cfg.val_data:
            images, source = list_images(cfg.val_data), cfg.val_data
        if not images:
            with contextlib.suppress(FileNotFoundError):
                images, source = split_images("val"), "the fetched validation split"
        if not images and cfg.data:
            images, source = list_images(cfg.data), f"{cfg.data} (training photos: no validation split found)"
        if not images:
            return None, "none"
        items = synthetic_val_pairs(images, cfg.task, cfg.val_count, cfg.val_size, cfg.max_side)
        names = ", ".join(str(s["name"]) for s in val_settings(cfg.task))
        desc = f"{cfg.val_count} crops {cfg.val_size}px of {source}, {cfg.task} {names}"
    degraded = torch.stack([d for d, _ in items]).float()
    clean = torch.stack([c for _, c in items]).float()
    return (degraded, clean), desc


@torch.no_grad()
def validate(model: nn.Module, val, device, amp, chunk: int = 4) -> float:
    degraded, clean = val
    was_training = model.training
    model.eval()
    scores = []
    for i in range(0, len(degraded), chunk):
        d = degraded[i:i + chunk].to(device)
        with amp():
            out = model(d)[1]
        scores.append(batch_psnr(out, clean[i:i + chunk].to(device)).cpu())
    model.train(was_training)
    return float(torch.cat(scores).mean())


# ----------------------------------------------------------------------------------------------------------------
# state

def rng_state(device) -> dict:
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------------------------
# schedules, weight averaging, compilation

class TimeSchedule:
    """--schedule time: the learning rate as a function of the elapsed fraction f of the training time: a
    linear warm-up over the first WARMUP of it, then cosine from lr to lr_min, the floor from f = 1 on.
    (The paper's schedule is cosine per iteration; a wall-clock one lets a CPU run use a fixed budget fully.)"""
    WARMUP = 0.02

    def __init__(self, lr: float, lr_min: float):
        self.lr_max, self.lr_min = lr, lr_min

    def lr(self, f: float) -> float:
        if f < self.WARMUP:
            return self.lr_max * max(f, 0.0) / self.WARMUP
        f = min(1.0, (f - self.WARMUP) / (1.0 - self.WARMUP))
        return self.lr_min + (self.lr_max - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * f))


class EMA:
    """An fp32 exponential moving average of a model's weights, ema <- decay * ema + (1 - decay) * w after
    every optimizer step; buffers are copied. A plain copy of the module rather than
    torch.optim.swa_utils.AveragedModel: its state dict is the model's own (no `module.` prefix, no
    n_averaged counter), so it validates with the same code and saves as a drcnet checkpoint."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # one fused multi-tensor lerp (as AveragedModel's EMA does): a few hundred small kernels per step
        # would cost a GPU step more than the average itself
        torch._foreach_lerp_(list(self.model.parameters()), [w.float() for w in model.parameters()],
                             1.0 - self.decay)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)


def compile_pays(cfg: TrainConfig, device: torch.device, steps: int) -> bool:
    """--compile auto: compile when the run is long enough to repay a cold compile (~2 min for lite on a CPU,
    for ~1.5x faster steps: >= 10 minutes or >= 1000 iterations to go) and the toolchain is there (a C++
    compiler for the CPU, Triton for CUDA)."""
    if cfg.compile != "auto":
        return cfg.compile == "on"
    long_enough = cfg.minutes >= 10 if cfg.minutes is not None else steps >= 1000
    if not long_enough:
        return False
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return any(shutil.which(c) for c in (os.environ.get("CXX") or "c++", "g++", "clang++"))


class EagerFallback:
    """The training forward through torch.compile (inductor, default mode); if compiling or running the
    compiled graph raises, `on_failure(error)` is called once and the eager module runs from then on."""

    def __init__(self, net: nn.Module, on_failure):
        self.net, self.on_failure = net, on_failure
        try:
            self.compiled = torch.compile(net)
        except Exception as e:          # noqa: BLE001 (any failure means: train eagerly)
            self.compiled = None
            on_failure(e)

    def __call__(self, x):
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except Exception as e:      # noqa: BLE001
                self.compiled = None
                self.on_failure(e)
        return self.net(x)


# ----------------------------------------------------------------------------------------------------------------
# training

def train(cfg: TrainConfig) -> dict:
    """Train (or continue training) as configured. Returns a summary dict (on every rank; rank 0 wrote files)."""
    dist = Dist(cfg)
    try:
        run = TrainingRun(cfg, dist)
        return run.fit()
    finally:
        dist.close()


class TrainingRun:
    """One training session of a run directory: the model, its optimizer and schedule, where the run stands
    (iteration, best and last validation, elapsed time, cumulative learning rate) and what it does: resume,
    validate, save, fit its budget, summarise. `fit()` is the training loop.

    Schedules: --schedule iters is the cosine per iteration of `scheduler` (with --minutes, its length is fitted
    to the budget after a short warm-up: `fit_budget`); --schedule time sets the lr of every step from the
    elapsed fraction of the budget (`time_step`)."""

    def __init__(self, cfg: TrainConfig, dist: Dist):
        self.t_start = time.time()
        self.cfg, self.dist, self.device = cfg, dist, dist.device
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // max(1, dist.local_world)))
        if cfg.batch % dist.world:
            raise ValueError(f"--batch {cfg.batch} does not split over {dist.world} processes")
        self.precision = pick_precision(self.device, cfg.precision)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        overrides = {k: getattr(cfg, k) for k in ("t", "variant") if getattr(cfg, k) is not None}
        model = create_model(cfg.preset, **overrides)
        self.out = Path(cfg.out)
        self.state_path, self.log_path = self.out / "state.pt", self.out / "log.jsonl"
        resuming = cfg.resume and self.state_path.exists()
        if self.state_path.exists() and not cfg.resume:
            raise FileExistsError(f"{self.state_path} exists: pass --resume to continue that run, or choose "
                                  f"another --out")
        if cfg.init and not resuming:
            load_init_weights(model, cfg.init)
        self.model = model.to(device=self.device, memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.iters,
                                                                    eta_min=cfg.lr_min)
        from drcnet.train.losses import make_loss

        self.criterion = make_loss(cfg.loss, alpha=cfg.alpha, vgg_weights=cfg.vgg_weights).to(self.device)

        self.start = self.it = 0
        self.best_psnr, self.last_val, self.wall_before = -math.inf, None, 0.0
        self.cum_lr = 0.0             # the sum of the learning rates of all steps so far (carried across resumes)
        self.weights = "raw"          # which weights scored better at the last validation: "raw" or "ema"
        self.val_s, self.save_s = 0.0, 2.0   # measured seconds of one validation and one save (a budget's reserve)
        # --minutes with --schedule iters: the schedule's length is measured, not given; a resumed run keeps
        # the length it measured. --schedule time has no length to fit.
        self.schedule_fixed = cfg.minutes is None or cfg.schedule == "time"
        self.budget_s = cfg.minutes * 60 if cfg.schedule == "time" else None
        self.fraction = 0.0           # the elapsed fraction of the last step (--schedule time), never decreasing
        self.lr_at = TimeSchedule(cfg.lr, cfg.lr_min).lr
        saved_ema = self.resume() if resuming else None
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        if self.ema is not None and saved_ema is not None:
            self.ema.model.load_state_dict(saved_ema)
        if self.ema is None:
            self.weights = "raw"
        if self.budget_s is not None:
            self.stop = cfg.stop_at if cfg.stop_at is not None else 10 ** 12
        elif not self.schedule_fixed:
            self.stop = 10 ** 12                        # until the warm-up has measured the step rate
        else:
            self.stop = min(cfg.iters, cfg.stop_at) if cfg.stop_at is not None else cfg.iters
        self._build_data()
        self.compiled = compile_pays(cfg, self.device, self.stop - self.start)
        self._start_log()
        self.net = self.model
        if dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        # Only the forward is compiled (backward through AOTAutograd); the state dicts come from `model`, the
        # underlying module, so checkpoints never carry torch.compile's `_orig_mod.` prefix.
        self.forward = EagerFallback(self.net, self._compile_failed) if self.compiled else self.net
        self.hardware = describe_device(self.device, dist.world)
        self.wait_share = None        # share of step time spent waiting for data (at the last log line)

    # ------------------------------------------------------------------------------------------ set-up parts

    def resume(self):
        """Load state.pt (refusing a changed setting); returns the saved EMA weights (or None)."""
        cfg = self.cfg
        state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        saved = state.get("config", {})
        if cfg.minutes is not None and saved.get("minutes") is not None and cfg.schedule == "iters":
            cfg.iters, self.schedule_fixed = saved["iters"], True
            self.scheduler.T_max = cfg.iters
        checked = ("preset", "task", "iters", "batch", "seed", "lr", "loss", "alpha", "patch", "schedule", "ema")
        for key in checked + (("minutes", "lr_min") if cfg.schedule == "time" else ()):
            if key in saved and saved[key] != getattr(cfg, key):
                raise ValueError(f"{self.state_path}: the run was started with {key}={saved[key]!r}, not "
                                 f"{getattr(cfg, key)!r}; resume with the same value or use a new --out")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.start = self.it = int(state["iter"])
        self.best_psnr = float(state.get("best_psnr", -math.inf))
        self.last_val = state.get("last_val")
        self.wall_before = float(state.get("wall_time_s", 0.0))
        self.cum_lr = float(state.get("cum_lr", 0.0))
        self.weights = state.get("weights", "raw")
        self.val_s, self.save_s = float(state.get("val_s", self.val_s)), float(state.get("save_s", self.save_s))
        return state.get("ema")

    def _build_data(self) -> None:
        cfg, dist, device = self.cfg, self.dist, self.device
        workers = cfg.workers
        if workers < 0:
            # On a GPU the data is made in loader workers: all cores but the one that drives the GPU.
            workers = min(16, max(1, (os.cpu_count() or 1) // dist.local_world - 1)) if device.type == "cuda" else 0
        on_device = cfg.batches == "device" or (cfg.batches == "auto" and device.type == "cuda" and not cfg.paired)
        train_set, self.data_desc = build_train_data(cfg, device if on_device else None, dist.rank, dist.world,
                                                     workers)
        self.val, self.val_desc = build_val_set(cfg) if dist.main else (None, "")
        self.val_input_psnr = float(batch_psnr(*self.val).mean()) if self.val is not None else float("nan")
        if on_device:
            self.loader = train_set(self.start, self.stop)
        else:
            sampler = IterationBatches(self.start, self.stop, cfg.batch, dist.rank, dist.world, len(train_set))
            self.loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=workers,
                                                      pin_memory=device.type == "cuda", persistent_workers=False)

    def _start_log(self) -> None:
        if not self.dist.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        for leftover in self.out.glob("*.tmp"):         # half-written files of a killed run
            leftover.unlink(missing_ok=True)
        self._write_config()
        if self.start:
            trim_jsonl(self.log_path, self.start)
        self.log({"event": "resume" if self.start else "start", "iter": self.start, "time": time.time(),
                  "world": self.dist.world, "precision": self.precision, "device": str(self.device),
                  "compile": self.compiled, "schedule": self.cfg.schedule, "ema": self.cfg.ema})

    def _write_config(self) -> None:
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2) + "\n")

    def _compile_failed(self, error: Exception) -> None:
        print(f"torch.compile failed, training eagerly: {type(error).__name__}: {error}".splitlines()[0],
              file=sys.stderr)
        if self.dist.main:
            self.log({"event": "compile_failed", "iter": self.it, "error": str(error)[:500]})

    # ------------------------------------------------------------------------------------------ bookkeeping

    def amp(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def clock(self) -> float:
        """Seconds this run has trained, over all its sessions (the time schedule's clock)."""
        return self.wall_before + time.time() - self.t_start

    def log(self, record: dict) -> None:
        append_jsonl(self.log_path, record)

    def summary(self) -> dict:
        cfg = self.cfg
        return {"task": cfg.task, "preset": cfg.preset, "iterations": self.it,
                "planned_iterations": cfg.iters if self.budget_s is None else None,
                "batch": cfg.batch, "patch": cfg.patch, "loss": cfg.loss, "alpha": cfg.alpha, "lr": cfg.lr,
                "lr_min": cfg.lr_min, "optimizer": "Adam",
                "schedule": "cosine per iteration" if self.budget_s is None else
                            "linear warm-up, then cosine over the elapsed fraction of the time budget",
                "betas": [cfg.beta1, cfg.beta2], "clip": cfg.clip, "augment": cfg.augment, "seed": cfg.seed,
                "data": self.data_desc, "validation": self.val_desc, "hardware": self.hardware,
                "world_size": self.dist.world, "precision": self.precision, "wall_time_s": round(self.clock(), 1),
                "cum_lr": self.cum_lr, "command": cfg.command or " ".join(sys.argv), "val_psnr": self.last_val,
                "weights": self.weights, "ema": cfg.ema,
                "compile": self.compiled and self.forward.compiled is not None,
                "init": Path(cfg.init).name if cfg.init else None, "minutes": cfg.minutes,
                "data_wait_share": round(self.wait_share, 4) if self.wait_share is not None else None}

    def save(self, best: bool = False) -> None:
        """last.safetensors (and best.safetensors) with the weights that scored better at the last validation,
        labelled "raw" (trained) or "ema" (averaged); then state.pt, atomically."""
        if not self.dist.main or not self.schedule_fixed:   # a --minutes run has no schedule to save before that
            return
        t0 = time.time()
        metrics = {"val_psnr": self.last_val, "val_set": self.val_desc} if self.last_val is not None else {}
        chosen = self.ema.model if self.weights == "ema" else self.model
        for name in ("last",) + (("best",) if best else ()):
            save_checkpoint(checkpoint_file(self.out, name), chosen, task=self.cfg.task, preset=self.cfg.preset,
                            training=self.summary(), metrics=metrics, extra={"weights": self.weights})
        atomic_torch_save({"iter": self.it, "model": self.model.state_dict(),
                           "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                           "rng": rng_state(self.device), "best_psnr": self.best_psnr, "last_val": self.last_val,
                           "wall_time_s": self.clock(), "cum_lr": self.cum_lr, "weights": self.weights,
                           "ema": self.ema.model.state_dict() if self.ema is not None else None,
                           "val_s": self.val_s, "save_s": self.save_s, "config": asdict(self.cfg)},
                          self.state_path)
        self.save_s = time.time() - t0

    def validate(self) -> bool:
        """Score the raw and the EMA weights (the DFR mask statistics ride on the raw forward) and log both;
        True if the better of them beat the best so far."""
        if self.val is None:
            return False
        with MaskStats(self.model) as masks:
            raw = validate(self.model, self.val, self.device, self.amp)
        averaged = validate(self.ema.model, self.val, self.device, self.amp) if self.ema is not None else None
        self.weights = "ema" if averaged is not None and averaged > raw else "raw"
        self.last_val = averaged if self.weights == "ema" else raw
        improved = self.last_val > self.best_psnr
        self.best_psnr = max(self.best_psnr, self.last_val)
        self.log({"iter": self.it, "val_psnr": round(raw, 4),
                  "val_psnr_ema": None if averaged is None else round(averaged, 4), "weights": self.weights,
                  "best_psnr": round(self.best_psnr, 4), "val_psnr_input": round(self.val_input_psnr, 4),
                  "cum_lr": self.cum_lr})
        self.log({"event": "mask", "iter": self.it, "cum_lr": self.cum_lr, "blocks": masks.summary()})
        return improved

    # ------------------------------------------------------------------------------------------ budgets

    def fit_budget(self, step_s: float) -> None:
        """--minutes with --schedule iters: fix --iters so that the run ends inside its budget at step_s seconds
        a step, leaving room for the periodic and final validations and the last save; restart the cosine at
        the new length and replay it to the current iteration."""
        cfg = self.cfg
        left = cfg.minutes * 60 - (time.time() - self.t_start) - self.val_s - 2.0
        per_step = step_s + (self.val_s / cfg.val_every if cfg.val_every else 0.0)
        cfg.iters = self.dist.agree_min(self.it + max(0, int(left / per_step)))
        self.stop = min(cfg.iters, cfg.stop_at) if cfg.stop_at is not None else cfg.iters
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = cfg.lr
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.iters,
                                                                    eta_min=cfg.lr_min)
        for _ in range(self.it):
            self.scheduler.step()
        self.schedule_fixed = True
        if self.dist.main:
            self._write_config()
            self.log({"event": "schedule", "iter": self.it, "iters": cfg.iters, "step_s": round(step_s, 4),
                      "budget_s": cfg.minutes * 60})

    def reserve_s(self) -> float:
        """What a time-scheduled run keeps for its end: one validation, one save and a second of slack."""
        return self.val_s + self.save_s + 1.0

    def time_step(self, step_s: float) -> tuple[bool, bool]:
        """--schedule time: set the lr of the next step; returns (it is the last step, the deadline has passed
        already), on rank 0's clock for every rank. The lr is that of the fraction reached at the end of the
        step; the last step (after which another would not end before the reserve) runs at the floor."""
        end = self.budget_s - self.reserve_s()
        now = self.clock()
        last = now + 2 * step_s >= end
        # never back down the schedule: a step faster than the one before, or a re-measured (smaller) reserve,
        # would otherwise move the fraction, and so the lr, backwards for a step
        fraction = 1.0 if last else max((now + step_s) / end, self.fraction)
        self.fraction = fraction
        decided = self.dist.from_main(torch.tensor([fraction, float(last), float(now >= end)],
                                                   dtype=torch.float64, device=self.device))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(float(decided[0]))
        return bool(decided[1]), bool(decided[2])

    def room_to_validate(self) -> bool:
        """A time-scheduled run skips a periodic validation that would eat into the final one's reserve."""
        return self.budget_s is None or self.clock() + self.val_s + self.reserve_s() < self.budget_s

    # ------------------------------------------------------------------------------------------ training

    def step(self, degraded: torch.Tensor, clean: torch.Tensor):
        """One optimizer step (and its EMA update); returns (loss, out2)."""
        cfg, model = self.cfg, self.model
        with self.amp():
            out1, out2 = self.forward(degraded)
            loss = self.criterion(out1, clean, degraded) + self.criterion(out2, clean, degraded)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        self.cum_lr += self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(model)
        if self.budget_s is None:
            self.scheduler.step()
        self.it += 1
        return loss, out2

    def fit(self) -> dict:
        """Validate a warm start, train to the end of the schedule (or the deadline, or --stop-at), validate
        and save; Ctrl-C saves the last whole step. Returns the summary, the history of log lines, best PSNR."""
        cfg, dist = self.cfg, self.dist
        # A warm start is validated before its first step: the card's "before" number, and for --minutes the
        # measured cost of a validation, which the budget must leave room for.
        if dist.main and self.start == 0 and (cfg.init or cfg.minutes):
            t0 = time.time()
            self.validate()
            self.val_s = time.time() - t0
            if self.budget_s is not None:
                self.save()      # a time schedule's end is fixed from the start: measure the save it reserves
        self.val_s = float(dist.from_main(torch.tensor([self.val_s], device=self.device)).item())

        self.pbar, self.postfix = None, {}
        if dist.main and cfg.progress:
            from tqdm import tqdm

            self.pbar = tqdm(total=self.stop if self.budget_s is None else None, initial=self.start,
                             dynamic_ncols=True, desc=f"{cfg.task}-{cfg.preset}")
        # Ctrl-C lands between steps: a SIGINT inside optimizer.step() would otherwise save weights one step
        # ahead of the saved iteration (and of Adam's moments). A second Ctrl-C stops at once, without a save.
        self.sigints = []
        old_sigint = None
        if threading.current_thread() is threading.main_thread():
            old_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            history = self._loop()
        except KeyboardInterrupt:
            if dist.main and self.it > self.start and len(self.sigints) <= 1:
                self.save()
                print(f"\ninterrupted: state saved at iteration {self.it} in {self.state_path}; continue with "
                      f"--resume", file=sys.stderr)
            raise
        finally:
            if old_sigint is not None:
                signal.signal(signal.SIGINT, old_sigint)
            if self.pbar is not None:
                self.pbar.close()

        improved = self.validate() if dist.main and self.it > self.start else False
        self.save(best=improved or (dist.main and not (checkpoint_file(self.out, "best")).exists()))
        if dist.world > 1:
            torch.distributed.barrier()
        result = self.summary()
        result.update({"out": str(self.out), "best_psnr": self.best_psnr if math.isfinite(self.best_psnr) else None,
                       "history": history, "start_iter": self.start})
        return result

    def _on_sigint(self, signum, frame):
        self.sigints.append(signum)
        if len(self.sigints) > 1:
            raise KeyboardInterrupt

    def _loop(self) -> list[dict]:
        cfg, device = self.cfg, self.device
        self.model.train()
        history, meter = [], StepMeter(device)
        warm_steps, warm_s, t_warm = 2, min(60.0, max(2.0, 0.05 * (cfg.minutes or 0) * 60)), None
        # the typical step duration (time schedule): the median of the recent steps, so that one step that
        # spanned a SIGSTOP pause (the relay is paused around benchmarks) is not taken for the step rate and
        # does not end the run at once; the pause itself still counts in the wall-clock budget
        recent, step_s = collections.deque(maxlen=16), 0.0
        batches = iter(self.loader)
        while self.it < self.stop:
            if self.sigints:
                raise KeyboardInterrupt
            last_step, t_step = False, time.time()
            if self.budget_s is not None:
                last_step, late = self.time_step(step_s)
                if late and self.it > self.start:
                    break                     # past the deadline already (a long validation or save)
            t_wait = time.perf_counter()
            try:
                degraded, clean = next(batches)
            except StopIteration:
                break
            degraded = degraded.to(device, non_blocking=True).contiguous(memory_format=self.memory_format)
            clean = clean.to(device, non_blocking=True)
            meter.wait += time.perf_counter() - t_wait
            loss, out2 = self.step(degraded, clean)
            if self.budget_s is not None and self.it > self.start + 1:   # the first step pays for compiling
                recent.append(time.time() - t_step)
                step_s = statistics.median(recent)
            if last_step:
                self.stop = self.it
            meter.add(loss, out2, clean)
            if self.it % cfg.log_every == 0 or self.it == self.stop:
                history.append(self._log_line(meter))
            if self.pbar is not None:
                self.pbar.update(1)

            if not self.schedule_fixed:
                # The first steps pay for allocation and autotuning: time the steps after them (on CUDA after
                # a synchronize, so the clock sees the GPU's work, not just the launches).
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                done = self.it - self.start
                if done == warm_steps:
                    t_warm = time.time()
                elif t_warm is not None and done >= warm_steps + 3 and time.time() - t_warm >= warm_s:
                    self.fit_budget((time.time() - t_warm) / (done - warm_steps))
                    if self.pbar is not None:
                        self.pbar.total = self.stop
                        self.pbar.refresh()
                    if self.it >= self.stop:
                        break

            improved = False
            if (self.dist.main and cfg.val_every and self.it % cfg.val_every == 0 and self.it != self.stop
                    and self.room_to_validate()):
                t0 = time.time()
                improved = self.validate()
                if self.budget_s is not None:
                    self.val_s = max(self.val_s, time.time() - t0)
                if self.pbar is not None and self.last_val is not None:
                    self.postfix["val"] = f"{self.last_val:.2f}"
                    self.pbar.set_postfix(self.postfix)
            if (self.it % cfg.save_every == 0 or improved) and self.it != self.stop:
                self.save(best=improved)
        return history

    def _log_line(self, meter: "StepMeter") -> dict:
        """Average the steps since the last line over the ranks; rank 0 writes it. Raises on a non-finite loss."""
        loss, train_psnr = self.dist.all_mean(meter.mean()).tolist()
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at iteration {self.it}; the last saved state is in "
                                     f"{self.state_path} (try --clip 0.01 or a lower --lr)")
        dt = time.time() - meter.t_log
        rate = meter.n * self.cfg.batch / max(dt, 1e-9)
        self.wait_share = min(1.0, meter.wait / max(dt, 1e-9))
        lr = self.optimizer.param_groups[0]["lr"]
        record = {"iter": self.it, "loss": round(loss, 6), "psnr": round(train_psnr, 4), "lr": lr,
                  "cum_lr": self.cum_lr, "images_per_s": round(rate, 2), "data_wait": round(self.wait_share, 4)}
        if self.budget_s is not None:
            record["elapsed_s"] = round(self.clock(), 2)
        if self.dist.main:
            self.log(record)
            if self.pbar is not None:
                self.postfix.update(loss=f"{loss:.4f}", psnr=f"{train_psnr:.2f}", img_s=f"{rate:.1f}",
                                    lr=f"{lr:.2e}")
                self.pbar.set_postfix(self.postfix, refresh=False)
        meter.reset()
        return record


class StepMeter:
    """Sums of the loss and the training PSNR since the last log line (on the device: no sync per step), the
    step count and the seconds spent waiting for data."""

    def __init__(self, device):
        self.acc = torch.zeros(2, device=device)
        self.reset()

    def add(self, loss: torch.Tensor, out2: torch.Tensor, clean: torch.Tensor) -> None:
        with torch.no_grad():
            self.acc += torch.stack([loss.detach().float(), batch_psnr(out2.detach(), clean).mean()])
        self.n += 1

    def mean(self) -> torch.Tensor:
        return self.acc / self.n

    def reset(self) -> None:
        self.acc.zero_()
        self.n, self.t_log, self.wait = 0, time.time(), 0.0


# ----------------------------------------------------------------------------------------------------------------
# command line

CHOICES = {"task": TASKS, "loss": LOSSES, "precision": ("auto", "bf16", "fp32"), "batches": ("auto", "loader", "device"),
           "preset": tuple(PRESETS), "layout": ("sidd", "gopro", "rain13k", "generic"), "schedule": ("iters", "time"),
           "compile": ("auto", "on", "off")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drcnet.train", description=__doc__.split("\n\n")[0],
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


MAIN_SCRIPT = Path(__file__).resolve().with_name("__main__.py")     # python -m drcnet.train


def main(argv=None) -> dict:
    cfg = parse_config(argv)
    if cfg.command is None:                  # the exact command line (under torchrun: the script and its args)
        args = sys.argv[1:] if argv is None else list(argv)
        script = sys.argv[0] if argv is None else ""
        if not script or Path(script).resolve() in (Path(__file__).resolve(), MAIN_SCRIPT):
            script = "python -m drcnet.train"
        cfg.command = " ".join([script, *args])
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    return result


if __name__ == "__main__":
    main()
