"""The compiled-path speed table of docs/benchmark.md: engine, floor and training rows, each interleaved.

    python scripts/benchmark.py                 # the real run (idle machine; about 15 minutes cold)
    python scripts/benchmark.py --quick         # smoke run: tiny sizes, 2 repeats

The app rows come from scripts/measure_app.py (it launches the app). Logic: drcnet/eval/speed.py.
"""

from drcnet.eval.speed import main
if __name__ == "__main__":
    main()
