"""The files the page serves (results, figures): one private temporary folder that keeps only the newest files."""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

FAST_PNG = 1    # zlib level for the app's own PNGs: 40 ms at 512x512 against 143 ms at Pillow's default (6)


class OutputFolder:
    """A private temporary folder, made on first use, that keeps only the newest `keep` files, so a long-running
    server does not fill its disk."""
    def __init__(self, keep: int = 32):
        self.keep = keep
        self._path: Path | None = None
        self._written: OrderedDict[str, Path] = OrderedDict()     # pixels' hash -> the PNG already holding them

    def folder(self) -> Path:
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix="drcnet-results-"))
        old = sorted((p for p in self._path.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
        for p in old[:max(0, len(old) - self.keep + 2)]:
            p.unlink(missing_ok=True)
        return self._path

    def display_png(self, image: Image.Image, name: str) -> str:
        """Write an image the page displays as a PNG at zlib level 1 and return its path: Gradio serves a path as
        it is, where a PIL image would be encoded again at the default level (three such encodes were 0.42 s of
        a 1.4 s /restore). PNG is lossless: the pixels are the same, the file about a sixth larger."""
        return str(self.png(image, name))

    def png(self, image: Image.Image, name: str, named: bool = False) -> Path:
        """The PNG of `image` at FAST_PNG: a file written earlier with the same pixels is served again (the
        unchanged "before" of an inspector's next t, the result that is also the download) instead of encoding
        them twice; its time is refreshed so the folder's cleanup keeps it. named: only a file of this name
        will do (a download keeps its name)."""
        key = hashlib.blake2b(f"{image.mode} {image.size}".encode() + image.tobytes(), digest_size=16).hexdigest()
        folder = self.folder()
        done = self._written.get(key)
        if done is not None and done.is_file() and (not named or done.name.startswith(f"{name}_")):
            os.utime(done)
            self._written.move_to_end(key)
            return done
        path = folder / f"{name}_{time.time_ns() % 10**9}.png"
        image.save(path, compress_level=FAST_PNG)
        self._written[key] = path
        while len(self._written) > self.keep:
            self._written.popitem(last=False)
        return path

    def result_file(self, prepared, restored) -> Path:
        """Write the full-fidelity result (16-bit PNG for 16-bit inputs, alpha and grey as the input had them)."""
        from drcnet.demo.inputs import to_pil
        from drcnet.serve.imageio import output_array, save_image
        stem = Path(prepared.loaded.source_name).stem[:40] or "image"
        if prepared.synthetic:
            return self.png(to_pil(restored), f"{stem}_restored", named=True)
        pixels = output_array(prepared.loaded, restored)
        if pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3:    # plain RGB: the page's PNG
            return self.png(Image.fromarray(pixels), f"{stem}_restored", named=True)
        return save_image(self.folder() / f"{stem}_restored_{time.time_ns() % 10**9}.png", prepared.loaded, restored,
                          png_level=FAST_PNG)
