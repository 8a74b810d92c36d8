"""``gan``: train, sample, export and manage plugins. Only parsing here; the work is in ``gancore``."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from gancore.errors import TRACEBACK_ENV, GanError

if TYPE_CHECKING:
    from gancore.state import TrainState


def _message(e: GanError) -> str:
    """The error's one line; an unknown name also names the setting that may have filtered its plugin out."""
    from gancore.errors import UnknownNameError
    from gancore.plugins import restriction

    if isinstance(e, UnknownNameError) and (setting := restriction()):
        return f"error: {e} (plugin loading is restricted by {setting}; unset it to load every installed plugin)"
    return f"error: {e}"


ERROR_DIR = "GANCORE_ERROR_DIR"  # set by `gan train --nproc`: where each worker leaves its error line


def _says() -> bool:
    """Whether this process reports errors: under torchrun (``gan train --nproc N``) rank 0 alone does, as every
    rank meets the same error and N copies of one line read as N problems (the launcher prints another rank's
    line where rank 0 left none); a RANK left in the environment of a single process silences nothing."""
    from gancore.distributed import env_rank

    return env_rank() == 0


def _report(line: str) -> None:
    """Print an error line (rank 0 alone), and under ``--nproc`` leave it for the launcher, which learns from the
    files which ranks said why they stopped (torchrun may stop rank 0 before its exit code shows it failed)."""
    from gancore.distributed import env_rank

    if _says():
        typer.echo(line, err=True)
    if folder := os.environ.get(ERROR_DIR):
        with contextlib.suppress(OSError):  # the launcher then says less, nothing worse
            (Path(folder) / f"rank-{env_rank()}.txt").write_text(line.strip() + "\n")


class _Group(TyperGroup):
    """Turn a GanError from any command into one line on stderr and exit code 2."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except GanError as e:
            if e.__cause__ is not None and os.environ.get(TRACEBACK_ENV, "") not in ("", "0") and _says():
                traceback.print_exception(e.__cause__)  # a plugin author's view of their error, before the line
            _report(_message(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:  # files are written whole or not at all (atomic renames): no partial file
            if _says():
                typer.echo("\ninterrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="gancore: train GANs from plugins, export them to ONNX, sample anywhere.")


# sample, eval and export: a train.ema run's last-step weights in place of the networks' averages
Live = Annotated[bool, typer.Option(help="A run trained with train.ema: use its last-step weights, not the averages.")]


def fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


@app.command()
def plugins(
    options: Annotated[bool, typer.Option(help="Each component with its description and its --set options, "
                                               "with their defaults.")] = False,
) -> None:
    """Print installed plugins as JSON: distribution, version, origin and what each registered."""
    from gancore.plugins import get_manager

    typer.echo(json.dumps(get_manager().report(options), indent=2, default=str))


@app.command()
def train(
    plugin: Annotated[str | None, typer.Option(help="Plugin recipe to train, e.g. dcgan.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")] = None,
    steps: Annotated[int | None, typer.Option(help="Generator steps in total.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (runs are deterministic on CPU).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Dataset name, e.g. fashion-mnist, or image-folder for your own images in --data-dir.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with the dataset's files.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="key=value, e.g. generator.width=64.")] = None,
    config: Annotated[Path | None, typer.Option(help="TOML file with config sections.")] = None,
    out: Annotated[str | None, typer.Option(help="Run folder to create (default runs/<plugin>-NNNN).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="With --resume: a checkpoint step to start from.")] = None,
    on_nan: Annotated[str | None, typer.Option(help="On NaN/Inf: stop (default) or rollback to the last good "
                                                    "checkpoint with lower learning rates.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress output.")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the networks (train.compile).")] = False,
    nproc: Annotated[int, typer.Option(help="Data-parallel processes on this machine (torchrun; gloo on CPU, "
                                            "NCCL on GPUs).")] = 1,
) -> None:
    """Train a GAN; prints the run folder on the last line of stdout."""
    from gancore import distributed
    from gancore.config import load_toml, parse_sets
    from gancore.loop import check_prepare, check_prepare_resume, prepare, prepare_resume
    from gancore.loop import train as run_training
    from gancore.runs import discard_unstarted
    from gancore.signals import Stopped, stop_on_signals

    if nproc < 1:
        fail(f"--nproc must be >= 1, got {nproc}")
    launch = nproc > 1 and not distributed.launched()
    if launch and sys.argv[1:2] != ["train"]:
        fail("--nproc restarts the `gan train` command line under torchrun; from Python, start your script "
             "with torchrun --nproc-per-node N instead")

    if resume is not None:
        given = [plugin, set_, config, dataset, data_dir, batch_size, seed, out]
        if any(g is not None and g != [] for g in given) or compile_:
            fail("--resume continues a run with its saved config; only --steps, --device, --checkpoint, --on-nan "
                 "and --nproc may be given with it")
        if launch:  # bad input fails here, in one line, not once per process inside torchrun's report
            check_prepare_resume(resume, steps=steps, checkpoint=checkpoint, device=device, on_nan=on_nan,
                                 processes=nproc)
            raise typer.Exit(_torchrun(nproc))
        state = prepare_resume(resume, steps=steps, checkpoint=checkpoint, device=device, on_nan=on_nan)
    else:
        if checkpoint is not None:
            fail("--checkpoint picks where --resume starts; it needs --resume RUN")
        if not plugin:
            from gancore.plugins import get_manager

            fail(f"choose what to train with --plugin NAME (one of: "
                 f"{', '.join(get_manager().registries.recipes.list())}), or continue a run with --resume RUN")
        if launch and config is not None and Path(config).exists() and not Path(config).is_file() \
                and not Path(config).is_dir():
            # a pipe: the workers would each read it again, and find it empty
            fail(f"--config {str(config)!r} is a pipe, which the {nproc} training processes cannot each read; save "
                 f"it to a file and give that with --nproc")
        layers = []
        if config is not None:
            layers.append(load_toml(config))
        layers.append(parse_sets(set_ or []))
        opts: dict = {"train": {}, "data": {}}
        if steps is not None:
            opts["train"]["steps"] = steps
        if on_nan is not None:
            opts["train"]["on_nan"] = on_nan
        if compile_:
            opts["train"]["compile"] = True
        if batch_size is not None:
            opts["train"]["batch_size"] = batch_size
        if seed is not None:
            opts["seed"] = seed
        if device is not None:
            opts["device"] = device
        if dataset is not None:
            opts["data"]["name"] = dataset
        if data_dir is not None:
            opts["data"]["dir"] = data_dir
        layers.append(opts)
        if launch:
            check_prepare(plugin, *layers, out=out, processes=nproc)  # type: ignore[arg-type]
            raise typer.Exit(_torchrun(nproc))
        state = prepare(plugin, *layers, out=out)  # type: ignore[arg-type]
    world = state.world
    if world.main:
        procs = f", {world.size} processes" if world.active else ""
        typer.echo(f"run folder: {state.run_dir} (device {state.device}{procs}, from step {state.step})", err=True)
    try:
        with stop_on_signals(state):
            run_training(state, progress=not quiet)
    except Stopped as e:  # SIGTERM or SIGHUP (single process): the step it was on is checkpointed
        distributed.finish(state.nets)
        if world.main:
            with contextlib.suppress(OSError):  # a terminal that hung up in the last moment: the log has it all
                typer.echo(f"\n{e}: continue with gan train --resume {state.run_dir}", err=True)
        raise typer.Exit(128 + e.signum) from None
    except KeyboardInterrupt:
        distributed.finish(state.nets, ok=False)
        if world.main:
            typer.echo(f"\n{_interrupted(state)}", err=True)
        raise typer.Exit(130) from None
    except BaseException:
        distributed.finish(state.nets, ok=False)
        if world.main and resume is None and (why := discard_unstarted(state)):
            typer.echo(f"gancore: note: {why}", err=True)
        raise
    distributed.finish(state.nets)
    if world.main:
        typer.echo(str(state.run_dir))


def _interrupted(state: TrainState) -> str:
    """What Ctrl-C during training kept, and how to go on."""
    from gancore.checkpoint import checkpoint_step, list_checkpoints

    ckpts, steps = list_checkpoints(state.run_dir / "checkpoints"), state.config["train"]["steps"]
    if not ckpts:
        return (f"interrupted at step {state.step}, before the first checkpoint (train.checkpoint_every "
                f"{state.config['train']['checkpoint_every']}): nothing to resume; train again with another --out, "
                f"or delete {state.run_dir} first")
    last = ckpts[-1].name
    if checkpoint_step(ckpts[-1]) >= steps:
        return (f"interrupted after the last step: the run is complete ({last}); train it further with "
                f"gan train --resume {state.run_dir} --steps N")
    return (f"interrupted at step {state.step}; its last checkpoint, {last}, is intact: continue with "
            f"gan train --resume {state.run_dir}")


# torchrun, quiet: on Ctrl-C it stops its workers (rank 0 says where the run stands), then raises SignalException;
# when a worker fails (rank 0 has said why, in one line) it raises ChildFailedError with a report of every rank. Either
# traceback would bury rank 0's line, so the wrapper exits with the workers' own code instead: 2 for bad input, 3 for
# a diverged run, as without --nproc; a worker killed by a signal gets one line of its own, and so does the first
# failing rank where rank 0 left no error line in GANCORE_ERROR_DIR (an error only that rank met).
_TORCHRUN = """import logging, os, runpy, signal, sys
# no warning lines from torch's elastic agent about stopping workers: its loggers take LOGLEVEL, the rest inherit
os.environ.setdefault("LOGLEVEL", "CRITICAL")
logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
try:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    runpy.run_module("torch.distributed.run", run_name="__main__", alter_sys=True)
except KeyboardInterrupt:
    sys.exit(130)
except SignalException as e:
    if e.sigval != signal.SIGINT:  # on Ctrl-C rank 0 has said where the run stands; a SIGTERM stops it unsaid
        print(f"stopped by signal {int(e.sigval)}; every checkpoint written is intact: continue with "
              f"gan train --resume RUN (the run folder printed above)", file=sys.stderr)
    sys.exit(130)
except ChildFailedError as e:
    rank, first = e.get_first_failure()  # the root cause: torchrun then stops the other workers with SIGTERM
    if first.exitcode < 0:
        print(f"error: training process rank {rank} died by signal {-first.exitcode}; every checkpoint written is "
              f"intact: continue with gan train --resume RUN (the run folder printed above)", file=sys.stderr)
        sys.exit(1)
    folder = os.environ["GANCORE_ERROR_DIR"]  # each worker's error line, left by gancore_cli
    if not os.path.exists(os.path.join(folder, "rank-0.txt")):  # rank 0 has not printed why (it met no error)
        try:
            with open(os.path.join(folder, f"rank-{rank}.txt")) as f:
                said = f.read().strip()
        except OSError:
            said = f"error: exit code {first.exitcode}; run the same command with --nproc 1 to see why"
        print(f"rank {rank}: {said}", file=sys.stderr)
    sys.exit(first.exitcode)
"""


def _torchrun(nproc: int) -> int:
    """Start ``nproc`` copies of this ``gan train`` command under torchrun (one machine; see the README for
    several machines) and return its exit code."""
    args, skip = [], False
    for a in sys.argv[2:]:  # after "gan train"
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            args.append(a)
    cmd = [sys.executable, "-c", _TORCHRUN, "--standalone", f"--nproc-per-node={nproc}",
           "-m", "gancore_cli", "train", *args]
    # A SIGTERM or SIGHUP sent to this process alone is passed on, or torchrun and the workers would go on
    # training unseen; Ctrl-C at the terminal already reaches the whole process group, torchrun included.
    proc: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if proc is None:
            pending.append(signum)  # arrived while torchrun was starting
        elif proc.poll() is None:
            proc.send_signal(signum)

    before = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    errors = tempfile.mkdtemp(prefix="gancore-errors-")
    try:
        proc = subprocess.Popen(cmd, env={**os.environ, ERROR_DIR: errors})
        for signum in pending:
            proc.send_signal(signum)
        try:
            return proc.wait()  # torchrun stops its workers and says where the run stands
        except KeyboardInterrupt:  # torchrun got the Ctrl-C too: let it stop its workers
            proc.wait()
            return 130
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        shutil.rmtree(errors, ignore_errors=True)


@app.command()
def sample(
    target: Annotated[Path, typer.Argument(help="A run folder, or an exported .onnx generator.")],
    n: Annotated[int | None, typer.Option("-n", help="Number of samples (default 64; a traversal's size is set by "
                                                     "its codes).")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="PNG grid to write (default grid.png); for a "
                                                                 "text model, a file of samples (default: print)."
                                              )] = None,
    seed: Annotated[int, typer.Option(help="Seed of the latent draw.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    checkpoint: Annotated[str | None, typer.Option(help="A run's checkpoint step (default: latest).")] = None,
    traverse: Annotated[bool, typer.Option(help="A latent traversal instead: rows are the categories of code 0, "
                                                "columns sweep one continuous code from -2 to 2.")] = False,
    code: Annotated[int, typer.Option(help="With --traverse: the continuous code to sweep.")] = 0,
    live: Live = False,
    force: Annotated[bool, typer.Option(help="A text model: replace an existing -o file.")] = False,
) -> None:
    """Sample a grid from a run (PyTorch) or an exported ONNX model (onnxruntime)."""
    from gancore.sampling import sample as do_sample

    if code and not traverse:
        fail("--code picks the continuous code a traversal sweeps; add --traverse")
    if traverse and n is not None:
        fail("-n sets a grid's sample count; a traversal has one row per category and a column per step of the "
             "code, so drop -n")
    n = 64 if n is None else n
    res = do_sample(target, n=n, out=out, seed=seed, device=device, checkpoint=checkpoint,
                    traverse=code if traverse else None, default_out=Path("grid.png"), live=live, force=force)
    if res.texts is not None:
        if res.out is None:
            typer.echo("\n".join(res.texts))
        typer.echo(f"{len(res.texts)} samples{f' written to {res.out}' if res.out else ''} "
                   f"({res.backend} on {res.device})", err=True)
        return
    what = "traversal" if traverse else f"{n} samples"
    typer.echo(f"wrote {res.out} ({what}; {res.backend} on {res.device})")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="The run folder to export.")],
    format_: Annotated[list[str] | None, typer.Option(
        "--format", help="onnx (fp32), onnx-fp16 (half precision inside, for GPUs), onnx-opt (onnxruntime's "
                         "optimised graph for CPU, faster to load), pt2 (a torch.export ExportedProgram) and/or "
                         "torchscript.")] = None,
    # str, not Path: typer would read an empty --out "$DIR" as the current folder
    out: Annotated[str | None, typer.Option(help="Folder to write (default exported/<run>).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing export folder.")] = False,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint step to export (default: latest).")] = None,
    live: Live = False,
) -> None:
    """Export a run's generator (and any extra models its plugin declares), parity-checked."""
    from gancore.export import FORMATS, export_run

    dest = export_run(run, format_ or ["onnx"], out=out, force=force, checkpoint=checkpoint, live=live)
    card = json.loads((dest / "card.json").read_text())
    for m in card["models"].values():
        for fmt in FORMATS:
            if fmt in m:
                diffs = ", ".join(f"batch {b}: {d:.1e}" for b, d in m[fmt]["max_abs_diff"].items())
                typer.echo(f"{dest / m[fmt]['file']}: {m['kind']}, parity max abs diff {diffs}", err=True)
    typer.echo(str(dest))


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(help="A run folder, or an exported .onnx generator.")],
    metric: Annotated[list[str] | None, typer.Option(help="Only these metrics (default: all that fit).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint step to evaluate (default: latest).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N.")] = None,
    data_dir: Annotated[str | None, typer.Option(
        help="Folder with the dataset's files, for the real images metrics compare against (default: the run's "
             "own data.dir; for a model, the default places).")] = None,
    live: Live = False,
) -> None:
    """Score a run with the registered metrics that fit its data and plugin; writes eval/ JSON and curves.png."""
    from gancore.evaluate import evaluate_run, table

    res = evaluate_run(run, metrics=metric, checkpoint=checkpoint, device=device, data_dir=data_dir, live=live,
                       note=lambda line: typer.echo(line, err=True))
    typer.echo(f"{run} at step {res.step} ({res.backend})")
    typer.echo(table(res.results))
    typer.echo(f"wrote {res.report}" + (f" and {res.curves}" if res.curves else ""), err=True)
    for name, why in res.failed.items():
        typer.echo(f"error: metric {name!r} failed: {why}; the other scores are saved", err=True)
    if res.failed:
        raise typer.Exit(1)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def install(ctx: typer.Context) -> None:
    """pip install plugins into the environment gan runs in (all arguments go to pip install)."""
    if not ctx.args:
        raise GanError("name a package to install, e.g. gan install gan-plugin-foo (arguments go to pip)")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "pip", "install", *ctx.args]))


@app.command()
def uninstall(
    packages: Annotated[list[str], typer.Argument(help="Distributions to remove.")],
    yes: Annotated[bool, typer.Option("-y", "--yes")] = False,
) -> None:
    """pip uninstall plugins from the environment gan runs in."""
    if not yes and not sys.stdin.isatty():  # pip would ask, read end-of-file, and print a traceback
        raise GanError("gan uninstall asks before removing, and there is no terminal to answer on; pass -y")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "pip", "uninstall", *(["-y"] if yes else []),
                                      *packages]))


def _add_plugin_commands() -> None:
    """Sub-commands plugins registered through ``gan_register_commands``."""
    from gancore.plugins import get_manager

    builtin = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback}
    for entry in get_manager().registries.commands.entries():
        if entry.name in builtin:  # else `gan uninstall` itself could be taken over, and the plugin not removable
            typer.echo(f"gancore: warning: plugin {entry.plugin!r} registers a command {entry.name!r}, which is "
                       f"gan's own; it is not added", err=True)
            continue
        app.command(name=entry.name, help=entry.description)(_blamed_command(entry.builder, entry.name, entry.plugin))


def _blamed_command(command: Callable[..., Any], name: str, plugin: str) -> Callable[..., Any]:
    """A plugin's command whose errors (its bugs) are one line naming it, as a plugin's hooks' are."""
    from gancore.errors import blamed, passes_through

    @functools.wraps(command)  # typer reads the options from the signature
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as e:
            # typer.Exit(n), typer.Abort(), typer.BadParameter (click's, in older typer): the command's own way out
            if passes_through(e) or type(e).__module__.split(".")[0] in ("typer", "click"):
                raise
            raise blamed(f"command {name!r} of plugin {plugin!r} failed", e) from e

    return run


def main() -> None:
    try:
        _add_plugin_commands()
        app()
    except GanError as e:  # raised while loading plugins, before a command runs
        typer.echo(_message(e), err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # Ctrl-C while plugins (and torch) load: nothing was written yet
        if _says():
            typer.echo("\ninterrupted", err=True)
        sys.exit(130)
