"""Images, training pairs and evaluation sets.

- list_images / read_photo / data_root: files on disk (data/ is filled by scripts/fetch_data.py).
- training_images(), split_images("train" | "val" | "test" | <folder>).
- SyntheticPairs: random patches of clean photos, degraded on the fly (drcnet.data.degrade); deterministic in
  (seed, index), so a resumed run sees the same stream. A clean share of them may be left undegraded
  (keeps_clean, --clean-share), and a share of those cut from clean textures instead (--clean-textures).
- PairedFolder: real degraded/clean pairs in the published layouts of SIDD, GoPro and Rain13K.
- FixedEvalSet: the same degraded versions of a list of clean images on every run.

Arrays are float32 H x W x 3 in [0, 1]; dataset items are (degraded, clean) C x H x W float32 tensors.
"""
from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from drcnet.data.degrade import degrade, eval_settings
from drcnet.data.stripes import add_stripes
from drcnet.core.paths import data_dir

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "val", "test", "textures")
# Deblurring degrades a larger crop and keeps its centre, so the blur near the patch border sees real
# neighbouring pixels rather than reflected ones (the largest kernel is 31, radius 15).
CONTEXT = {"deblur": 16}


# ------------------------------------------------------------------------------------------- files

def data_root(root=None) -> Path:
    """root, else $DRCNET_DATA, else <repo>/data (drcnet.core.paths)."""
    return data_dir(root)


def list_images(folder) -> list[Path]:
    """Image files directly inside folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (run scripts/fetch_data.py for the default data)")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def read_photo(path, max_side: int | None = None) -> np.ndarray:
    """A training or evaluation photo as float32 H x W x 3 in [0, 1]: EXIF rotation applied, grey and RGBA made
    RGB. max_side: downscale (Lanczos) so the longer side is at most this. (Users' files go through
    drcnet.serve.imageio.load_image instead, which keeps alpha, grey and bit depth aside to restore them.)"""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        if max_side and max(im.size) > max_side:
            scale = max_side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
        return np.asarray(im, np.float32) / 255.0


def centre_crop(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """The central max_side x max_side (at most) part of an image; None keeps it whole."""
    if not max_side:
        return image
    h, w = image.shape[:2]
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    return image[top:top + max_side, left:left + max_side]


def training_images(root=None) -> list[Path]:
    """The training photos (data/train). Validation and test photos live in other folders."""
    return list_images(data_root(root) / "train")


def split_images(split: str, root=None, max_side: int | None = None):
    """"train" / "val" / "textures": list of paths (big photos, decoded lazily by the datasets).
    "test", or the path of any folder of clean photos: {name: float32 array}, loaded now (max_side as in
    read_photo), ready for FixedEvalSet or drcnet.eval.evaluate.evaluate."""
    if split in ("train", "val", "textures"):
        return list_images(data_root(root) / split)
    folder = data_root(root) / "test" if split == "test" else Path(split)
    if split != "test" and not folder.is_dir():
        raise ValueError(f"split must be one of {SPLITS} or a folder of images, got {split!r}")
    return {p.name: read_photo(p, max_side) for p in list_images(folder)}


def named_images(images) -> list[tuple[str, object]]:
    """Normalise the accepted forms of an image collection to [(name, path or array)]: a folder, a dict
    {name: path or array}, or a list of paths and/or arrays."""
    if isinstance(images, (str, Path)):
        return [(p.name, p) for p in list_images(images)]
    if isinstance(images, dict):
        return list(images.items())
    if isinstance(images, np.ndarray):
        images = [images]
    return [(Path(x).name if isinstance(x, (str, Path)) else f"image{i}", x) for i, x in enumerate(images)]


def as_array(source) -> np.ndarray:
    """A path (decoded now) or an array, as float32."""
    return read_photo(source) if isinstance(source, (str, Path)) else np.asarray(source, np.float32)


class ImageCache:
    """Decode lazily, keep the `size` most recently used images (full photos are 5-80 MB as float32)."""

    def __init__(self, size: int = 8, max_side: int | None = None):
        self.size, self.max_side, self._store = size, max_side, OrderedDict()

    def get(self, key, source) -> np.ndarray:
        if not isinstance(source, (str, Path)):
            return as_array(source)
        if key in self._store:
            self._store.move_to_end(key)
            return self._store[key]
        image = self._store[key] = read_photo(source, self.max_side)
        if len(self._store) > self.size:
            self._store.popitem(last=False)
        return image


# ------------------------------------------------------------------------------------ augmentation

def random_crop(images: list[np.ndarray], patch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random patch x patch window of each (equal-sized) image. An image smaller than the patch is
    first reflect-padded up to it, so every item of a batch has the same shape."""
    h, w = images[0].shape[:2]
    ph, pw = max(0, patch - h), max(0, patch - w)
    if ph or pw:
        images = [np.pad(im, ((0, ph), (0, pw), (0, 0)), mode="reflect") for im in images]
        h, w = images[0].shape[:2]
    top, left = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    return [im[top:top + patch, left:left + patch] for im in images]


def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """One of the eight flips/rotations: k % 4 quarter turns, mirrored when k >= 4."""
    image = np.rot90(image, k % 4)
    return image[:, ::-1] if k >= 4 else image


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


# ----------------------------------------------------------------------------------------- datasets

# Salt of the generator that decides whether a training sample is left clean: a stream apart from the item's
# own, so a clean share leaves every other draw (photo, crop, flip, degradation) as it was without one.
CLEAN_SALT = zlib.crc32(b"clean_share")
TEXTURE_SALT = zlib.crc32(b"clean_textures")    # the same for the choice and the crop of a texture


def keeps_clean(seed: int, index: int, share: float) -> bool:
    """Whether training sample `index` (its global position in the stream: iteration k, rank r, item j is
    k * batch + r * batch / world + j) is left undegraded under --clean-share. A pure function of (seed, index),
    shared by the loader and the device paths, so both leave the same samples clean."""
    return share > 0 and bool(np.random.default_rng([seed, index, CLEAN_SALT]).random() < share)


class SeededItems(torch.utils.data.Dataset):
    """A dataset of (degraded, clean) pairs whose item i is a pure function of (seed, i): every random number of
    item i comes from numpy.random.default_rng([seed, i]). The trainer relies on this for exact resume (no
    sampler state). clean_share: that share of the items comes back with the clean patch as its input too
    (keeps_clean)."""

    seed: int
    length: int
    clean_share: float = 0.0

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        if not keeps_clean(self.seed, i, self.clean_share):
            return self.item(i, rng)
        # A clean sample is decided before anything is made, so nothing is degraded (or cropped) to be thrown
        # away; its crop takes the same draws as the degraded sample it replaces.
        clean = self.clean_item(i, rng)
        return clean.clone(), clean

    def item(self, i: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def clean_item(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        """Item i's target alone, the input of a clean sample (a dataset whose degradation costs something
        skips it here)."""
        return self.item(i, rng)[1]


class SyntheticPairs(SeededItems):
    """(degraded, clean) patches made on the fly from clean photos.

    images: a folder, a list of paths and/or arrays, or a dict of them. Item i is a pure function of
    (seed, i): which image, where the crop is, which flip/rotation and every random number of the
    degradation all come from numpy.random.default_rng([seed, i]). degrade_settings fix degradation
    parameters (e.g. sigma=25); unspecified ones are drawn (drcnet.data.degrade.degrade). max_side downsizes
    photos on load (faster, but changes their scale); cache_size images stay decoded (per worker). By default
    all of them when max_side bounds their size (decoding a 20 MP JPEG per patch would dominate a CPU step),
    else 8. clean_share: that share of the items is left undegraded (SeededItems); textures (images, as
    `images`) and texture_share: that share of those undegraded items is a crop of a texture instead;
    stripe_share: that share of them is its photo crop printed with a grating (drcnet/data/stripes.py)."""

    def __init__(self, images, task: str, patch: int = 256, length: int = 10 ** 9, seed: int = 0,
                 augment: bool = True, max_side: int | None = None, cache_size: int | None = None,
                 clean_share: float = 0.0, textures=None, texture_share: float = 0.0, stripe_share: float = 0.0,
                 **degrade_settings):
        self.images = named_images(images)
        self.textures = named_images(textures) if textures is not None else []
        if texture_share and not self.textures:
            raise ValueError("texture_share needs texture images (scripts/fetch_data.py puts them in data/textures)")
        if texture_share + stripe_share > 1:
            raise ValueError(f"texture_share + stripe_share is a share of the clean samples: at most 1, got "
                             f"{texture_share} + {stripe_share}")
        self.texture_share, self.stripe_share = texture_share, stripe_share
        self.texture_cache = ImageCache(len(self.textures), None) if self.textures else None
        if not self.images:
            raise ValueError("SyntheticPairs needs at least one image")
        self.task, self.patch, self.length, self.seed, self.augment = task, patch, length, seed, augment
        self.clean_share = clean_share
        self.settings = degrade_settings
        if cache_size is None:
            cache_size = len(self.images) if max_side else 8
        self.cache = ImageCache(cache_size, max_side)

    def crop(self, rng) -> np.ndarray:
        """A clean crop with the task's context margin (CONTEXT) around the patch, flipped/rotated."""
        n = int(rng.integers(len(self.images)))
        margin = CONTEXT.get(self.task, 0)
        (clean,) = random_crop([self.cache.get(n, self.images[n][1])], self.patch + 2 * margin, rng)
        return dihedral(clean, int(rng.integers(8))) if self.augment else clean

    def trim(self, x: np.ndarray) -> np.ndarray:
        margin = CONTEXT.get(self.task, 0)
        return x[margin:-margin, margin:-margin] if margin else x

    def item(self, i, rng):
        clean = self.crop(rng)
        degraded, _ = degrade(clean, self.task, rng, **self.settings)
        return to_tensor(self.trim(degraded)), to_tensor(self.trim(clean))

    def clean_item(self, i, rng):
        """A texture crop (the first texture_share of a draw of its own), the photo crop printed with stripes
        (the last stripe_share) or the photo crop. The draw and the texture or the stripes come from a stream of
        their own, so the photo crop is the one the degraded sample would have had."""
        own = np.random.default_rng([self.seed, i, TEXTURE_SALT])
        u = own.random() if self.textures or self.stripe_share else 1.0
        if u < self.texture_share:
            n = int(own.integers(len(self.textures)))
            (crop,) = random_crop([self.texture_cache.get(n, self.textures[n][1])], self.patch, own)
            return to_tensor(dihedral(crop, int(own.integers(8))) if self.augment else crop)
        photo = self.trim(self.crop(rng))
        return to_tensor(add_stripes(photo, own) if self.stripe_share and u >= 1 - self.stripe_share else photo)


PAIRED_LAYOUTS = ("sidd", "gopro", "rain13k", "generic")


def find_pairs(root, layout: str) -> list[tuple[Path, Path]]:
    """(degraded, clean) file pairs of a published data set layout, sorted. Files without a partner raise.

    generic, rain13k: root/input/* and root/target/*, paired by file stem (MPRNet's Rain13K training set and
        its test sets Rain100L, Rain100H, Test100, Test1200, Test2800 all use this layout).
    gopro: root/<scene>/blur/*.png with root/<scene>/sharp/*.png of the same name; root is GOPRO_Large/train
        or /test. A root with input/ and target/ (MPRNet's re-packed GoPro) is read as generic.
    sidd: SIDD Medium sRGB: root/**/<id>_NOISY_SRGB_<nnn>.PNG with <id>_GT_SRGB_<nnn>.PNG in the same scene
        folder (root is SIDD_Medium_Srgb or its Data/). A root with input/ and target/ (MPRNet's cropped
        SIDD patches, also the layout of its validation set) is read as generic."""
    root = Path(root)
    if layout not in PAIRED_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {PAIRED_LAYOUTS}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if layout in ("generic", "rain13k") or (root / "input").is_dir() and (root / "target").is_dir():
        return _pair_by_stem(root / "input", root / "target")
    if layout == "gopro":
        pairs = []
        for scene in sorted(p for p in root.iterdir() if p.is_dir()):
            pairs += _pair_by_stem(scene / "blur", scene / "sharp")
        if not pairs:
            raise ValueError(f"{root}: no <scene>/blur and <scene>/sharp folders (GoPro layout)")
        return pairs
    noisy = sorted(p for p in root.rglob("*") if "NOISY_SRGB" in p.name and p.suffix.lower() in IMAGE_EXTS)
    if not noisy:
        raise ValueError(f"{root}: no *NOISY_SRGB_* files (SIDD Medium layout)")
    pairs = [(p, p.with_name(p.name.replace("NOISY_SRGB", "GT_SRGB"))) for p in noisy]
    unpaired = [str(p) for p, gt in pairs if not gt.is_file()]
    if unpaired:
        raise ValueError(f"{root}: noisy files without their GT_SRGB partner: {unpaired[:5]}"
                         + (f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else ""))
    return pairs


def _pair_by_stem(inputs: Path, targets: Path) -> list[tuple[Path, Path]]:
    ins, outs = ({p.stem: p for p in list_images(d)} for d in (inputs, targets))
    only_in, only_out = sorted(set(ins) - set(outs)), sorted(set(outs) - set(ins))
    if only_in or only_out:
        raise ValueError(f"unpaired files: in {inputs} but not {targets}: {only_in[:5]}; "
                         f"in {targets} but not {inputs}: {only_out[:5]}")
    if not ins:
        raise ValueError(f"{inputs}: no images")
    return [(ins[s], outs[s]) for s in sorted(ins)]


class PairedFolder(SeededItems):
    """Real (degraded, clean) pairs from a folder in one of PAIRED_LAYOUTS (see find_pairs).

    patch: random crop size (the same window of both images), None for whole images (evaluation).
    Item i uses pair i % len(pairs) and default_rng([seed, i]) for crop and flip/rotation; length defaults
    to the number of pairs. clean_share: that share of the items has the clean crop as its input (SeededItems)."""

    def __init__(self, root, layout: str = "generic", patch: int | None = 256, augment: bool = True,
                 seed: int = 0, length: int | None = None, cache_size: int = 8, clean_share: float = 0.0):
        self.pairs = find_pairs(root, layout)
        self.patch, self.augment, self.seed, self.clean_share = patch, augment, seed, clean_share
        self.length = length or len(self.pairs)
        self.cache = ImageCache(cache_size)

    def item(self, i, rng):
        n = i % len(self.pairs)
        degraded, clean = (self.cache.get((n, j), p) for j, p in enumerate(self.pairs[n]))
        if degraded.shape != clean.shape:
            raise ValueError(f"pair of different sizes: {self.pairs[n][0]} {degraded.shape} vs "
                             f"{self.pairs[n][1]} {clean.shape}")
        if self.patch:
            degraded, clean = random_crop([degraded, clean], self.patch, rng)
        if self.augment:
            k = int(rng.integers(8))
            degraded, clean = dihedral(degraded, k), dihedral(clean, k)
        return to_tensor(degraded), to_tensor(clean)


class FixedEvalSet:
    """Deterministic degraded versions of clean images, for every evaluation setting of a task.

    The random numbers of (setting, image) come from default_rng([seed, crc32(setting name),
    crc32(image name)]): identical on every run, and unchanged when other images or settings are added.
    settings: None for all of eval_settings(task), or a list of their names. max_side: centre crop.
    Iterating yields dicts: setting, image, clean, degraded, info."""

    def __init__(self, images, task: str, settings=None, seed: int = 0, max_side: int | None = None):
        self.task = task
        self.settings = select_settings(task, settings)
        self.clean = {name: centre_crop(as_array(src), max_side) for name, src in named_images(images)}
        self.items = [self._make(s, name, seed) for s in self.settings for name in self.clean]

    def _make(self, setting: dict, name: str, seed: int) -> dict:
        rng = np.random.default_rng([seed, zlib.crc32(setting["name"].encode()), zlib.crc32(name.encode())])
        degraded, info = degrade(self.clean[name], self.task, rng, **setting)
        return {"setting": setting["name"], "image": name, "clean": self.clean[name], "degraded": degraded,
                "info": info}

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def __iter__(self):
        return iter(self.items)


def select_settings(task: str, names=None) -> list[dict]:
    """eval_settings(task), or the named subset of them (unknown names raise)."""
    settings = eval_settings(task)
    if names is None:
        return settings
    by_name = {s["name"]: s for s in settings}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown {task} settings {unknown}; choose from {sorted(by_name)}")
    return [by_name[n] for n in names]
