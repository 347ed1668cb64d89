"""Reference activations of the original VGG19 on scikit-image's chelsea, computed WITHOUT our converter or torch.

Reads the Keras h5 file directly and runs the convolutions with scipy (per output channel cross-correlation),
so tests/test_vgg.py checks the converted safetensors + our extractor + its Caffe preprocessing against numbers
that share no code with them. Writes tests/data/vgg19_chelsea_reference.json.

    python scripts/vgg_reference.py --h5 .../vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
"""
import argparse
import json
from pathlib import Path

import h5py
import numpy as np
from scipy.ndimage import correlate
from skimage import data, transform

SIZE = 64     # a 64x64 downscale of chelsea keeps the scipy reference fast


def chelsea_input():
    img = transform.resize(data.chelsea(), (SIZE, SIZE), anti_aliasing=True).astype(np.float32)  # RGB [0,1]
    return img


def conv_relu(x, kernel, bias):
    """x (H, W, Cin); kernel (3, 3, Cin, Cout) in Keras order; 'same' zero padding."""
    h, w, cin = x.shape
    out = np.empty((h, w, kernel.shape[3]), np.float64)
    for o in range(kernel.shape[3]):
        out[..., o] = correlate(x, kernel[..., o], mode="constant", cval=0.0)[..., cin // 2] + bias[o]
    return np.maximum(out, 0)


def pool(x):
    h, w, c = x.shape
    return x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--h5", required=True)
    args = ap.parse_args()
    f = h5py.File(args.h5, "r")
    def W(name):  # (bias, kernel) of one Keras layer
        group = f[name]
        return (next(group[k][()] for k in group if "_b" in k), next(group[k][()] for k in group if "_W" in k))

    x = chelsea_input()[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])   # Caffe: BGR, 0-255, mean
    x = x.astype(np.float64)
    out = {}
    b, k = W("block1_conv1"); r11 = conv_relu(x, k, b); out["relu1_1"] = r11
    b, k = W("block1_conv2"); r = pool(conv_relu(r11, k, b))
    b, k = W("block2_conv1"); r21 = conv_relu(r, k, b); out["relu2_1"] = r21
    b, k = W("block2_conv2"); r = pool(conv_relu(r21, k, b))
    b, k = W("block3_conv1"); out["relu3_1"] = conv_relu(r, k, b)
    ref = {"size": SIZE, "layers": {}}
    for name, a in out.items():
        ref["layers"][name] = {"mean": float(a.mean()), "channel_means": a.mean(axis=(0, 1))[:8].tolist(),
                               "pixel_5_7": a[5, 7, :8].tolist()}
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "vgg19_chelsea_reference.json"
    path.write_text(json.dumps(ref, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
