"""Reading and writing images for restoration, with messages a user can act on.

load_image turns whatever the user hands us (a path, bytes, a file object or a PIL image) into float32 RGB in
[0, 1] plus what is needed to write the result back the way it came: the alpha channel (kept aside, never
restored), whether it was grey, and its bit depth. save_image writes 16-bit PNGs for 16-bit inputs.

Three Pillow gaps are bridged here with the standard library only (no extra dependency):
- Pillow decodes 16-bit RGB(A) PNG/TIFF to 8 bits, keeping the high byte of each sample. We decode a second
  time with the byte order of the raw mode swapped, which yields the low bytes, and put the two together.
- Pillow has no 16-bit grey+alpha mode: it opens such PNGs as RGBA (grey copied to R, G, B) with raw mode
  'LA;16B', again keeping only high bytes, and has no 'LA;16L' to swap to. We decode once with the 8-bit raw
  mode 'RGBA', which has the same 4 bytes per pixel, so every byte comes through unchanged (decode_grey_alpha16).
- Pillow cannot write 16-bit RGB(A) PNG, so write_png16 writes the PNG chunks itself (zlib + struct).
"""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
SIXTEEN_BIT_GREY = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


class ImageError(ValueError):
    """An image we cannot use; the message says which and why, in words meant for the user."""


@dataclass
class LoadedImage:
    rgb: np.ndarray              # float32 HxWx3 in [0, 1] (grey images replicated to 3 channels)
    alpha: np.ndarray | None     # float32 HxW in [0, 1], or None
    grayscale: bool
    bit_depth: int               # 8 or 16
    mode: str                    # the Pillow mode of the file as opened
    source_name: str

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]


# ---------------------------------------------------------------- loading

def load_image(src, max_pixels: int = 40_000_000) -> LoadedImage:
    """Read src (path, bytes, binary file object or PIL image); raise ImageError for anything unusable."""
    name = source_name(src)
    if isinstance(src, Image.Image):
        check_size(src.size, name, max_pixels)
        return from_pil(src, name)
    opener = make_opener(src, name)
    image = open_lazily(opener, name)
    check_size(image.size, name, max_pixels)      # from the header: nothing is decoded yet
    try:
        if is_16bit_grey_alpha(image):
            return from_grey_alpha16(decode_grey_alpha16(opener), name, image.mode)
        colour16 = is_16bit_colour(image)
        low = decode_low_bytes(opener) if colour16 else None
        return from_pil(ImageOps.exif_transpose(image), name, image.mode, colour16, low)
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError) as e:
        raise ImageError(f"{name}: the image data is damaged or truncated ({e})") from None


def source_name(src) -> str:
    if isinstance(src, (str, Path)):
        return Path(src).name
    if isinstance(src, Image.Image):
        return Path(getattr(src, "filename", "") or "image").name
    return Path(str(getattr(src, "name", "") or "image")).name


def make_opener(src, name):
    """A function returning a fresh, undecoded PIL image of src: 16-bit colour needs to decode twice."""
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        return lambda: Image.open(path)
    if hasattr(src, "read"):
        src = src.read()
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        return lambda: Image.open(io.BytesIO(data))
    raise ImageError(f"{name}: expected a path, bytes, a file object or a PIL image, got {type(src).__name__}")


def open_lazily(opener, name) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit decides
        try:
            return opener()
        except Image.DecompressionBombError as e:
            raise ImageError(f"{name}: refused, larger than Pillow's decompression-bomb limit ({e})") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image file, or a format this app cannot read") from None
        except OSError as e:
            raise ImageError(f"{name}: cannot read the file ({e})") from None


def check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise ImageError(f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} pixels "
                         f"(a guard against decompression bombs; the limit is configurable)")
    if w == 0 or h == 0:
        raise ImageError(f"{name}: the image is empty ({w}x{h})")


def raw_modes(image: Image.Image) -> list[str]:
    """The raw (file) sample layout of each tile Pillow will decode, e.g. 'RGB;16B'."""
    return [t.args if isinstance(t.args, str) else t.args[0] for t in image.tile if t.args]


def is_16bit_grey_alpha(image: Image.Image) -> bool:
    """A 16-bit grey+alpha PNG, which Pillow opens as RGBA (it has no 16-bit LA mode)."""
    modes = raw_modes(image)
    return image.mode == "RGBA" and bool(modes) and all(m == "LA;16B" for m in modes)


def is_16bit_colour(image: Image.Image) -> bool:
    return (image.mode in ("RGB", "RGBA") and any(";16" in m for m in raw_modes(image))
            and not is_16bit_grey_alpha(image))


def with_raw_mode(tile, raw_mode: str):
    """tile decoding the same bytes as raw_mode (tile.args is the raw mode, or a tuple starting with it)."""
    return tile._replace(args=raw_mode if isinstance(tile.args, str) else (raw_mode, *tile.args[1:]))


def decode_low_bytes(opener) -> np.ndarray | None:
    """Decode the low byte of every 16-bit sample: Pillow keeps the most significant byte of the raw mode it
    is given, so telling it the opposite byte order hands us the other byte, through the same decoder."""
    image = opener()
    swap = {"16B": "16L", "16L": "16B"}
    tiles = []
    for t in image.tile:
        args = t.args if isinstance(t.args, str) else t.args[0]
        swapped = args[:-3] + swap.get(args[-3:], args[-3:])
        tiles.append(with_raw_mode(t, swapped))
    image.tile = tiles
    try:
        return np.asarray(ImageOps.exif_transpose(image))
    except (OSError, ValueError):   # a layout this trick does not cover: stay with Pillow's 8 significant bits
        return None


def decode_grey_alpha16(opener) -> np.ndarray:
    """The samples of a 16-bit grey+alpha PNG, uint16 HxWx2 (grey, alpha), all 16 bits of each.

    Its raw pixel is 4 bytes: grey high, grey low, alpha high, alpha low. The 8-bit raw mode 'RGBA' is 4 bytes
    too, so the PNG decoder sees the same row length and the same byte distance for its row filters, and
    unpacks the four bytes, untouched, into R, G, B, A: one decode gives both bytes of both samples."""
    image = opener()
    image.tile = [with_raw_mode(t, "RGBA") for t in image.tile]
    b = np.asarray(ImageOps.exif_transpose(image)).astype(np.uint16)
    return np.stack([b[..., 0] << 8 | b[..., 1], b[..., 2] << 8 | b[..., 3]], axis=2)


def from_grey_alpha16(samples: np.ndarray, name: str, mode: str) -> LoadedImage:
    """uint16 HxWx2 grey+alpha samples -> a grey, 16-bit LoadedImage (written back as 16-bit grey+alpha)."""
    values = samples.astype(np.float32) / 65535.0
    rgb = np.repeat(values[..., :1], 3, axis=2)
    return LoadedImage(rgb, np.ascontiguousarray(values[..., 1]), True, 16, mode, name)


def from_pil(image: Image.Image, name: str, mode: str | None = None, colour16: bool = False,
             low: np.ndarray | None = None) -> LoadedImage:
    """A decoded PIL image (for 16-bit colour files, also the low bytes of each sample) -> LoadedImage."""
    mode = mode or image.mode
    grayscale = image.mode in GREY_MODES
    has_alpha = image.mode in ALPHA_MODES or "transparency" in image.info
    if grayscale:
        grey, alpha, depth = grey_samples(image, has_alpha)
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:
        samples = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32)
        if low is not None and low.shape == samples.shape:
            samples = (samples * 256 + low) / 65535.0
        else:
            samples /= 255.0
        depth = 16 if colour16 else 8
        rgb, alpha = samples[..., :3], (samples[..., 3] if has_alpha else None)
    return LoadedImage(np.ascontiguousarray(rgb, dtype=np.float32), alpha, grayscale, depth, mode, name)


def grey_samples(image: Image.Image, has_alpha: bool):
    """-> (grey float32 HxW in [0, 1], alpha or None, bit depth)."""
    if image.mode in SIXTEEN_BIT_GREY:
        values = np.asarray(image, dtype=np.float32)
        grey = values if image.mode == "F" else values / 65535.0
        alpha = None
        if has_alpha:       # a tRNS grey value: transparent exactly where the sample equals it
            alpha = (np.asarray(image) != image.info["transparency"]).astype(np.float32)
        return np.clip(grey, 0, 1), alpha, 16
    la = np.asarray(image.convert("LA"), dtype=np.float32) / 255.0
    return la[..., 0], (la[..., 1] if has_alpha else None), 8


# ---------------------------------------------------------------- writing

def output_array(loaded: LoadedImage, restored: np.ndarray) -> np.ndarray:
    """Restored float RGB -> the integer array to write: grey back to one channel, alpha re-attached,
    uint16 for 16-bit inputs and uint8 otherwise. Shape HxW, HxWx2, HxWx3 or HxWx4."""
    out = np.clip(np.asarray(restored, dtype=np.float32), 0.0, 1.0)
    if loaded.grayscale and out.ndim == 3:
        out = out.mean(axis=2)
    if loaded.alpha is not None:
        channels = out[..., None] if out.ndim == 2 else out
        out = np.concatenate([channels, loaded.alpha[..., None]], axis=2)
    top, dtype = (65535, np.uint16) if loaded.bit_depth == 16 else (255, np.uint8)
    return np.rint(out * top).astype(dtype)


def to_output(loaded: LoadedImage, restored: np.ndarray) -> Image.Image:
    """A PIL image of the result. Pillow has no 16-bit colour or 16-bit grey+alpha modes, so those come back
    as 8 bits here; save_image keeps all 16 bits."""
    arr = output_array(loaded, restored)
    if arr.dtype == np.uint16 and arr.ndim == 2:
        return Image.frombytes("I;16", (arr.shape[1], arr.shape[0]), arr.astype("<u2").tobytes())
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    mode = "L" if arr.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())


def save_image(path, loaded: LoadedImage, restored: np.ndarray, png_level: int = 6) -> Path:
    """Write the result; 16-bit inputs give 16-bit PNGs (the path must then end in .png). png_level: zlib's
    level for PNGs (lossless at any level: 1 writes several times faster, files about a sixth larger)."""
    path = Path(path)
    arr = output_array(loaded, restored)
    if arr.dtype == np.uint16:
        if path.suffix.lower() != ".png":
            raise ImageError(f"{path.name}: 16-bit results are written as PNG; use a .png file name")
        write_png16(path, arr, png_level)
    else:
        image = to_output(loaded, restored)
        image.save(path, **({"compress_level": png_level} if path.suffix.lower() == ".png" else {}))
    return path


PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}    # channels -> grey, grey+alpha, RGB, RGBA


def write_png16(path, arr: np.ndarray, level: int = 6) -> None:
    """A 16-bit PNG from a uint16 HxW(xC) array, C in 1..4. Rows use the 'Up' filter (difference to the row
    above, byte-wise mod 256), which helps zlib on photographs."""
    arr = arr[..., None] if arr.ndim == 2 else arr
    h, w, c = arr.shape
    rows = np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    up = rows.copy()
    up[1:] -= rows[:-1]                       # uint8 arithmetic wraps mod 256, as PNG wants
    filtered = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 16, PNG_COLOUR_TYPE[c], 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        for kind, data in ((b"IHDR", header), (b"IDAT", zlib.compress(filtered.tobytes(), level)), (b"IEND", b"")):
            f.write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))
