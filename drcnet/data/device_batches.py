"""Training batches made on the training device: small random recipes on the CPU, pixels on the GPU.

On a GPU the numpy data path (drcnet.data.datasets.SyntheticPairs) is the bottleneck: a 256 px deblur patch costs a
CPU core about 30-40 ms (a random-walk kernel, an FFT convolution), so even 15 loader workers feed an H100
only a few hundred patches a second. Here the work is split by its size:

- a *recipe* per batch (which photo, where to crop, which flip, the noise level, the blur kernel, the rain
  streak kernels and densities) is drawn by loader workers on the CPU from numpy.random.default_rng([seed,
  k, rank]), with the very functions of drcnet.data.degrade (motion_kernel, line_kernel): a few kilobytes;
- the *pixels* (crops of photos decoded once into device memory, flips and rotations, Gaussian noise, the
  blur as a grouped convolution, rain seeds smeared by their streak kernels, screen blending, 8-bit rounding)
  are made on the device from the recipe and a torch generator seeded by it.

So batch k is a pure function of (seed, k, rank) on a given device, as the trainer's exact resume needs, and
the degradations are those of drcnet.data.degrade with the same distributions (the pixel operations are checked
against the numpy ones in tests/test_device_batches.py). Only the random pixel fields (noise, rain seeds)
come from torch's generator instead of numpy's, so the streams differ from the loader path's bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from drcnet.data.datasets import CONTEXT, keeps_clean, named_images, read_photo
from drcnet.data.degrade import (BLUR_NOISE, KERNEL_LIMITS, RAIN_PRESETS, TRAIN_KERNELS, TRAIN_SIGMA_MAX, KernelSizes,
                      line_kernel, motion_kernel)

BLUR_SIDE = KERNEL_LIMITS[1]                     # every blur kernel is zero-padded to 31 x 31 (centred)
MAX_LAYERS = max(p["layers"][1] for p in RAIN_PRESETS.values())
STREAK_SIDE = int(np.ceil(max(p["length"][1] for p in RAIN_PRESETS.values()))) | 1   # 41 x 41


def centred(kernel: np.ndarray, side: int) -> np.ndarray:
    """Zero-pad an odd square kernel to side x side around its centre (the convolution is unchanged)."""
    out = np.zeros((side, side), np.float32)
    o = (side - kernel.shape[0]) // 2
    out[o:o + kernel.shape[0], o:o + kernel.shape[1]] = kernel
    return out


class BatchRecipes(torch.utils.data.Dataset):
    """Item k: the recipe of this rank's share of global batch k (a dict of small CPU tensors).
    blur_kernels: the KernelSizes (or its spec) deblur kernels are drawn from. clean_share: that share of the
    samples is left undegraded (the recipe's "clean" flags; the same samples as the loader path's)."""

    def __init__(self, sizes: list[tuple[int, int]], task: str, patch: int, batch: int, seed: int = 0,
                 augment: bool = True, rank: int = 0, world: int = 1,
                 blur_kernels: "KernelSizes | str" = TRAIN_KERNELS, clean_share: float = 0.0):
        if task not in ("denoise", "derain", "deblur"):
            raise ValueError(f"unknown task {task!r}")
        self.sizes, self.task, self.patch, self.seed, self.augment = sizes, task, patch, seed, augment
        self.blur_kernels = KernelSizes.parse(blur_kernels)
        self.batch, self.local, self.rank, self.clean_share = batch, batch // world, rank, clean_share
        self.side = patch + 2 * CONTEXT.get(task, 0)

    def __len__(self):
        return 10 ** 12

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng([self.seed, k, self.rank])
        b, side = self.local, self.side
        photo = rng.integers(len(self.sizes), size=b)
        top = np.array([rng.integers(0, max(1, self.sizes[n][0] - side + 1)) for n in photo])
        left = np.array([rng.integers(0, max(1, self.sizes[n][1] - side + 1)) for n in photo])
        recipe = {"photo": photo, "top": top, "left": left,
                  "dihedral": rng.integers(8, size=b) if self.augment else np.zeros(b, np.int64),
                  "pixel_seed": np.array(rng.integers(2 ** 62)), "clean": self._clean_flags(k)}
        if self.task == "denoise":
            recipe["sigma"] = rng.uniform(0, TRAIN_SIGMA_MAX, size=b) / 255.0
        elif self.task == "deblur":
            recipe["kernel"] = np.stack([centred(motion_kernel(rng, sizes=self.blur_kernels), BLUR_SIDE)
                                         for _ in range(b)])
        else:
            recipe.update(self._rain(rng, b))
        return {key: torch.as_tensor(np.asarray(v)) for key, v in recipe.items()}

    def _clean_flags(self, k: int) -> np.ndarray:
        """Which samples of this rank's share of batch k stay clean; their global indices are the loader
        path's (drcnet.train.batches.IterationBatches), and so are the choices."""
        first = k * self.batch + self.rank * self.local
        return np.array([keeps_clean(self.seed, first + j, self.clean_share) for j in range(self.local)])

    @staticmethod
    def _rain(rng: np.random.Generator, b: int) -> dict:
        """Per image: up to MAX_LAYERS streak layers, each a density, a brightness and a streak kernel, drawn
        as drcnet.data.degrade.add_rain draws them; unused layers have density 0."""
        density = np.zeros((b, MAX_LAYERS), np.float32)
        brightness = np.zeros((b, MAX_LAYERS), np.float32)
        kernels = np.zeros((b, MAX_LAYERS, STREAK_SIDE, STREAK_SIDE), np.float32)
        for i in range(b):
            p = RAIN_PRESETS[str(rng.choice(sorted(RAIN_PRESETS)))]
            angle = rng.uniform(*p["angle"])
            for j in range(rng.integers(p["layers"][0], p["layers"][1] + 1)):
                density[i, j] = rng.uniform(*p["density"])
                k = line_kernel(rng.uniform(*p["length"]),
                                angle + rng.uniform(-p["angle_jitter"], p["angle_jitter"]), rng.uniform(*p["width"]))
                kernels[i, j] = centred(k / (k.max() + 1e-8), STREAK_SIDE)    # a streak's core reaches 1
                brightness[i, j] = rng.uniform(*p["brightness"])
        return {"density": density, "brightness": brightness, "streak": kernels}


# ------------------------------------------------------------------------------------------ pixels

def per_sample_conv(images: torch.Tensor, kernels: torch.Tensor, padding: int) -> torch.Tensor:
    """Convolve (true convolution, as scipy's) each image of a batch with its own kernel, every channel alike.
    images: B x C x H x W; kernels: B x k x k. One grouped conv2d: the batch becomes the channel axis."""
    b, c, h, w = images.shape
    weight = kernels.flip(-2, -1).to(images.dtype).repeat_interleave(c, dim=0)[:, None]   # (B*C) x 1 x k x k
    out = F.conv2d(images.reshape(1, b * c, h, w), weight, padding=padding, groups=b * c)
    return out.reshape(b, c, *out.shape[-2:])


def blur_batch(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """drcnet.data.degrade.blur for a batch: reflect padding, then a 'valid' convolution."""
    r = kernels.shape[-1] // 2
    return per_sample_conv(F.pad(images, (r, r, r, r), mode="reflect"), kernels, padding=0)


def streaks_batch(seeds: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """The streaks of drcnet.data.degrade.rain_layer for a batch of seed maps (B x 1 x H x W), zero boundaries as
    fftconvolve(mode='same'); kernels are already scaled so that a streak's core reaches 1."""
    return per_sample_conv(seeds, kernels, padding=kernels.shape[-1] // 2)


def quantise(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


class DevicePhotos:
    """Clean photos decoded once into device memory (uint8), and the batches made from recipes."""

    def __init__(self, images, task: str, patch: int, device, max_side: int | None = None):
        self.task, self.patch, self.device = task, patch, torch.device(device)
        self.margin = CONTEXT.get(task, 0)
        side = patch + 2 * self.margin
        self.photos = []
        for _, source in named_images(images):
            rgb = read_photo(source, max_side) if not isinstance(source, np.ndarray) else source
            h, w = rgb.shape[:2]
            if h < side or w < side:             # as random_crop does: reflect-pad small photos up to a patch
                rgb = np.pad(rgb, ((0, max(0, side - h)), (0, max(0, side - w)), (0, 0)), mode="reflect")
            u8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8).transpose(2, 0, 1)
            self.photos.append(torch.from_numpy(np.ascontiguousarray(u8)).to(self.device))
        if not self.photos:
            raise ValueError("DevicePhotos needs at least one image")

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [tuple(p.shape[1:]) for p in self.photos]

    @torch.no_grad()
    def make(self, recipe: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(degraded, clean) float32 batches on the device, B x 3 x patch x patch."""
        dev = self.device
        side = self.patch + 2 * self.margin
        crops = []
        for n, top, left, d in zip(*(recipe[k].tolist() for k in ("photo", "top", "left", "dihedral"))):
            crop = self.photos[n][:, top:top + side, left:left + side]
            crop = torch.rot90(crop, d % 4, dims=(1, 2))       # = drcnet.data.datasets.dihedral on H x W x C
            crops.append(crop.flip(2) if d >= 4 else crop)
        clean = torch.stack(crops).float().div_(255.0)
        gen = torch.Generator(device=dev)
        gen.manual_seed(int(recipe["pixel_seed"]))
        if self.task == "denoise":
            sigma = recipe["sigma"].to(dev, torch.float32).view(-1, 1, 1, 1)
            degraded = clean + torch.randn(clean.shape, generator=gen, device=dev) * sigma
        elif self.task == "deblur":
            blurred = blur_batch(clean, recipe["kernel"].to(dev, torch.float32))
            degraded = quantise(blurred + BLUR_NOISE * torch.randn(clean.shape, generator=gen, device=dev))
        else:
            degraded = self._rain(clean, recipe, gen)
        if "clean" in recipe:       # --clean-share: these samples come back undegraded (a hand-made recipe may lack it)
            degraded = torch.where(recipe["clean"].to(dev).view(-1, 1, 1, 1), clean, degraded)
        if self.margin:
            m = self.margin
            clean, degraded = clean[..., m:-m, m:-m], degraded[..., m:-m, m:-m]
        return degraded.contiguous(), clean.contiguous()

    def _rain(self, clean: torch.Tensor, recipe: dict, gen: torch.Generator) -> torch.Tensor:
        dev, (b, _, h, w) = self.device, clean.shape
        density = recipe["density"].to(dev, torch.float32)
        brightness = recipe["brightness"].to(dev, torch.float32)
        streak = recipe["streak"].to(dev, torch.float32)
        rain = torch.zeros(b, 1, h, w, device=dev)
        for j in range(density.shape[1]):
            # rain_layer: (U[0,1) < density) * U[0.5, 1), smeared along the streak, scaled, clipped
            hit = torch.rand((b, 1, h, w), generator=gen, device=dev) < density[:, j].view(-1, 1, 1, 1)
            seeds = hit * (0.5 + 0.5 * torch.rand((b, 1, h, w), generator=gen, device=dev))
            layer = (streaks_batch(seeds, streak[:, j]) * brightness[:, j].view(-1, 1, 1, 1)).clamp(0, 1)
            rain = 1.0 - (1.0 - rain) * (1.0 - layer)     # screen blend; a layer of density 0 adds nothing
        return (1.0 - (1.0 - clean) * (1.0 - rain)).clamp(0, 1)


class DeviceBatchStream:
    """Iterate (degraded, clean) device batches for iterations start..stop-1, recipes from loader workers."""

    def __init__(self, images, task: str, patch: int, batch: int, device, *, seed: int = 0, augment: bool = True,
                 max_side: int | None = None, rank: int = 0, world: int = 1, workers: int = 0,
                 blur_kernels: "KernelSizes | str" = TRAIN_KERNELS, clean_share: float = 0.0):
        self.photos = DevicePhotos(images, task, patch, device, max_side)
        self.recipes = BatchRecipes(self.photos.sizes, task, patch, batch, seed, augment, rank, world, blur_kernels,
                                    clean_share)
        self.workers = workers

    def __call__(self, start: int, stop: int):
        loader = torch.utils.data.DataLoader(self.recipes, batch_size=None, sampler=range(start, stop),
                                             num_workers=self.workers, pin_memory=False,
                                             prefetch_factor=4 if self.workers else None)
        for recipe in loader:
            yield self.photos.make(recipe)
