"""One recipe per task: how to continue training it and what it must reach (like NAFNet's options files).

Each task's recipe is `drcnet/recipes/<task>.toml`: a `[train]` table of `TrainConfig` fields (the trainer's
`--recipe TASK` takes them as defaults; command-line flags still win) and a list of `[[targets]]`, each "mean
test-set PSNR of DRCNet at least `over`'s + `margin` in `setting`". The trainer, the relay, the GPU burst and
the ablation read these files; no other place repeats the numbers.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from drcnet.core.paths import PACKAGE

RECIPES = PACKAGE / "recipes"         # drcnet/recipes/<task>.toml (package data)


@dataclass(frozen=True)
class Target:
    setting: str          # an evaluation setting, e.g. "sigma25" or "kernel13_seed101"
    over: str             # the method it is measured against, e.g. "input" or "nlm"
    margin: float         # dB DRCNet must be ahead of `over`

    def gap(self, mean: dict) -> float:
        """dB by which the `drcnet` row of an evaluation's `mean` table beats this target (negative: short)."""
        row = mean[self.setting]
        return row["drcnet"]["psnr"] - (row[self.over]["psnr"] + self.margin)

    def describe(self) -> str:
        return f"{self.setting}: {self.over} + {self.margin:g} dB"


@dataclass(frozen=True)
class Recipe:
    task: str
    train: dict = field(default_factory=dict)     # TrainConfig field -> value
    targets: tuple[Target, ...] = ()

    def train_args(self) -> list[str]:
        """The [train] table as `python -m drcnet.train` flags (for subprocesses and logs)."""
        args = ["--task", self.task]
        for name, value in self.train.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag if value else "--no-" + name.replace("_", "-"))
            else:
                args += [flag, str(value)]
        return args

    def worst_gap(self, results: dict) -> float:
        """The smallest target gap of an evaluation (`checkpoints/<task>.test.json`); negative means missed."""
        return min(t.gap(results["mean"]) for t in self.targets)


def load_recipe(task: str) -> Recipe:
    path = RECIPES / f"{task}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.toml")))
        raise ValueError(f"no recipe for task {task!r} (known: {known})")
    raw = tomllib.loads(path.read_text())
    if raw.get("task") != task:
        raise ValueError(f"{path} says task = {raw.get('task')!r}, expected {task!r}")
    targets = tuple(Target(t["setting"], t["over"], float(t["margin"])) for t in raw.get("targets", []))
    return Recipe(task, dict(raw.get("train", {})), targets)

