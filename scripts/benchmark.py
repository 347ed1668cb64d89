"""The compiled-path speed table of docs/benchmark.md: engine, floor and training rows, each interleaved.

    python scripts/benchmark.py                 # the real run (idle machine; about 15 minutes cold)
    python scripts/benchmark.py --quick         # smoke run: tiny sizes, 2 repeats

The app row comes from scripts/measure_app.py --compiled (it launches the app). Logic: drcnet/speed.py.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drcnet.speed import main  # noqa: E402

if __name__ == "__main__":
    main()
