"""`python -m drcnet.profile`: a command alias, see drcnet/eval/profile.py."""
from drcnet.eval.profile import main

if __name__ == "__main__":
    main()
