"""The distributed setup: the process's place in a torchrun job (`Dist`) and the torch settings of a run."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from drcnet.core.device import pick_precision
from drcnet.train.config import TrainConfig


class Dist:
    """The process's place in a torchrun job (WORLD_SIZE/RANK/LOCAL_RANK), or a single process."""

    def __init__(self, cfg: TrainConfig):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world)))
        want = cfg.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want == "cuda":                   # this process's GPU: cuda:LOCAL_RANK (cuda:0 for a single process)
            want = f"cuda:{self.local_rank}"
        self.device = torch.device(want)
        if self.device.type == "cuda":
            # An explicit index: torch 2.14 raises ValueError for set_device(torch.device("cuda")).
            torch.cuda.set_device(self.device.index)
        self.owns_group = False
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            kw = {"device_id": self.device} if backend == "nccl" else {}
            torch.distributed.init_process_group(backend, **kw)
            self.owns_group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agree_min(self, value: int) -> int:
        """The smallest of the ranks' values, so that every rank takes the same decision."""
        if self.world > 1:
            t = torch.tensor([value], dtype=torch.int64, device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
            value = int(t.item())
        return value

    def from_main(self, values: torch.Tensor) -> torch.Tensor:
        """Rank 0's values on every rank (decisions taken on rank 0's clock)."""
        if self.world > 1:
            values = values.clone()
            torch.distributed.broadcast(values, src=0)
        return values

    def all_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            values = values.clone()
            torch.distributed.all_reduce(values)
            values /= self.world
        return values

    def close(self):
        if self.owns_group:
            torch.distributed.destroy_process_group()


def setup_torch(cfg: TrainConfig, dist: Dist) -> tuple[str, torch.memory_format]:
    """Threads (all cores, shared among the local ranks), the batch split check, TF32/cuDNN on CUDA and the
    seeds; returns (precision, memory format)."""
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // max(1, dist.local_world)))
    if cfg.batch % dist.world:
        raise ValueError(f"--batch {cfg.batch} does not split over {dist.world} processes")
    precision = pick_precision(dist.device, cfg.precision)
    if dist.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    return precision, torch.channels_last if cfg.channels_last else torch.contiguous_format
