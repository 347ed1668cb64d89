"""Make the app's example images in assets/ from scikit-image's bundled photos (no download).

    python scripts/make_assets.py [OUT_DIR]        # default: assets/

The logic and its reasons: drcnet/demo/assets.py.
"""
import argparse

from drcnet.core.paths import ASSETS
from drcnet.demo.assets import make_assets

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=ASSETS, help="folder to write (default: assets/)")
    make_assets(ap.parse_args().out)
