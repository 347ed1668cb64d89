"""The step/validate/save loop: `train(cfg)` and `TrainingRun`, one training session of a run directory."""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from pathlib import Path

import torch
import torch.nn as nn

from drcnet.core.device import describe_device
from drcnet.core.paths import checkpoint_file
from drcnet.model.checkpoint import save_checkpoint
from drcnet.model.network import create_model
from drcnet.train.batches import build_val_set, input_psnr, make_loader
from drcnet.train.config import TrainConfig
from drcnet.train.dist import Dist, setup_torch
from drcnet.train.schedule import make_schedule
from drcnet.train.state import RunFiles, RunState, load_init_weights, load_state, save_state
from drcnet.core.inductor import EagerFallback
from drcnet.train.step import EMA, StepMeter, compile_pays, score


def train(cfg: TrainConfig) -> dict:
    """Train (or continue training) as configured. Returns a summary dict (on every rank; rank 0 wrote files)."""
    dist = Dist(cfg)
    try:
        run = TrainingRun(cfg, dist)
        return run.fit()
    finally:
        dist.close()


class TrainingRun:
    """One training session of a run directory: the model, its optimizer and schedule (drcnet/train/schedule.py),
    where the run stands (`state`, a RunState) and what it does: validate, save, summarise. `fit()` is the
    training loop; the configuration is never changed."""

    def __init__(self, cfg: TrainConfig, dist: Dist):
        self.t_start = time.time()
        self.cfg, self.dist, self.device = cfg, dist, dist.device
        self.precision, self.memory_format = setup_torch(cfg, dist)
        self.files = RunFiles(cfg)
        self.out, self.state_path = self.files.out, self.files.state
        self.model = self._build_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.state = RunState()
        self.schedule = make_schedule(cfg, self.optimizer, dist, self.state, self.clock, self.t_start)
        from drcnet.train.losses import make_loss

        self.criterion = make_loss(cfg.loss, alpha=cfg.alpha, vgg_weights=cfg.vgg_weights,
                                   fft_weight=cfg.fft_weight).to(self.device)
        saved_ema = self._resume() if self.files.resuming else None
        self.ema = EMA(self.model, cfg.ema) if cfg.ema > 0 else None
        if self.ema is not None and saved_ema is not None:
            self.ema.model.load_state_dict(saved_ema)
        if self.ema is None:
            self.state.weights = "raw"
        self.loader, self.data_desc = make_loader(cfg, dist, self.state.start, self.schedule.end)
        self.val, self.val_desc = build_val_set(cfg) if dist.main else (None, "")
        self.val_input_psnr = input_psnr(self.val)
        self.compiled = compile_pays(cfg, self.device, self.schedule.end - self.state.start)
        self._start_log()
        self.forward = self._wrap()
        self.hardware = describe_device(self.device, dist.world)
        self.wait_share = None        # share of step time spent waiting for data (at the last log line)

    # ------------------------------------------------------------------------------------------ set-up parts

    @property
    def it(self) -> int:
        return self.state.it

    @property
    def start(self) -> int:
        return self.state.start

    def _build_model(self) -> nn.Module:
        """The configured network (t, variant and mask quantile overridden), warm-started from --init on a fresh
        run."""
        cfg = self.cfg
        overrides = {k: getattr(cfg, k) for k in ("t", "variant", "mask_quantile") if getattr(cfg, k) is not None}
        model = create_model(cfg.preset, **overrides)
        if cfg.init and not self.files.resuming:
            load_init_weights(model, cfg.init)
        return model.to(device=self.device, memory_format=self.memory_format)

    def _resume(self):
        """Load state.pt into the model, the optimizer and the schedule; returns the saved EMA weights (or None).
        The schedule holds `self.state` as its costs, so the loaded values are copied into that object."""
        loaded, saved_ema = load_state(self.state_path, self.cfg, self.model, self.optimizer, self.schedule)
        self.state.__dict__.update(loaded.__dict__)
        return saved_ema

    def _wrap(self):
        """DDP over several processes; only the forward is compiled (backward through AOTAutograd). The state
        dicts come from `model`, so checkpoints never carry torch.compile's `_orig_mod.` prefix."""
        net = self.model
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.net = net
        return EagerFallback(net, self._compile_failed) if self.compiled else net

    def _start_log(self) -> None:
        if not self.dist.main:
            return
        self.files.start(self.cfg, self.start)
        self.log({"event": "resume" if self.start else "start", "iter": self.start, "time": time.time(),
                  "world": self.dist.world, "precision": self.precision, "device": str(self.device),
                  "compile": self.compiled, "schedule": self.cfg.schedule, "ema": self.cfg.ema})

    def _compile_failed(self, error: Exception) -> None:
        print(f"torch.compile failed, training eagerly: {type(error).__name__}: {error}".splitlines()[0],
              file=sys.stderr)
        if self.dist.main:
            self.log({"event": "compile_failed", "iter": self.it, "error": str(error)[:500]})

    # ------------------------------------------------------------------------------------------ bookkeeping

    def amp(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def clock(self) -> float:
        """Seconds this run has trained, over all its sessions (the time schedule's clock)."""
        return self.state.wall_before + time.time() - self.t_start

    def log(self, record: dict) -> None:
        self.files.log(record)

    def summary(self) -> dict:
        cfg, s = self.cfg, self.state
        return {"task": cfg.task, "preset": cfg.preset, "iterations": s.it,
                "planned_iterations": self.schedule.summary()["planned_iterations"],
                "batch": cfg.batch, "patch": cfg.patch, "loss": cfg.loss, "alpha": cfg.alpha,
                "fft_weight": cfg.fft_weight, "stage1_weight": cfg.stage1_weight, "clean_share": cfg.clean_share,
                "clean_textures": cfg.clean_textures, "clean_stripes": cfg.clean_stripes, "lr": cfg.lr,
                "lr_min": cfg.lr_min, "optimizer": "Adam", "schedule": self.schedule.summary()["schedule"],
                "betas": [cfg.beta1, cfg.beta2], "clip": cfg.clip, "augment": cfg.augment, "seed": cfg.seed,
                "data": self.data_desc, "validation": self.val_desc, "hardware": self.hardware,
                "world_size": self.dist.world, "precision": self.precision, "wall_time_s": round(self.clock(), 1),
                "cum_lr": s.cum_lr, "command": cfg.command or " ".join(sys.argv), "val_psnr": s.last_val,
                "weights": s.weights, "ema": cfg.ema,
                "compile": self.compiled and self.forward.compiled is not None,
                "init": Path(cfg.init).name if cfg.init else None, "minutes": cfg.minutes,
                "data_wait_share": round(self.wait_share, 4) if self.wait_share is not None else None}

    def save(self, best: bool = False) -> None:
        """last.safetensors (and best.safetensors) with the weights that scored better at the last validation,
        labelled "raw" (trained) or "ema" (averaged); then state.pt, atomically. A fitted --minutes run has no
        schedule to save before its warm-up has measured the step rate."""
        if not self.dist.main or not self.schedule.fixed():
            return
        t0, s = time.time(), self.state
        metrics = {"val_psnr": s.last_val, "val_set": self.val_desc} if s.last_val is not None else {}
        chosen = self.ema.model if s.weights == "ema" else self.model
        for name in ("last",) + (("best",) if best else ()):
            save_checkpoint(checkpoint_file(self.out, name), chosen, task=self.cfg.task, preset=self.cfg.preset,
                            training=self.summary(), metrics=metrics, extra={"weights": s.weights})
        save_state(self.state_path, s, self.cfg, self.model, self.optimizer, self.schedule, self.ema, self.device,
                   self.clock())
        s.save_s = time.time() - t0

    def validate(self) -> bool:
        """Score the raw and the EMA weights (the DFR mask statistics ride on the raw forward) and log both;
        True if the better of them beat the best so far."""
        if self.val is None:
            return False
        s = self.state
        raw, averaged, masks = score(self.model, self.ema, self.val, self.device, self.amp)
        s.weights = "ema" if averaged is not None and averaged > raw else "raw"
        s.last_val = averaged if s.weights == "ema" else raw
        improved = s.last_val > s.best_psnr
        s.best_psnr = max(s.best_psnr, s.last_val)
        self.log({"iter": s.it, "val_psnr": round(raw, 4),
                  "val_psnr_ema": None if averaged is None else round(averaged, 4), "weights": s.weights,
                  "best_psnr": round(s.best_psnr, 4), "val_psnr_input": round(self.val_input_psnr, 4),
                  "cum_lr": s.cum_lr})
        self.log({"event": "mask", "iter": s.it, "cum_lr": s.cum_lr, "blocks": masks})
        return improved

    # ------------------------------------------------------------------------------------------ training

    def step(self, degraded: torch.Tensor, clean: torch.Tensor):
        """One optimizer step (and its EMA update); returns (loss, out2)."""
        cfg, model = self.cfg, self.model
        with self.amp():
            out1, out2 = self.forward(degraded)
            loss = self.criterion(out2, clean, degraded)
            if cfg.stage1_weight:           # the paper: both stages' losses summed (stage1_weight 1)
                loss = loss + cfg.stage1_weight * self.criterion(out1, clean, degraded)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        self.state.cum_lr += self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(model)
        self.schedule.advance()
        self.state.it += 1
        return loss, out2

    def fit(self) -> dict:
        """Validate a warm start, train to the end of the schedule (or the deadline, or --stop-at), validate
        and save; Ctrl-C saves the last whole step. Returns the summary, the history of log lines, best PSNR."""
        cfg, dist, s = self.cfg, self.dist, self.state
        # A warm start is validated before its first step: the card's "before" number, and for --minutes the
        # measured cost of a validation, which the budget must leave room for.
        if dist.main and s.start == 0 and (cfg.init or cfg.minutes):
            t0 = time.time()
            self.validate()
            s.val_s = time.time() - t0
            if self.schedule.timed:
                self.save()      # a time schedule's end is fixed from the start: measure the save it reserves
        s.val_s = float(dist.from_main(torch.tensor([s.val_s], device=self.device)).item())
        history = self._interruptible_loop()
        improved = self.validate() if dist.main and s.it > s.start else False
        self.save(best=improved or (dist.main and not (checkpoint_file(self.out, "best")).exists()))
        if dist.world > 1:
            torch.distributed.barrier()
        result = self.summary()
        result.update({"out": str(self.out), "best_psnr": s.best_psnr if math.isfinite(s.best_psnr) else None,
                       "history": history, "start_iter": s.start})
        return result

    def _interruptible_loop(self) -> list[dict]:
        """`_loop` with a progress bar and Ctrl-C landing between steps: a SIGINT inside optimizer.step() would
        otherwise save weights one step ahead of the saved iteration (and of Adam's moments). A second Ctrl-C
        stops at once, without a save."""
        cfg, dist = self.cfg, self.dist
        self.pbar, self.postfix = None, {}
        if dist.main and cfg.progress:
            from tqdm import tqdm

            self.pbar = tqdm(total=None if self.schedule.timed else self.schedule.end, initial=self.start,
                             dynamic_ncols=True, desc=f"{cfg.task}-{cfg.preset}")
        self.sigints = []
        old_sigint = None
        if threading.current_thread() is threading.main_thread():
            old_sigint = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            return self._loop()
        except KeyboardInterrupt:
            if dist.main and self.it > self.start and len(self.sigints) <= 1:
                self.save()
                print(f"\ninterrupted: state saved at iteration {self.it} in {self.state_path}; continue with "
                      f"--resume", file=sys.stderr)
            raise
        finally:
            if old_sigint is not None:
                signal.signal(signal.SIGINT, old_sigint)
            if self.pbar is not None:
                self.pbar.close()

    def _on_sigint(self, signum, frame):
        self.sigints.append(signum)
        if len(self.sigints) > 1:
            raise KeyboardInterrupt

    def _loop(self) -> list[dict]:
        schedule = self.schedule
        self.model.train()
        history, meter = [], StepMeter(self.device)
        batches = iter(self.loader)
        while self.it < schedule.end:
            if self.sigints:
                raise KeyboardInterrupt
            t_step = time.time()
            if not schedule.begin_step(self.it) and self.it > self.start:
                break                     # past the deadline already (a long validation or save)
            batch = self._next_batch(batches, meter)
            if batch is None:
                break
            loss, out2 = self.step(*batch)
            seconds = time.time() - t_step
            self._after_step(loss, out2, batch[1], meter, history)
            if self._maybe_refit(seconds):
                break
            self._maybe_validate_and_save()
        return history

    def _next_batch(self, batches, meter: StepMeter):
        """The next (degraded, clean) pair on the device (None when the loader is done); the wait is metered."""
        t_wait = time.perf_counter()
        try:
            degraded, clean = next(batches)
        except StopIteration:
            return None
        degraded = degraded.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        clean = clean.to(self.device, non_blocking=True)
        meter.wait += time.perf_counter() - t_wait
        return degraded, clean

    def _after_step(self, loss, out2, clean, meter: StepMeter, history: list) -> None:
        meter.add(loss, out2, clean)
        if self.it % self.cfg.log_every == 0 or self.it == self.schedule.end:
            history.append(self._log_line(meter))
        if self.pbar is not None:
            self.pbar.update(1)

    def _maybe_refit(self, seconds: float) -> bool:
        """Hand the step to the schedule; when it has just fixed its length, log that and update the progress
        bar. True when the run has reached its (new) end."""
        event = self.schedule.end_step(self.it, self.it - self.start, seconds)
        if event is None:
            return False
        if self.dist.main:
            self.log(event)
        if self.pbar is not None:
            self.pbar.total = self.schedule.end
            self.pbar.refresh()
        return self.it >= self.schedule.end

    def _maybe_validate_and_save(self) -> None:
        cfg, s, end = self.cfg, self.state, self.schedule.end
        improved = False
        if (self.dist.main and cfg.val_every and s.it % cfg.val_every == 0 and s.it != end
                and self.schedule.room_to_validate()):
            t0 = time.time()
            improved = self.validate()
            if self.schedule.timed:
                s.val_s = max(s.val_s, time.time() - t0)
            if self.pbar is not None and s.last_val is not None:
                self.postfix["val"] = f"{s.last_val:.2f}"
                self.pbar.set_postfix(self.postfix)
        if (s.it % cfg.save_every == 0 or improved) and s.it != end:
            self.save(best=improved)

    def _log_line(self, meter: StepMeter) -> dict:
        """Average the steps since the last line over the ranks; rank 0 writes it. Raises on a non-finite loss."""
        loss, train_psnr = self.dist.all_mean(meter.mean()).tolist()
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at iteration {self.it}; the last saved state is in "
                                     f"{self.state_path} (try --clip 0.01 or a lower --lr)")
        dt = time.time() - meter.t_log
        rate = meter.n * self.cfg.batch / max(dt, 1e-9)
        self.wait_share = min(1.0, meter.wait / max(dt, 1e-9))
        lr = self.optimizer.param_groups[0]["lr"]
        record = {"iter": self.it, "loss": round(loss, 6), "psnr": round(train_psnr, 4), "lr": lr,
                  "cum_lr": self.state.cum_lr, "images_per_s": round(rate, 2), "data_wait": round(self.wait_share, 4),
                  **self.schedule.log_fields()}
        if self.dist.main:
            self.log(record)
            if self.pbar is not None:
                self.postfix.update(loss=f"{loss:.4f}", psnr=f"{train_psnr:.2f}", img_s=f"{rate:.1f}",
                                    lr=f"{lr:.2e}")
                self.pbar.set_postfix(self.postfix, refresh=False)
        meter.reset()
        return record
