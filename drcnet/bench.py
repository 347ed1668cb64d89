"""`python -m drcnet.bench`: a command alias, see drcnet/eval/bench.py."""
from drcnet.eval.bench import main

if __name__ == "__main__":
    main()
