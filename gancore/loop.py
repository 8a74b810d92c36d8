"""The training loop. Read it top to bottom: set-up, then per step the D step(s), the G step, the
regularizers folded into each, logging, sample grids and checkpoints.

Losses stay on the device between log steps (no ``.item()`` per step), so the GPU is never
synchronised with the host except when a line is logged.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancore import distributed
from gancore.averaging import averaged
from gancore.checkpoint import checkpoint_step, list_checkpoints, load_checkpoint, recover, save_checkpoint
from gancore.components import Losses, Step
from gancore.config import merge
from gancore.errors import (
    CheckpointError,
    ConfigError,
    GanError,
    PluginError,
    blamed,
    innermost,
    passes_through,
    path_arg,
)
from gancore.evaluate import applicable, evaluate
from gancore.fsutil import json_text, write_json_atomic, write_text_atomic
from gancore.health import DivergenceError, LossWindow, Problem, nonfinite_weights
from gancore.images import save_picture
from gancore.plugins import PluginManager, get_manager
from gancore.progress import Progress
from gancore.resolve import check_data_dir, resolve_config
from gancore.runs import check_run_dir, data_description, load_run_config, new_run_dir, pick_checkpoint, write_run_files
from gancore.sampling import eval_mode
from gancore.signals import Stopped
from gancore.state import TrainState, build_state, check_same_data, data_place, load_data, pick_device


def prepare(plugin: str, *layers: dict[str, Any], out: str | None = None,
            mgr: PluginManager | None = None) -> TrainState:
    """Resolve the config, load the data, build the networks and create the run folder."""
    if not isinstance(plugin, str):
        raise ConfigError(f"prepare() takes a recipe's name first, such as 'dcgan' (gan plugins lists them), got "
                          f"{type(plugin).__name__} {plugin!r}")
    if out is not None:
        path_arg(out, "out", ConfigError)  # the type alone: an empty --out has its own message
    mgr = mgr or get_manager()
    cfg = resolve_config(mgr, plugin, *layers)
    data = load_data(mgr, cfg, train=True)
    check_data_dir(cfg)
    state = build_state(mgr, cfg, data=data)
    world = state.world
    if world.main:
        state.run_dir = new_run_dir(plugin, out)  # last: a bad config or missing data leaves no folder behind
        write_run_files(state)
    state.run_dir = Path(distributed.broadcast_text(str(state.run_dir) if world.main else None, world,
                                                    state.device))
    return state


def check_prepare(plugin: str, *layers: dict[str, Any], out: str | None = None, processes: int = 1,
                  mgr: PluginManager | None = None) -> None:
    """Refuse what :func:`prepare` would refuse, here, on the CPU and without creating anything: for a launcher
    (``gan train --nproc N``) to check once, in one process, before it starts ``processes`` of them."""
    mgr = mgr or get_manager()
    cfg = resolve_config(mgr, plugin, *layers)
    if pick_device(cfg["device"]).type == "cuda" and processes > (gpus := torch.cuda.device_count()):
        raise ConfigError(f"{processes} processes need a GPU each, but there are {gpus}; use --nproc {gpus} or fewer")
    check_run_dir(out)
    distributed.shard_batch(cfg["train"]["batch_size"], distributed.World(size=processes))
    cpu = merge(cfg, {"device": "cpu"})  # the networks fit the data wherever they train; no GPU memory held here
    data = load_data(mgr, cpu, train=True)
    check_data_dir(cfg)
    build_state(mgr, cpu, data=data)


def check_prepare_resume(run: str | Path, *, steps: int | None = None, checkpoint: str | None = None,
                         device: str | None = None, on_nan: str | None = None, processes: int = 1,
                         mgr: PluginManager | None = None) -> None:
    """Refuse what :func:`prepare_resume` would refuse about the run folder, the checkpoint and the steps (see
    :func:`check_prepare`); like it, first completes a checkpoint rewrite a crash interrupted, and changes nothing
    else."""
    path = Path(run)
    cfg = load_run_config(path, mgr or get_manager(), device=device, steps=steps, on_nan=on_nan)
    recover(path / "checkpoints")
    distributed.shard_batch(cfg["train"]["batch_size"], distributed.World(size=processes))
    step = checkpoint_step(pick_checkpoint(path, checkpoint))
    if step >= cfg["train"]["steps"]:
        raise ConfigError(_reached(path, step, cfg["train"]["steps"]))


def _reached(path: Path, step: int, steps: int) -> str:
    return f"run {path} already reached step {step} of {steps}; pass --steps N (N > {step}) to train further"


def prepare_resume(run: str | Path, *, steps: int | None = None, checkpoint: str | None = None,
                   device: str | None = None, on_nan: str | None = None,
                   mgr: PluginManager | None = None) -> TrainState:
    """Rebuild a run and restore its latest (or the named) checkpoint: weights, optimizers, RNGs, step.
    ``steps`` and ``on_nan`` (``train.on_nan``, which changes nothing until a loss or weight goes non-finite)
    may be changed, and are saved in the run's config."""
    path = path_arg(run, "the run to resume", CheckpointError)
    mgr = mgr or get_manager()
    cfg = load_run_config(path, mgr, device=device, steps=steps, on_nan=on_nan)
    main = distributed.env_rank() == 0  # rank 0 alone tidies the run folder and picks the checkpoint
    ckpt = None
    if main:
        recover(path / "checkpoints")
        ckpt = pick_checkpoint(path, checkpoint)
    data = load_data(mgr, cfg, train=True)
    check_same_data(data_description(path), data.describe(), f"the training data ({data_place(cfg)})",
                    f"Put back the data {path} was trained on, or train a new run on this data")
    state = build_state(mgr, cfg, data=data)
    state.run_dir = path
    # Every process loads the checkpoint rank 0 picked, once rank 0 has finished tidying.
    ckpt = path / "checkpoints" / distributed.broadcast_text(ckpt.name if ckpt else None, state.world,
                                                              state.device)
    load_checkpoint(state, ckpt)
    if state.step >= cfg["train"]["steps"]:
        raise ConfigError(_reached(path, state.step, cfg["train"]["steps"]))
    if main:  # only once the checkpoint has loaded and there are steps to train: a refused resume moves nothing
        _set_aside_later(path / "checkpoints", ckpt)
        _truncate_log(path / "metrics.jsonl", state.step)
        if steps is not None or on_nan is not None:
            write_json_atomic(path / "config.json", cfg)
    return state


_STEP_IN_NAME = re.compile(r"step-(\d{7})")  # samples/step-0000500.png, traverse-c0-step-0000500.png, eval reports


def _set_aside_later(folder: Path, ckpt: Path) -> None:
    """Resuming from an older checkpoint: move the later ones, the abandoned future, aside (hidden, never
    deleted), so that the run's latest checkpoint is the one it goes on from; with them the sample grids,
    plugin pictures and eval reports of steps after it, so that pictures and curves read as one run."""
    step = checkpoint_step(ckpt)
    later = [c for c in list_checkpoints(folder) if checkpoint_step(c) > step]
    run = folder.parent
    later_files = [f for sub in ("samples", "eval") if (run / sub).is_dir() for f in sorted((run / sub).iterdir())
                   if f.is_file() and (m := _STEP_IN_NAME.search(f.name)) and int(m.group(1)) > step]
    if later or later_files:
        aside = folder / f".abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir()
        for c in later:
            os.rename(c, aside / c.name)
        for f in later_files:
            (aside / f.parent.name).mkdir(exist_ok=True)
            os.rename(f, aside / f.parent.name / f.name)


def _logged_time(path: Path, step: int) -> float:
    """The training time the log had reached by ``step`` (0 for a new run): a resumed run's clock goes on from it."""
    if not path.exists():
        return 0.0
    times = [0.0]
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "time_s" in entry and entry.get("step", 0) <= step:
            times.append(float(entry["time_s"]))
    return max(times)


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
    write_text_atomic(path, "".join(k + "\n" for k in keep))


def _append(path: Path, line: dict[str, Any]) -> None:
    try:
        with open(path, "a") as f:
            f.write(json_text(line) + "\n")
    except OSError as e:
        raise GanError(f"could not write {path}: {e.strerror or e}; the last checkpoint is intact. "
                       f"Free disk space, then --resume {path.parent}") from None


def _total(terms: Losses) -> Tensor:
    """The sum of the terms, in fp32 (under bf16 autocast some come out in bf16)."""
    for name, t in terms.items():  # a plugin's loss or regularizer: shapes only, no host sync
        if not isinstance(t, Tensor) or t.numel() != 1:
            got = f"a tensor of shape {tuple(t.shape)}" if isinstance(t, Tensor) else f"{type(t).__name__} {t!r}"
            raise GanError(f"loss term {name!r} is {got}, not a single number; a loss or regularizer returns its "
                           f"terms as 0-d tensors (reduce a batch of them with .mean())")
    values = [t.float() for t in terms.values()]
    return torch.stack(values).sum() if len(values) > 1 else values[0]


def sample_grid(state: TrainState, path: Path) -> Path | None:
    """G(fixed latent) as a picture: a PNG grid of images, or a scatter plot of 2-D points over the modes."""
    kind = state.data_info.get("kind")
    if kind not in ("image", "points"):
        return None
    with eval_mode(state.nets.generator):
        x = state.nets.generator(**state.fixed_latent).float().cpu().numpy()
    return save_picture(x, path, state.data_info, title=f"{state.config['plugin']} step {state.step}")


def train(state: TrainState, *, progress: bool = True) -> TrainState:
    """Train ``state`` from its current step to ``train.steps``. An error raised inside a plugin's component
    (its network, loss, regularizer or sampler) becomes a PluginError naming it and where it was raised."""
    if not isinstance(state, TrainState):
        hint = (f"; to go on with the run folder {str(state)!r}, train(prepare_resume({str(state)!r}))"
                if isinstance(state, str | os.PathLike) else "")
        raise GanError(f"train() takes the state that prepare() or prepare_resume() returns, got "
                       f"{type(state).__name__} {state!r}{hint}")
    try:
        return _train(state, progress)
    except Exception as e:
        if passes_through(e) or isinstance(e, Stopped) or (who := innermost(e, state.plugin_components())) is None:
            raise
        raise blamed(f"{who} failed at step {state.step + 1}", e) from e


def _train(state: TrainState, progress: bool) -> TrainState:
    # ---------------------------------------------------------------- set-up
    cfg = state.config["train"]
    call = state.manager.call  # a plugin's hook that raises is named in the error
    nets, loss, sampler = state.nets, state.loss, state.sampler
    total_steps, k = cfg["steps"], cfg["d_steps"]
    world = state.world
    main = world.main  # in data-parallel training, rank 0 alone logs, draws, evaluates and checkpoints
    batch_size = distributed.shard_batch(cfg["batch_size"], world)  # this process's share of the batch
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
    # the GPU whose RNG pictures and evaluation must leave alone (fork_rng copies and restores it)
    cuda = [torch.cuda.current_device() if state.device.index is None else state.device.index] \
        if state.device.type == "cuda" else []
    # Gradients no DDP wrapper averages: parameters one optimizer trains in a network of the other group
    # (InfoGAN's Q head, in D, trained by G's optimizer too). Averaged by hand, one all-reduce per step.
    unsynced = {phase: _unsynced(nets, opt, phase) for phase, opt in
                (("generator", state.opt_g), ("discriminator", state.opt_d))} if world.active else {}
    # bf16 autocast: forward passes and losses in bfloat16 where safe; weights and Adam stay fp32, no scaler.
    bf16 = cfg["autocast"] == "bf16"
    log_path = run_dir / "metrics.jsonl"
    window = LossWindow()
    skipped: dict[str, str] = {}
    metrics = applicable(state, skipped=skipped) if cfg["eval_every"] and main else {}
    state.progress = progress and main
    call("gan_train_start", state=state)
    bar = Progress(state.step, total_steps, state.progress)
    for name, why in skipped.items():
        bar.note(f"train.eval_every: metric {name!r} skipped; {why}")
    if cfg["eval_every"] and main and not metrics:
        bar.note("train.eval_every: no registered metric fits this run, so nothing is evaluated during training")
    t_start, step_start = time.perf_counter(), state.step
    t_before = _logged_time(log_path, state.step) if main else 0.0
    t_last, step_last = t_start, state.step

    while state.step < total_steps:
        step = state.step
        for c in schedulable:  # e.g. an annealed Gumbel-softmax temperature
            c.schedule(step, total_steps)
        if cfg["lr_decay"] != "none":
            set_learning_rates(state, lr_factor(step, total_steps, cfg["lr_decay"], cfg["lr_decay_start"]))

        # ------------------------------------------------------------ D step(s)
        for _ in range(k):
            batch = state.next_batch(batch_size)
            latent = sampler.sample(batch_size, state.latent_gen, state.device)
            s = Step("discriminator", batch, latent, nets, step, total_steps)
            with torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=bf16):
                terms = loss.discriminator_loss(s)
                for r in d_reg:
                    terms.update(r(s))
            state.opt_d.zero_grad(set_to_none=True)
            _total(terms).backward()
            if unsynced:
                distributed.average_grads(unsynced["discriminator"], world)
            state.opt_d.step()
            window.add(step + 1, terms)

        # ------------------------------------------------------------ G step
        latent = sampler.sample(batch_size, state.latent_gen, state.device)
        s = Step("generator", batch, latent, nets, step, total_steps)
        for p in d_only:
            p.requires_grad_(False)
        with torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=bf16):
            g_terms = loss.generator_loss(s)
            for r in g_reg:
                g_terms.update(r(s))
        state.opt_g.zero_grad(set_to_none=True)
        _total(g_terms).backward()
        if unsynced:
            distributed.average_grads(unsynced["generator"], world)
        state.opt_g.step()
        for p in d_only:
            p.requires_grad_(True)
        state.step += 1
        if state.average is not None:
            state.average.update(state.step)
        window.add(state.step, g_terms)

        # ------------------------------------------------------------ log and health check (the only host sync)
        last = state.step == total_steps
        stopping = state.stop_signal is not None and not last  # SIGTERM: keep this step, then stop
        ckpt_due = state.step % cfg["checkpoint_every"] == 0 or last or stopping
        log_due = state.step % cfg["log_every"] == 0 or last or stopping
        if log_due or ckpt_due:
            means, problem = window.summary()
            if problem is None and ckpt_due and (role := nonfinite_weights(nets)) is not None:
                problem = Problem(f"{role} weights", state.step)
            if distributed.any_flag(problem is not None, world, state.device) and problem is None:
                problem = Problem("another process's losses or weights", state.step)  # all ranks act together
            if log_due or problem is not None:  # a checkpoint alone checks the window, and leaves the log its means
                window.clear()
            if problem is not None:
                state.rollbacks += 1
                _diverged(state, problem, bar)  # raises, or rolls back to the last good checkpoint
                t_last, step_last = time.perf_counter(), state.step
                continue
            if log_due and main:
                now = time.perf_counter()
                line: dict[str, Any] = {"step": state.step, **means}
                line["images_per_s"] = (state.step - step_last) * cfg["batch_size"] * k / max(now - t_last, 1e-9)
                line["time_s"] = t_before + now - t_start
                _append(log_path, line)
                rate = (state.step - step_start) / max(now - t_start, 1e-9)
                bar.update(state.step, line, (total_steps - state.step) / max(rate, 1e-9))
                call("gan_train_log", state=state, metrics=line)
                t_last, step_last = now, state.step

        # ------------------------------------------------------------ a polite stop: the checkpoint comes first
        # (a grid or an evaluation can outlast a scheduler's grace before its kill; the resume does not redo them)
        if stopping and main:  # single-process only (stop_on_signals): ranks would stop at different steps
            path = save_checkpoint(state, run_dir / "checkpoints", cfg["keep_checkpoints"])
            call("gan_train_checkpoint", state=state, path=path)
            bar.close()
            signum, state.stop_signal = state.stop_signal, None  # asked once: a later train(state) runs on
            raise Stopped(signum, state.step, path)  # type: ignore[arg-type]

        # ------------------------------------------------------------ sample grid, evaluation
        # (with train.ema, of the averaged generator: what sampling and export will use; on a private copy of
        # the global RNG, as the evaluation below, so that a plugin's pictures cannot change the training)
        if (state.step % cfg["sample_every"] == 0 or last) and main:
            try:
                with averaged(state), torch.random.fork_rng(devices=cuda):
                    sample_grid(state, run_dir / "samples" / f"step-{state.step:07d}.png")
                    call("gan_train_pictures", state=state, folder=run_dir / "samples")
            except (OSError, PluginError) as e:
                cause = e if isinstance(e, OSError) else e.__cause__  # a plugin's pictures: files too
                if not isinstance(cause, OSError):
                    raise
                raise GanError(f"could not write a sample grid in {run_dir}: {cause.strerror or cause}; the last "
                               f"checkpoint is intact. Free disk space, then --resume {run_dir}") from None
        if cfg["eval_every"] and (state.step % cfg["eval_every"] == 0 or last) and main:
            failed: dict[str, str] = {}
            # on a private copy of the global RNG (a metric's draws, its evaluator's first initialisation), so a
            # run with evaluation resumes bit for bit: an uninterrupted process would draw it only once
            with torch.random.fork_rng(devices=cuda):
                results = evaluate(state, metrics, failed)
            if results:
                _append(log_path, {"step": state.step, "eval": results})
                bar.note(f"eval at step {state.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
            for name, why in failed.items():  # a broken metric must not cost the run; it is not tried again
                del metrics[name]
                _append(log_path, {"step": state.step, "event": "eval_failed", "metric": name, "error": why})
                bar.note(f"eval at step {state.step}: metric {name!r} failed: {why}; training goes on without it")

        # ------------------------------------------------------------ checkpoint (weights checked finite above)
        if ckpt_due and main:
            path = save_checkpoint(state, run_dir / "checkpoints", cfg["keep_checkpoints"])
            call("gan_train_checkpoint", state=state, path=path)

    bar.close()
    call("gan_train_end", state=state)
    return state


def lr_factor(step: int, total: int, kind: str, start: float = 0.0) -> float:
    """The learning-rate multiplier at ``step`` of ``total``: 1 until ``start * total``, then down to 0 at
    ``total`` along a line (``linear``) or a half cosine (``cosine``); always 1 for ``none``."""
    if kind == "none":
        return 1.0
    begin = start * total
    if step <= begin:
        return 1.0
    frac = min(1.0, (step - begin) / max(total - begin, 1e-9))
    if kind == "linear":
        return 1.0 - frac
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr_decay {kind!r}; use none, linear or cosine")


def set_learning_rates(state: TrainState, scale: float) -> None:
    """Both optimizers at the configured rates times ``scale`` and the rollback factor, whatever they held."""
    cfg = state.config["train"]
    scale *= cfg["rollback_lr_factor"] ** state.rollbacks
    for opt, lr in ((state.opt_g, cfg["lr_g"]), (state.opt_d, cfg["lr_d"])):
        for group in opt.param_groups:
            group["lr"] = lr * scale


def _unsynced(nets: Any, opt: torch.optim.Optimizer, phase: str) -> list[torch.nn.Parameter]:
    covered = {id(p) for role, m in nets.parallel.items() if nets.group_of(role) == phase for p in m.parameters()}
    return [p for g in opt.param_groups for p in g["params"] if id(p) not in covered]


def _diverged(state: TrainState, problem: Problem, bar: Progress) -> None:
    """Stop with a message naming the step and the component, or roll back and lower the learning rates."""
    cfg = state.config["train"]
    assert state.run_dir is not None
    ckpts = [c for c in list_checkpoints(state.run_dir / "checkpoints") if checkpoint_step(c) <= problem.step]
    last_good = ckpts[-1] if ckpts else None
    where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written before it"
    msg = f"training diverged: {problem.what} became NaN or Inf at step {problem.step}; {where}"
    if cfg["on_nan"] != "rollback":
        fix = (f"Go on with gan train --resume {state.run_dir} --on-nan rollback (from the last good checkpoint, "
               f"learning rates lowered), or train anew with lower learning rates (--set train.lr_d=...)"
               if last_good else "Train anew with lower learning rates (--set train.lr_d=...), or with --on-nan "
               "rollback and a checkpoint before this step (--set train.checkpoint_every=...)")
        raise DivergenceError(f"{msg}. {fix}")
    rollbacks = state.rollbacks
    if last_good is None or rollbacks > cfg["max_rollbacks"]:
        why = ("nothing to roll back to" if last_good is None else
               "train.max_rollbacks is 0, so no rollback was tried" if not cfg["max_rollbacks"] else
               f"{cfg['max_rollbacks']} rollbacks did not help")
        raise DivergenceError(f"{msg}; {why}, stopping")
    load_checkpoint(state, last_good)
    state.rollbacks = rollbacks  # the checkpoint predates this rollback
    factor = cfg["rollback_lr_factor"] ** rollbacks
    set_learning_rates(state, lr_factor(state.step, cfg["steps"], cfg["lr_decay"], cfg["lr_decay_start"]))
    event = {"step": state.step, "event": "rollback", "nonfinite": problem.what, "at_step": problem.step,
             "lr_g": state.opt_g.param_groups[0]["lr"], "lr_d": state.opt_d.param_groups[0]["lr"]}
    if state.world.main:
        _truncate_log(state.run_dir / "metrics.jsonl", state.step)
        _append(state.run_dir / "metrics.jsonl", event)
    bar.note(f"{msg}; rolled back to step {state.step} with learning rates x{factor:g} "
             f"(rollback {rollbacks} of at most {cfg['max_rollbacks']})")
