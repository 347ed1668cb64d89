"""Shared test settings."""
import torch

# The tests run small tensors: one thread is as fast as two for them, and it keeps them from slowing down
# tenfold when other processes (a training run, a second test session) compete for the CPU cores.
torch.set_num_threads(1)
