"""The training loop. Read it top to bottom: set-up, then per step the D step(s), the G step, the
regularizers folded into each, logging, sample grids and checkpoints.

Losses stay on the device between log steps (no ``.item()`` per step), so the GPU is never
synchronised with the host except when a line is logged.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancore.checkpoint import list_checkpoints, load_checkpoint, read_json, save_checkpoint
from gancore.components import Losses, Step
from gancore.errors import CheckpointError, ConfigError
from gancore.images import save_grid
from gancore.plugins import PluginManager, get_manager
from gancore.resolve import resolve_config, validate
from gancore.runs import is_run_dir, new_run_dir, write_run_files
from gancore.state import TrainState, build_state, load_data


def prepare(plugin: str, *layers: dict[str, Any], out: str | None = None,
            mgr: PluginManager | None = None) -> TrainState:
    """Resolve the config, load the data, build the networks and create the run folder."""
    mgr = mgr or get_manager()
    cfg = resolve_config(mgr, plugin, *layers)
    data = load_data(mgr, cfg, train=True)
    state = build_state(mgr, cfg, data=data)
    state.run_dir = new_run_dir(plugin, out)  # last: a bad config or missing data leaves no folder behind
    write_run_files(state)
    return state


def prepare_resume(run: str | Path, *, steps: int | None = None, checkpoint: str | None = None,
                   device: str | None = None, mgr: PluginManager | None = None) -> TrainState:
    """Rebuild a run and restore its latest (or the named) checkpoint: weights, optimizers, RNGs, step."""
    from gancore.runs import pick_checkpoint

    path = Path(run)
    if not is_run_dir(path):
        raise CheckpointError(f"{str(path)!r} is not a gancore run folder (no config.json and run.json)")
    mgr = mgr or get_manager()
    cfg = read_json(path / "config.json", "run config")
    if steps is not None:
        cfg["train"]["steps"] = steps
    if device:
        cfg["device"] = device
    cfg = validate(mgr, cfg)
    ckpt = pick_checkpoint(path, checkpoint)
    data = load_data(mgr, cfg, train=True)
    state = build_state(mgr, cfg, data=data)
    state.run_dir = path
    load_checkpoint(state, ckpt)
    if state.step >= cfg["train"]["steps"]:
        raise ConfigError(f"run {path} already reached step {state.step} of {cfg['train']['steps']}; "
                          f"pass --steps N (N > {state.step}) to train further")
    _truncate_log(path / "metrics.jsonl", state.step)
    if steps is not None:
        (path / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return state


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from, so the log reads as one run."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    path.write_text("".join(k + "\n" for k in keep))


def _total(terms: Losses) -> Tensor:
    return torch.stack([t for t in terms.values()]).sum() if len(terms) > 1 else next(iter(terms.values()))


class Progress:
    """A tqdm bar on a terminal; plain log lines otherwise (CI logs, files)."""

    def __init__(self, start: int, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.last = start

    def update(self, step: int, line: dict[str, float], left_s: float) -> None:
        if not self.enabled:
            return
        losses = {k: v for k, v in line.items() if k not in ("step", "time_s", "images_per_s")}
        if self.bar is not None:
            self.bar.update(step - self.last)
            self.bar.set_postfix({**{k: f"{v:.3f}" for k, v in losses.items()},
                                  "img/s": f"{line['images_per_s']:.0f}"}, refresh=False)
        else:
            parts = " ".join(f"{k} {v:.3f}" for k, v in losses.items())
            print(f"step {step}/{self.total} | {parts} | {line['images_per_s']:.0f} img/s | "
                  f"{_fmt_time(left_s)} left", file=sys.stderr, flush=True)
        self.last = step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def sample_grid(state: TrainState, path: Path) -> Path | None:
    """G(fixed latent) as a PNG grid (image data only)."""
    if state.data_info.get("kind") != "image":
        return None
    g = state.nets.generator
    was_training = g.training
    g.eval()
    with torch.no_grad():
        x = g(**state.fixed_latent).float().cpu().numpy()
    g.train(was_training)
    return save_grid(x, path, tuple(state.data_info["value_range"]))


def train(state: TrainState, *, progress: bool = True) -> TrainState:
    """Train ``state`` from its current step to ``train.steps``."""
    # ---------------------------------------------------------------- set-up
    cfg = state.config["train"]
    hook = state.manager.hook
    nets, loss, sampler = state.nets, state.loss, state.sampler
    total_steps, batch_size, k = cfg["steps"], cfg["batch_size"], cfg["d_steps"]
    run_dir = state.run_dir
    assert run_dir is not None and state.data is not None
    for m in nets.named().values():
        m.train()
    # In the G step, D's own weights need no gradient: freezing them skips their weight-gradient work.
    g_params = {id(p) for p in state.opt_g.param_groups[0]["params"]}
    d_only = [p for p in nets.discriminator.parameters() if id(p) not in g_params and p.requires_grad]
    d_reg = [r for r in state.regularizers.values() if "discriminator" in r.phases]
    g_reg = [r for r in state.regularizers.values() if "generator" in r.phases]
    schedulable = [c for c in state.components() if hasattr(c, "schedule")]
    log_path = run_dir / "metrics.jsonl"
    sums: dict[str, Tensor] = {}
    n_logged = 0
    hook.gan_train_start(state=state)
    bar = Progress(state.step, total_steps, progress)
    t_start, step_start = time.perf_counter(), state.step
    t_last, step_last = t_start, state.step

    while state.step < total_steps:
        step = state.step
        for c in schedulable:  # e.g. an annealed Gumbel-softmax temperature
            c.schedule(step, total_steps)

        # ------------------------------------------------------------ D step(s)
        for _ in range(k):
            batch = state.next_batch(batch_size)
            latent = sampler.sample(batch_size, state.latent_gen, state.device)
            s = Step("discriminator", batch, latent, nets, step, total_steps)
            terms = loss.discriminator_loss(s)
            for r in d_reg:
                terms.update(r(s))
            state.opt_d.zero_grad(set_to_none=True)
            _total(terms).backward()
            state.opt_d.step()

        # ------------------------------------------------------------ G step
        latent = sampler.sample(batch_size, state.latent_gen, state.device)
        s = Step("generator", batch, latent, nets, step, total_steps)
        for p in d_only:
            p.requires_grad_(False)
        g_terms = loss.generator_loss(s)
        for r in g_reg:
            g_terms.update(r(s))
        state.opt_g.zero_grad(set_to_none=True)
        _total(g_terms).backward()
        state.opt_g.step()
        for p in d_only:
            p.requires_grad_(True)
        state.step += 1

        # ------------------------------------------------------------ log (the only host sync)
        for name, v in (terms | g_terms).items():
            v = v.detach()
            sums[name] = sums[name] + v if name in sums else v.clone()
        n_logged += 1
        last = state.step == total_steps
        if state.step % cfg["log_every"] == 0 or last:
            now = time.perf_counter()
            line: dict[str, Any] = {"step": state.step}
            line.update({n: float(v) / n_logged for n, v in sums.items()})
            line["images_per_s"] = (state.step - step_last) * batch_size * k / max(now - t_last, 1e-9)
            line["time_s"] = now - t_start
            with open(log_path, "a") as f:
                f.write(json.dumps(line) + "\n")
            rate = (state.step - step_start) / max(now - t_start, 1e-9)
            bar.update(state.step, line, (total_steps - state.step) / max(rate, 1e-9))
            hook.gan_train_log(state=state, metrics=line)
            sums, n_logged, t_last, step_last = {}, 0, now, state.step

        # ------------------------------------------------------------ sample grid
        if state.step % cfg["sample_every"] == 0 or last:
            sample_grid(state, run_dir / "samples" / f"step-{state.step:07d}.png")

        # ------------------------------------------------------------ checkpoint
        if state.step % cfg["checkpoint_every"] == 0 or last:
            path = save_checkpoint(state, run_dir / "checkpoints", cfg["keep_checkpoints"])
            hook.gan_train_checkpoint(state=state, path=path)

    bar.close()
    hook.gan_train_end(state=state)
    return state


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir / "checkpoints")
    return ckpts[-1] if ckpts else None
