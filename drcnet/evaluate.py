"""`python -m drcnet.evaluate`: a command alias, see drcnet/eval/evaluate.py."""
from drcnet.eval.evaluate import main

if __name__ == "__main__":
    main()
