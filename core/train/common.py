"""Shared training machinery: recipe configs, EMA, resumable checkpoints and loss logs.

Every training command runs through `train_loop`: AdamW, gradient clipping, an EMA copy of the
weights (the "inverse" warm-up schedule of k-diffusion, SPEC §7.3), a JSON-lines loss log, and a
checkpoint (model, EMA, optimiser, step, RNG state) every `checkpoint_every` steps and at the end,
so an interrupted run continues where it stopped with `--resume`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tressel.errors import ConfigError
from tressel.progress import CancelFlag, ProgressFn, check_cancel, no_progress

log = logging.getLogger(__name__)


@dataclass
class OptimConfig:
    """One training stage's optimiser and schedule."""

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 50
    grad_clip: float = 1.0
    ema_power: float = 0.75
    ema_max: float = 0.9999
    checkpoint_every: int = 500
    log_every: int = 25

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> OptimConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        extra = set(data) - known
        if extra:
            raise ConfigError(f"unknown training options {sorted(extra)}; known: {sorted(known)}")
        if "betas" in data:
            data["betas"] = tuple(float(b) for b in data["betas"])
        return cls(**data)


def ema_decay(step: int, power: float, max_decay: float) -> float:
    """k-diffusion's "inverse" EMA warm-up: 1 - (1 + step)^-power, capped."""
    return min(max_decay, 1.0 - (1.0 + step) ** -power)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Average parameters; buffers are copied, not averaged (SPEC §7.3)."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def atomic_torch_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class TrainState:
    """What a finished (or interrupted) stage leaves behind."""

    model: nn.Module
    ema: nn.Module
    step: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_loop(
    name: str,
    model: nn.Module,
    loss_fn: Callable[[nn.Module, int, torch.Generator], dict[str, torch.Tensor]],
    optim: OptimConfig,
    out_dir: Path,
    seed: int,
    resume: bool = False,
    param_groups: list[dict[str, Any]] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag | None = None,
) -> TrainState:
    """Run `optim.steps` steps of `loss_fn(model, step, generator)["loss"]`.

    Files in `out_dir`: `checkpoint.pt` (resumable), `losses.jsonl` (one line per logged step).
    Every random draw of the loss function must come from the generator it is given, which is
    seeded from `seed` and saved in the checkpoint, so a resumed run continues the same stream.
    """
    progress = progress or no_progress
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "losses.jsonl"
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    opt = torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas,
                            weight_decay=optim.weight_decay)
    for group in opt.param_groups:
        group.setdefault("lr_scale", 1.0)
    start = 0
    elapsed = 0.0
    if resume and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        generator.set_state(state["generator"])
        start = int(state["step"])
        elapsed = float(state.get("seconds", 0.0))
        log.info("%s: resumed at step %d of %d", name, start, optim.steps)
    elif log_path.exists():
        log_path.unlink()

    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()

    def save(step: int) -> None:
        atomic_torch_save({"model": model.state_dict(), "ema": ema.state_dict(),
                           "opt": opt.state_dict(), "generator": generator.get_state(),
                           "step": step, "seconds": elapsed + time.perf_counter() - t0,
                           "stage": name}, ckpt_path)

    with open(log_path, "a", encoding="utf-8") as log_file:
        for step in range(start, optim.steps):
            check_cancel(cancel)
            warm = min(1.0, (step + 1) / max(optim.warmup_steps, 1))
            # Cosine decay to 10 % after warm-up keeps the last (EMA-averaged) steps quiet.
            frac = step / max(optim.steps - 1, 1)
            lr = optim.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            for group in opt.param_groups:
                group["lr"] = lr * group["lr_scale"]
            terms = loss_fn(model, step, generator)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise ConfigError(f"{name}: loss became {loss.item()} at step {step}; lower the "
                                  "learning rate in the recipe")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if optim.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
            opt.step()
            ema_update(ema, model, ema_decay(step, optim.ema_power, optim.ema_max))
            losses.append(float(loss.detach()))
            if step % optim.log_every == 0 or step == optim.steps - 1:
                row = {"step": step, "lr": lr, "seconds": round(elapsed + time.perf_counter()
                                                                 - t0, 2)}
                row.update({k: round(float(v.detach()), 6) for k, v in terms.items()})
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
                log.debug("%s %s", name, row)
            progress(name, step + 1, optim.steps)
            if (step + 1) % optim.checkpoint_every == 0 and step + 1 < optim.steps:
                save(step + 1)
    save(optim.steps)
    model.eval()
    return TrainState(model, ema, optim.steps, losses, elapsed + time.perf_counter() - t0)


def read_losses(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / "losses.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def batches(count: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless shuffled index batches drawn from `generator`."""
    while True:
        order = torch.randperm(count, generator=generator)
        for start in range(0, count - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def sample_indices(count: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """One random batch of indices (with replacement across batches, not within)."""
    if count >= batch_size:
        return torch.randperm(count, generator=generator)[:batch_size]
    return torch.randint(count, (batch_size,), generator=generator)
