"""Where a run stands and its folder: the RNG states, `RunState` (iteration, best and last validation, elapsed
seconds, cumulative lr, measured costs), state.pt (saved atomically, loaded with the resume checks), --init, and
`RunFiles` (config.json, log.jsonl, leftovers of a killed run)."""
from __future__ import annotations

import json
import math
import random
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from drcnet.core.files import append_jsonl, atomic_torch_save, trim_jsonl
from drcnet.train.config import TrainConfig

# the settings a resume must not change (and, on the time schedule, its budget and floor)
CHECKED = ("preset", "task", "iters", "batch", "seed", "lr", "loss", "alpha", "fft_weight", "stage1_weight", "patch",
           "schedule", "ema", "clean_share", "clean_textures", "clean_stripes")
TIME_CHECKED = ("minutes", "lr_min")


def rng_state(device) -> dict:
    keys, pos, has_gauss, gauss = np.random.get_state()[1:]
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_init_weights(model: nn.Module, path) -> None:
    """--init: copy a checkpoint's weights into the freshly built model (a warm start: the optimizer and the
    schedule start afresh). The architecture must match; knobs that own no weights (t, delta) may differ."""
    from drcnet.model.checkpoint import check_state_dict, load_checkpoint

    weights = load_checkpoint(path)[0].state_dict()
    check_state_dict(model, weights, path)
    model.load_state_dict(weights)


@dataclass
class RunState:
    """Where the run stands; what state.pt keeps besides the model, the optimizer, the schedule and the RNGs."""
    it: int = 0
    start: int = 0                # the iteration this session started at
    best_psnr: float = -math.inf
    last_val: float | None = None
    wall_before: float = 0.0      # seconds trained by the earlier sessions
    cum_lr: float = 0.0           # the sum of the learning rates of all steps so far (carried across resumes)
    weights: str = "raw"          # which weights scored better at the last validation: "raw" or "ema"
    val_s: float = 0.0            # measured seconds of one validation and one save (a budget's reserve)
    save_s: float = 2.0


def save_state(path: Path, state: RunState, cfg: TrainConfig, model, optimizer, schedule, ema, device,
               wall_time_s: float) -> None:
    """state.pt, atomically. `config` is the configuration as given; the schedule's own state (a fitted length,
    the time schedule's fraction) is under `schedule`."""
    atomic_torch_save({"iter": state.it, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": schedule.scheduler.state_dict(), "schedule": schedule.state_dict(),
                       "rng": rng_state(device), "best_psnr": state.best_psnr, "last_val": state.last_val,
                       "wall_time_s": wall_time_s, "cum_lr": state.cum_lr, "weights": state.weights,
                       "ema": ema.model.state_dict() if ema is not None else None,
                       "val_s": state.val_s, "save_s": state.save_s, "config": asdict(cfg)}, path)


def check_resume(path: Path, saved_state: dict, cfg: TrainConfig) -> None:
    """Refuse a resume that changes a setting of the run. A fitted --minutes run from before state.pt had a
    `schedule` entry saved its fitted length as its config's `iters`: that one is not compared."""
    saved = saved_state.get("config", {})
    checked = CHECKED + (TIME_CHECKED if cfg.schedule == "time" else ())
    if ("schedule" not in saved_state and cfg.minutes is not None and saved.get("minutes") is not None
            and cfg.schedule == "iters"):
        checked = tuple(k for k in checked if k != "iters")
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    for key in checked:
        # a state saved before a setting existed ran without it: at its default (every lever's default is off)
        started = saved.get(key, defaults.get(key, MISSING))
        if started is not MISSING and started != getattr(cfg, key):
            older = "" if key in saved else " (the default: the state predates the setting)"
            raise ValueError(f"{path}: the run was started with {key}={started!r}{older}, not "
                             f"{getattr(cfg, key)!r}; resume with the same value or use a new --out")


def load_state(path: Path, cfg: TrainConfig, model, optimizer, schedule) -> tuple[RunState, dict | None]:
    """Continue from state.pt (refusing a changed setting): loads the model, the optimizer, the schedule and the
    RNG states; returns where the run stood and the saved EMA weights (or None)."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    check_resume(path, saved, cfg)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load(saved)
    set_rng_state(saved["rng"])
    it, default = int(saved["iter"]), RunState()
    state = RunState(it=it, start=it, best_psnr=float(saved.get("best_psnr", -math.inf)),
                     last_val=saved.get("last_val"), wall_before=float(saved.get("wall_time_s", 0.0)),
                     cum_lr=float(saved.get("cum_lr", 0.0)), weights=saved.get("weights", "raw"),
                     val_s=float(saved.get("val_s", default.val_s)), save_s=float(saved.get("save_s", default.save_s)))
    return state, saved.get("ema")


class RunFiles:
    """The run folder: state.pt, log.jsonl, config.json and the checkpoints beside them."""

    def __init__(self, cfg: TrainConfig):
        self.out = Path(cfg.out)
        self.state, self.log_path = self.out / "state.pt", self.out / "log.jsonl"
        self.resuming = cfg.resume and self.state.exists()
        if self.state.exists() and not cfg.resume:
            raise FileExistsError(f"{self.state} exists: pass --resume to continue that run, or choose "
                                  f"another --out")

    def start(self, cfg: TrainConfig, start: int) -> None:
        """A session begins (rank 0): drop half-written files of a killed run, write config.json (the
        configuration as given), and cut the log back to the saved iteration."""
        self.out.mkdir(parents=True, exist_ok=True)
        for leftover in self.out.glob("*.tmp"):
            leftover.unlink(missing_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        if start:
            trim_jsonl(self.log_path, start)

    def log(self, record: dict) -> None:
        append_jsonl(self.log_path, record)
