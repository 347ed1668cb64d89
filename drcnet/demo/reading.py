"""Reading an upload the way every handler does: drcnet.serve.imageio's decoder, the pixel guard and the smallest
size the model can restore, with the messages a visitor reads (the upload check says the same before any run)."""
from __future__ import annotations

from pathlib import Path

from drcnet.demo.messages import DemoError
from drcnet.demo.settings import Limits
from drcnet.serve.imageio import ImageError, LoadedImage, load_image


def load(path, what: str = "image", max_pixels: int = Limits.max_pixels) -> LoadedImage:
    if path is None or path == "":
        raise DemoError(f"No {what} given: upload, paste or pick an example first.")
    try:
        return load_image(path, max_pixels=max_pixels)
    except ImageError:
        raise
    except Exception as e:          # anything Pillow throws that imageio did not anticipate
        raise ImageError(f"{Path(str(path)).name}: cannot read this image ({type(e).__name__}: {e})") from None


def check_usable(loaded: LoadedImage) -> None:
    h, w = loaded.size
    if min(h, w) < 8:
        raise ImageError(f"{loaded.source_name}: {w}x{h} is too small to restore (at least 8x8 pixels)")


def read_checked(path, what: str) -> LoadedImage:
    """Load an upload as every handler would (drcnet.serve.imageio, the size guards); errors as the handlers raise."""
    loaded = load(path, what)
    check_usable(loaded)
    return loaded
