"""`python -m drcnet.train ...` and `torchrun -m drcnet.train ...`: see drcnet/train/__init__.py and cli.py."""
from drcnet.train.cli import main

main()
