"""`python -m drcnet.train ...` and `torchrun -m drcnet.train ...`: see drcnet/train/trainer.py."""
from drcnet.train.trainer import main

main()
