"""One training step's parts: the weight average (EMA), whether compiling pays, the meter of the steps between
log lines, and validation. The compiled forward with its eager fallback lives in drcnet/core/inductor.py."""
from __future__ import annotations

import copy
import time

import torch
import torch.nn as nn

from drcnet.core.inductor import why_not_compile
from drcnet.core.metrics import batch_psnr
from drcnet.train.config import TrainConfig
from drcnet.train.maskstats import MaskStats


class EMA:
    """An fp32 exponential moving average of a model's weights, ema <- decay * ema + (1 - decay) * w after
    every optimizer step; buffers are copied. A plain copy of the module rather than
    torch.optim.swa_utils.AveragedModel: its state dict is the model's own (no `module.` prefix, no
    n_averaged counter), so it validates with the same code and saves as a drcnet checkpoint."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).float().eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        # one fused multi-tensor lerp (as AveragedModel's EMA does): a few hundred small kernels per step
        # would cost a GPU step more than the average itself
        torch._foreach_lerp_(list(self.model.parameters()), [w.float() for w in model.parameters()],
                             1.0 - self.decay)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)


def compile_pays(cfg: TrainConfig, device: torch.device, steps: int) -> bool:
    """--compile auto: compile when the run is long enough to repay a cold compile (~2 min for lite on a CPU,
    for ~1.5x faster steps: >= 10 minutes or >= 1000 iterations to go) and the toolchain is there (a C++
    compiler for the CPU, Triton for CUDA)."""
    if cfg.compile != "auto":
        return cfg.compile == "on"
    long_enough = cfg.minutes >= 10 if cfg.minutes is not None else steps >= 1000
    if not long_enough:
        return False
    return why_not_compile(device) is None


class StepMeter:
    """Sums of the loss and the training PSNR since the last log line (on the device: no sync per step), the
    step count and the seconds spent waiting for data."""

    def __init__(self, device):
        self.acc = torch.zeros(2, device=device)
        self.reset()

    def add(self, loss: torch.Tensor, out2: torch.Tensor, clean: torch.Tensor) -> None:
        with torch.no_grad():
            self.acc += torch.stack([loss.detach().float(), batch_psnr(out2.detach(), clean).mean()])
        self.n += 1

    def mean(self) -> torch.Tensor:
        return self.acc / self.n

    def reset(self) -> None:
        self.acc.zero_()
        self.n, self.t_log, self.wait = 0, time.time(), 0.0


@torch.no_grad()
def validate(model: nn.Module, val, device, amp, chunk: int = 4) -> float:
    degraded, clean = val
    was_training = model.training
    model.eval()
    scores = []
    for i in range(0, len(degraded), chunk):
        d = degraded[i:i + chunk].to(device)
        with amp():
            out = model(d)[1]
        scores.append(batch_psnr(out, clean[i:i + chunk].to(device)).cpu())
    model.train(was_training)
    return float(torch.cat(scores).mean())


def score(model: nn.Module, ema, val, device, amp):
    """(raw PSNR, EMA PSNR or None, the DFR mask statistics of the raw forward) on the validation set."""
    with MaskStats(model) as masks:
        raw = validate(model, val, device, amp)
    averaged = validate(ema.model, val, device, amp) if ema is not None else None
    return raw, averaged, masks.summary()
