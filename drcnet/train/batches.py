"""Batch making: the iteration-indexed sampler, the training data (a numpy dataset for loader workers or a
stream made on the device), the loader, and the fixed validation set."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from drcnet.core.metrics import batch_psnr
from drcnet.data.degrade import KernelSizes
from drcnet.train.config import TrainConfig
from drcnet.train.dist import Dist

VAL_SEED = 20220101          # the validation crops and their degradations never change between runs
VAL_SIGMA = 25.0             # denoise validation: additive Gaussian noise at sigma 25 (of 255)


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

    clean_note = f", {cfg.clean_share:.0%} of the samples left clean" if cfg.clean_share else ""
    if cfg.clean_textures:
        clean_note += f" ({cfg.clean_textures:.0%} of them cut from the clean textures)"
    if cfg.clean_stripes:
        clean_note += f" ({cfg.clean_stripes:.0%} of them printed with stripes)"
    if (cfg.clean_textures or cfg.clean_stripes) and (cfg.paired or device is not None):
        raise ValueError("--clean-textures and --clean-stripes work with synthetic pairs made by the loader (not "
                         "--paired, not batches made on the device)")
    if cfg.paired:
        ds = PairedFolder(cfg.paired, cfg.layout, patch=cfg.patch, augment=cfg.augment, seed=cfg.seed,
                          length=10 ** 9, clean_share=cfg.clean_share)
        return ds, f"paired {cfg.layout} folder {cfg.paired} ({len(ds.pairs)} pairs)" + clean_note
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
        f" (longer side at most {cfg.max_side})" if cfg.max_side else "") + clean_note
    kernels = {}
    if cfg.task == "deblur":
        kernels = {"sizes": KernelSizes.parse(cfg.blur_kernels)}
        desc += f", kernel sizes {kernels['sizes']}"
    if device is not None:
        from drcnet.data.device_batches import DeviceBatchStream

        stream = DeviceBatchStream(images, cfg.task, cfg.patch, cfg.batch, device, seed=cfg.seed,
                                   augment=cfg.augment, max_side=cfg.max_side, rank=rank, world=world,
                                   workers=workers, blur_kernels=cfg.blur_kernels, clean_share=cfg.clean_share)
        return stream, desc + ", made on " + str(device)
    textures = split_images("textures") if cfg.clean_textures else None
    ds = SyntheticPairs(images, cfg.task, patch=cfg.patch, length=10 ** 9, seed=cfg.seed, augment=cfg.augment,
                        max_side=cfg.max_side, clean_share=cfg.clean_share, textures=textures,
                        texture_share=cfg.clean_textures, stripe_share=cfg.clean_stripes, **kernels)
    return ds, desc

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


def make_loader(cfg: TrainConfig, dist: Dist, start: int, stop: int):
    """(batches of iterations start..stop-1, description of the data): pairs made on the device (synthetic data
    on CUDA, or --batches device) or a DataLoader over the numpy dataset (loader workers: all cores but the one
    that drives the GPU, none on a CPU)."""
    device = dist.device
    workers = cfg.workers
    if workers < 0:
        workers = min(16, max(1, (os.cpu_count() or 1) // dist.local_world - 1)) if device.type == "cuda" else 0
    on_device = cfg.batches == "device" or (cfg.batches == "auto" and device.type == "cuda" and not cfg.paired)
    train_set, desc = build_train_data(cfg, device if on_device else None, dist.rank, dist.world, workers)
    if on_device:
        return train_set(start, stop), desc
    sampler = IterationBatches(start, stop, cfg.batch, dist.rank, dist.world, len(train_set))
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, num_workers=workers,
                                         pin_memory=device.type == "cuda", persistent_workers=False)
    return loader, desc


def input_psnr(val) -> float:
    """The validation set's PSNR before restoring (nan without one)."""
    return float(batch_psnr(*val).mean()) if val is not None else float("nan")
