"""Make the app's example images in assets/ from scikit-image's bundled photos (no download).

    python scripts/make_assets.py [OUT_DIR]        # default: assets/

The logic and its reasons: drcnet/demo/assets.py.
"""
import sys

from drcnet.demo.assets import make_assets

if __name__ == "__main__":
    make_assets(*sys.argv[1:2])
