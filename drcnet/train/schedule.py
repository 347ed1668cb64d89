"""The three learning-rate schedules of a run behind one small interface:

- `Cosine`: the paper's cosine per iteration over --iters (bitwise resumable);
- `FittedCosine`: --minutes with --schedule iters: the same cosine, whose length is fitted to the budget after a
  short warm-up has measured the step rate (the length lives here and in state.pt, never in the config);
- `WallClock`: --schedule time: the lr of every step from the elapsed fraction of the budget (`WarmupCosine`).

The run asks a schedule `begin_step(it)` before a step (False: the deadline has passed), calls `advance()` after
the optimizer step and `end_step(it, done, seconds)` after the step's bookkeeping; `end` is the iteration the run
stops at. `costs` is anything with `val_s` and `save_s` (the run's measured seconds of a validation and a save).
"""
from __future__ import annotations

import collections
import math
import statistics
import time

import torch

from drcnet.train.config import TrainConfig

NO_END = 10 ** 12


class WarmupCosine:
    """--schedule time: the learning rate as a function of the elapsed fraction f of the training time: a
    linear warm-up over the first WARMUP of it, then cosine from lr to lr_min, the floor from f = 1 on.
    (The paper's schedule is cosine per iteration; a wall-clock one lets a CPU run use a fixed budget fully.)"""
    WARMUP = 0.02

    def __init__(self, lr: float, lr_min: float):
        self.lr_max, self.lr_min = lr, lr_min

    def lr(self, f: float) -> float:
        if f < self.WARMUP:
            return self.lr_max * max(f, 0.0) / self.WARMUP
        f = min(1.0, (f - self.WARMUP) / (1.0 - self.WARMUP))
        return self.lr_min + (self.lr_max - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * f))


class Cosine:
    """Cosine annealing per iteration over `iters` steps, from the optimizer's lr down to lr_min."""
    timed = False
    description = "cosine per iteration"

    def __init__(self, optimizer, iters: int, lr_min: float, stop_at=None):
        self.optimizer, self.iters, self.lr_min, self.stop_at = optimizer, iters, lr_min, stop_at
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iters, eta_min=lr_min)
        self.end = self._end(iters)

    def _end(self, iters: int) -> int:
        return min(iters, self.stop_at) if self.stop_at is not None else iters

    def begin_step(self, it: int) -> bool:
        return True

    def advance(self) -> None:
        self.scheduler.step()

    def end_step(self, it: int, done: int, seconds: float):
        return None

    def fixed(self) -> bool:
        return True

    def room_to_validate(self) -> bool:
        return True

    def log_fields(self) -> dict:
        return {}

    def summary(self) -> dict:
        return {"planned_iterations": self.iters, "schedule": self.description}

    def state_dict(self) -> dict:
        return {"kind": "cosine"}

    def load(self, state: dict) -> None:
        """Continue from a state.pt (the torch scheduler's state, and this schedule's own)."""
        self.scheduler.load_state_dict(state["scheduler"])


class FittedCosine(Cosine):
    """--minutes with --schedule iters: no length (and nothing to save) until the steps after a warm-up have
    been timed; then `fit` sets the cosine's length so that the run ends inside its budget."""
    WARM_STEPS = 2

    def __init__(self, optimizer, cfg: TrainConfig, dist, costs, t_start: float):
        super().__init__(optimizer, cfg.iters, cfg.lr_min, cfg.stop_at)
        self.cfg, self.dist, self.costs, self.t_start = cfg, dist, costs, t_start
        self.end, self.measured = NO_END, False
        self.warm_s = min(60.0, max(2.0, 0.05 * cfg.minutes * 60))
        self.t_warm = None

    def fixed(self) -> bool:
        return self.measured

    def end_step(self, it: int, done: int, seconds: float):
        """Time the steps after the warm-up (on CUDA after a synchronize, so that the clock sees the GPU's work,
        not just the launches); fit once enough time has passed. Returns the `schedule` log record then."""
        if self.measured:
            return None
        if self.dist.device.type == "cuda":
            torch.cuda.synchronize(self.dist.device)
        if done == self.WARM_STEPS:
            self.t_warm = time.time()
        elif self.t_warm is not None and done >= self.WARM_STEPS + 3 and time.time() - self.t_warm >= self.warm_s:
            return self.fit(it, (time.time() - self.t_warm) / (done - self.WARM_STEPS))
        return None

    def fit(self, it: int, step_s: float) -> dict:
        """Fix the length so that the run ends inside its budget at step_s seconds a step, leaving room for the
        periodic and final validations and the last save; restart the cosine at the new length and replay it
        to iteration `it`. The ranks agree on the shortest length."""
        cfg, val_s = self.cfg, self.costs.val_s
        left = cfg.minutes * 60 - (time.time() - self.t_start) - val_s - 2.0
        per_step = step_s + (val_s / cfg.val_every if cfg.val_every else 0.0)
        self._set_length(self.dist.agree_min(it + max(0, int(left / per_step))))
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = cfg.lr
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.iters,
                                                                    eta_min=cfg.lr_min)
        for _ in range(it):
            self.scheduler.step()
        return {"event": "schedule", "iter": it, "iters": self.iters, "step_s": round(step_s, 4),
                "budget_s": cfg.minutes * 60}

    def _set_length(self, iters: int) -> None:
        self.iters, self.end, self.measured = iters, self._end(iters), True

    def state_dict(self) -> dict:
        return {"kind": "fitted", "iters": self.iters} if self.measured else {"kind": "cosine"}

    def load(self, state: dict) -> None:
        """A saved fitted run keeps the length it measured: state.pt's `schedule`, or in a run folder from before
        it existed, the `iters` of its saved config (the trainer used to write the fitted length there)."""
        own, saved = state.get("schedule"), state.get("config", {})
        if own is not None and own.get("kind") == "fitted":
            self._set_length(int(own["iters"]))
        elif own is None and saved.get("minutes") is not None:
            self._set_length(int(saved["iters"]))
        self.scheduler.T_max = self.iters
        super().load(state)


class WallClock(Cosine):
    """--schedule time: every step's lr from the elapsed fraction of the budget (`WarmupCosine`), decided on rank
    0's clock for every rank; the run ends after the step that leaves no room for another before the reserve
    (one validation, one save and a second of slack), or at the deadline."""
    timed = True
    description = "linear warm-up, then cosine over the elapsed fraction of the time budget"

    def __init__(self, optimizer, cfg: TrainConfig, dist, costs, clock):
        super().__init__(optimizer, cfg.iters, cfg.lr_min)      # not stepped; kept for state.pt's `scheduler`
        self.dist, self.costs, self.clock = dist, costs, clock
        self.budget_s, self.curve = cfg.minutes * 60, WarmupCosine(cfg.lr, cfg.lr_min)
        self.end = cfg.stop_at if cfg.stop_at is not None else NO_END
        self.fraction = 0.0           # the elapsed fraction of the last step, never decreasing
        # the typical step duration: the median of the recent steps, so that one step that spanned a SIGSTOP
        # pause (the relay is paused around benchmarks) is not taken for the step rate and does not end the
        # run at once; the pause itself still counts in the wall-clock budget
        self.recent, self.step_s = collections.deque(maxlen=16), 0.0

    def reserve_s(self) -> float:
        """What a time-scheduled run keeps for its end: one validation, one save and a second of slack."""
        return self.costs.val_s + self.costs.save_s + 1.0

    def begin_step(self, it: int) -> bool:
        """Set the lr of the step about to run: that of the fraction reached at its end; the last step (after
        which another would not end before the reserve) runs at the floor and becomes the end. False: the
        deadline has passed already."""
        end = self.budget_s - self.reserve_s()
        now = self.clock()
        last = now + 2 * self.step_s >= end
        # never back down the schedule: a step faster than the one before, or a re-measured (smaller) reserve,
        # would otherwise move the fraction, and so the lr, backwards for a step
        self.fraction = 1.0 if last else max((now + self.step_s) / end, self.fraction)
        decided = self.dist.from_main(torch.tensor([self.fraction, float(last), float(now >= end)],
                                                   dtype=torch.float64, device=self.dist.device))
        for group in self.optimizer.param_groups:
            group["lr"] = self.curve.lr(float(decided[0]))
        if bool(decided[1]):
            self.end = it + 1
        return not bool(decided[2])

    def advance(self) -> None:
        pass

    def end_step(self, it: int, done: int, seconds: float):
        if done > 1:                                     # the first step pays for compiling
            self.recent.append(seconds)
            self.step_s = statistics.median(self.recent)
        return None

    def room_to_validate(self) -> bool:
        """Skip a periodic validation that would eat into the final one's reserve."""
        return self.clock() + self.costs.val_s + self.reserve_s() < self.budget_s

    def log_fields(self) -> dict:
        return {"elapsed_s": round(self.clock(), 2)}

    def summary(self) -> dict:
        return {"planned_iterations": None, "schedule": self.description}

    def state_dict(self) -> dict:
        return {"kind": "time", "fraction": self.fraction}

    def load(self, state: dict) -> None:
        super().load(state)
        self.fraction = float(state.get("schedule", {}).get("fraction", 0.0))


def make_schedule(cfg: TrainConfig, optimizer, dist, costs, clock, t_start: float):
    """The run's schedule: Cosine without --minutes, FittedCosine with --minutes and --schedule iters, WallClock
    with --schedule time."""
    if cfg.schedule == "time":
        return WallClock(optimizer, cfg, dist, costs, clock)
    if cfg.minutes is not None:
        return FittedCosine(optimizer, cfg, dist, costs, t_start)
    return Cosine(optimizer, cfg.iters, cfg.lr_min, cfg.stop_at)
