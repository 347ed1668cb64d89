"""The values every handler shares: the six input settings (their defaults and their order written here and nowhere
else) and the sizes the handlers work at (Limits, made when the registry is made, not at import).

The order of InputSettings' fields is the one place the settings' order is written: the controls' list, an example's
row and the API's argument lists (takes_input_settings) are all made from it, so reordering a field moves every one
of them together."""
from __future__ import annotations

import functools
import inspect
import os
from dataclasses import dataclass, fields, replace

from drcnet.demo.files import mtime
from drcnet.demo.messages import DemoError


@dataclass(frozen=True)
class InputSettings:
    """How the input is made: an optional clean reference, or a synthetic degradation of a clean photo."""
    reference: str | None = None
    synthesize: bool = False
    sigma: float = 25
    rain: str = "light"
    blur_size: int = 21
    seed: int = 0

    def degradation(self, task: str) -> dict:
        """degrade()'s keyword arguments for this task's synthetic degradation, validated."""
        if task == "denoise":
            if not 0 <= float(self.sigma) <= 100:
                raise DemoError(f"noise sigma must lie in 0..100 (0-255 units), got {self.sigma}")
            return {"sigma": float(self.sigma)}
        if task == "derain":
            from drcnet.data.degrade import RAIN_PRESETS
            if self.rain not in RAIN_PRESETS:
                raise DemoError(f"rain must be one of {sorted(RAIN_PRESETS)}, got {self.rain!r}")
            return {"setting": self.rain}
        from drcnet.data.degrade import KERNEL_SIZES
        size = int(self.blur_size) | 1
        return {"size": min(max(size, KERNEL_SIZES[0]), KERNEL_SIZES[1])}

    def cache_key(self) -> tuple:
        return (str(self.reference), mtime(self.reference), bool(self.synthesize), float(self.sigma), self.rain,
                int(self.blur_size), int(self.seed))

    @classmethod
    def names(cls) -> list[str]:
        """The fields' names in their order: [reference, synthesize, sigma, rain, blur_size, seed]."""
        return [f.name for f in fields(cls)]

    def as_row(self) -> list:
        """The values in names()' order: what the controls' list (made in the same order) shows."""
        return [getattr(self, name) for name in self.names()]

    @classmethod
    def from_row(cls, values) -> "InputSettings":
        """The inverse of as_row: the values in names()' order."""
        return cls(**dict(zip(cls.names(), values, strict=True)))

    @classmethod
    def from_example(cls, entry: dict, reference: str | None = None) -> "InputSettings":
        """An examples.json entry: its own keys, else how a committed degraded file was made, else the defaults."""
        made, default = entry.get("settings") or {}, cls()
        return cls(reference=reference, synthesize=bool(entry.get("synthesize", False)),
                   sigma=entry.get("sigma", made.get("sigma", default.sigma)),
                   rain=entry.get("rain", made.get("setting", default.rain)),
                   blur_size=entry.get("blur_size", made.get("size", default.blur_size)),
                   seed=entry.get("seed", default.seed))


# What each setting means, for the API's and the MCP tools' argument descriptions (takes_input_settings adds them to
# the handler's docstring, whose "Args:" lines Gradio reads).
HELP = {"reference": "optional clean version of the image (a file), for PSNR/SSIM",
        "synthesize": "treat the image as a clean photo and degrade it first with the project's synthetic noise, rain "
                      "or motion blur (fixed seed), so the result is scored against it",
        "sigma": "noise sigma in 0-255 units, for synthesize with denoise",
        "rain": "light or heavy, for synthesize with derain",
        "blur_size": "motion-blur kernel size in px (13-31), for synthesize with deblur",
        "seed": "seed of the synthetic degradation"}


def with_settings_help(doc: str | None) -> str:
    """A handler's docstring with one "name: meaning" line per input setting added to its "Args:" section (made
    when missing), before any "Returns:" section."""
    lines = (doc or "").strip().splitlines()
    helps = [f"    {name}: {HELP[name]}" for name in InputSettings.names()]
    if not any(line.strip().startswith("Args:") for line in lines):
        lines += ["", "Args:"]
    at = next((i for i, line in enumerate(lines) if line.strip().startswith("Returns:")), len(lines))
    return "\n".join(lines[:at] + helps + lines[at:])


def takes_input_settings(**defaults):
    """A handler written as fn(..., settings: InputSettings, ...) called as fn(..., reference, synthesize, sigma,
    rain, blur_size, seed, ...): its `settings` parameter spelled out as InputSettings' fields, in their order and
    with their defaults (`defaults` overrides some, e.g. synthesize=True), so the API and the MCP tools list
    readable arguments while the handler gets one InputSettings. The signature the wrapper shows is the spelled-out
    one (Gradio and ZeroGPU's duration callables read it)."""
    base = replace(InputSettings(), **defaults)

    def decorate(fn):
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index("settings")
        spelled = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=getattr(base, name))
                   for name in InputSettings.names()]
        shown = signature.replace(parameters=params[:at] + spelled + params[at + 1:])

        def call(args, kwargs):
            bound = shown.bind(*args, **kwargs)
            bound.apply_defaults()
            values = bound.arguments
            settings = InputSettings(**{name: values.pop(name) for name in InputSettings.names()})
            return fn(**values, settings=settings)

        if inspect.isgeneratorfunction(fn):         # stays a generator function (Gradio streams it)
            @functools.wraps(fn)
            def handler(*args, **kwargs):
                yield from call(args, kwargs)
        else:
            @functools.wraps(fn)
            def handler(*args, **kwargs):
                return call(args, kwargs)
        handler.__signature__ = shown
        handler.__doc__ = with_settings_help(inspect.getdoc(fn))
        return handler
    return decorate


@dataclass(frozen=True)
class Limits:
    """Sizes the handlers work at."""
    max_pixels: int = 40_000_000         # decompression-bomb guard for uploads (40 MP)
    inspect_max_side: int = 512          # the inspector, Intra-CR explorer and Compare work at most this size
    cr_max_side: int = 192               # VGG features for the Intra-CR curves (many forwards): smaller still

    @classmethod
    def from_env(cls) -> "Limits":
        return cls()        # the tiles are the checkpoint's (its inference spec), not the app's
