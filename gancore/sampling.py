"""``gan sample``: draw from a run's checkpoint with PyTorch, or from an exported ONNX model with onnxruntime."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gancore.config import check_seed, whole
from gancore.deploy import MAX_BATCH, class_limits, draw_input, draw_latent
from gancore.errors import ExportError, path_arg
from gancore.fsutil import write_text_atomic
from gancore.images import save_grid, save_picture


@contextmanager
def eval_mode(*modules: Any) -> Iterator[None]:
    """Modules in eval mode without autograd for the block, then each back in the mode it was in."""
    import torch

    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, w in zip(modules, was, strict=True):
            m.train(w)


def batched(fn: Callable[[Any], Any], x: Any, size: int = 1000) -> Any:
    """``fn`` over ``x`` in slices of ``size`` rows, without autograd; the results joined on the CPU."""
    import torch

    with torch.no_grad():
        return torch.cat([fn(x[i:i + size]).cpu() for i in range(0, len(x), size)])


def latent_batches(specs: Sequence[Any], n: int, seed: int, device: Any, chunk: int = 1024) -> Iterator[dict[str, Any]]:
    """The latents :func:`generate` feeds a generator: chunks of ``chunk`` drawn in turn from one torch RNG seeded
    with ``seed`` on ``device``. ``gan eval`` of an exported model draws the CPU's, so it scores an export on the
    latents of its run's CPU evaluation."""
    import torch

    from gancore.components import draw

    gen = torch.Generator(device=device).manual_seed(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        yield {s.name: draw(s, m, gen, device) for s in specs}


def generate(state: Any, n: int, seed: int = 0, chunk: int = 1024) -> Any:
    """``n`` samples from the run's generator (eval mode, no grad), drawn in chunks with a seeded RNG."""
    import torch

    with eval_mode(state.nets.generator):
        out = [state.nets.generator(**latent).float()
               for latent in latent_batches(state.latent_specs, n, seed, state.device, chunk)]
    return torch.cat(out)


def decode_tokens(ids: Any, vocab: list[str], level: str = "char", eos: int = 0) -> list[str]:
    """Batch x T token ids -> strings, each cut at its first end token ``eos``; word tokens joined by spaces."""
    sep = " " if level == "word" else ""
    out = []
    for row in np.asarray(ids).tolist():
        end = row.index(eos) if eos in row else len(row)
        out.append(sep.join(vocab[i] for i in row[:end]))
    return out


def traversal_latent(specs: list[dict[str, Any]], code: int = 0, cols: int = 10,
                     span: tuple[float, float] = (-2.0, 2.0), seed: int = 0) -> tuple[dict[str, np.ndarray], int]:
    """Latent inputs for a traversal grid and its row length: one row per class of categorical code 0, one column
    per value of continuous code ``code`` swept over ``span``; every other input is one draw held fixed.

    Without a ``continuous`` input the columns are different noise draws; without a ``categorical`` one there
    are 8 rows of different noise. ``specs`` are input specs as JSON (``LatentSpec.to_json`` or ONNX metadata).
    """
    by_name = {s["name"]: s for s in specs}
    cat, cont = by_name.get("categorical"), by_name.get("continuous")
    if cat is None and cont is None:
        raise ExportError("this model's latent has no categorical or continuous code to traverse "
                          "(--traverse is for code-structured latents, e.g. --plugin infogan)")
    if cont is None and code:
        raise ExportError(f"--code {code} picks a continuous code, but this model has none; leave --code out")
    if cont is not None and not 0 <= code < cont["shape"][0]:
        raise ExportError(f"--code {code} is out of range: this model has {cont['shape'][0]} continuous code(s), "
                          f"numbered from 0")
    rows = int(np.ravel(class_limits(cat))[0]) if cat is not None else 8  # the classes of code 0
    n = rows * cols
    rng = np.random.default_rng(seed)
    row, col = np.divmod(np.arange(n), cols)
    varies = row if cat is None else (col if cont is None else None)  # which index picks a fresh noise draw
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = tuple(spec["shape"])
        if spec["distribution"] == "categorical":
            v = np.repeat(draw_input(spec, rng, shape)[None], n, axis=0)
            if spec is cat:
                v[:, 0] = row
        else:
            fresh = varies is not None and spec is not cont
            draws = np.stack([draw_input(spec, rng, shape) for _ in range(max(rows, cols) if fresh else 1)])
            v = draws[varies] if fresh else np.repeat(draws, n, axis=0)
            if spec is cont:
                v[:, code] = np.linspace(span[0], span[1], cols, dtype=np.float32)[col]
        feeds[spec["name"]] = np.ascontiguousarray(v)
    return feeds, cols


def run_generator(state: Any, feeds: dict[str, np.ndarray], chunk: int = 1024) -> np.ndarray:
    """A run's generator (eval mode, no grad) on numpy latent inputs, as an exported one is run, in chunks."""
    import torch

    n = len(next(iter(feeds.values())))
    out = []
    with eval_mode(state.nets.generator):
        for start in range(0, n, chunk):
            latent = {k: torch.from_numpy(v[start:start + chunk]).to(state.device) for k, v in feeds.items()}
            out.append(state.nets.generator(**latent).float().cpu().numpy())
    return np.concatenate(out)


def traversal_images(state: Any, code: int = 0, cols: int = 10, seed: int = 0,
                     span: tuple[float, float] = (-2.0, 2.0)) -> tuple[np.ndarray, int]:
    """A run's traversal grid of continuous code ``code`` (see :func:`traversal_latent`) and its row length."""
    feeds, nrow = traversal_latent([s.to_json() for s in state.latent_specs], code, cols, span=span, seed=seed)
    return run_generator(state, feeds), nrow


def traverse(state: Any, path: str | Path, code: int = 0, cols: int = 10, seed: int = 0) -> Path:
    """Draw a run's traversal grid of continuous code ``code`` as a PNG."""
    x, nrow = traversal_images(state, code, cols, seed)
    return save_grid(x, path, tuple(state.data_info["value_range"]), nrow=nrow)


NOT_TEXT = (".png", ".jpg", ".jpeg", ".json", ".jsonl", ".toml", ".safetensors", ".onnx", ".pt", ".pt2")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(8) == PNG_SIGNATURE


def _check_grid_path(out: Path) -> None:
    """A grid is a PNG: refuse another suffix, and never overwrite a file that is not a PNG already."""
    if out.suffix.lower() != ".png":
        raise ExportError(f"-o {str(out)!r}: sample grids are PNG files; give a name ending in .png")
    if out.exists() and not _is_png(out):
        raise ExportError(f"-o {str(out)!r} exists and is not a PNG picture, so it is not overwritten; "
                          f"choose another name")


def _check_text_path(out: Path, force: bool) -> None:
    """Text samples go to a text file: not a picture, model or run-file name, not a folder, and not over an
    existing file without ``force`` (unlike a PNG, nothing tells our samples from the user's own text)."""
    if out.suffix.lower() in NOT_TEXT:
        raise ExportError(f"this model writes text; give -o a text file (e.g. samples.txt), not {str(out)!r} "
                          f"(a {out.suffix} name is for pictures, models or run files), or leave -o out "
                          f"to print the samples")
    if out.is_dir():
        raise ExportError(f"-o {str(out)!r} is a folder; give a file name for the samples (e.g. samples.txt)")
    if not force and out.exists() and out.stat().st_size:
        raise ExportError(f"-o {str(out)!r} already exists, so it is not overwritten; choose another name, or "
                          f"replace it with --force")


@dataclass
class SampleResult:
    samples: np.ndarray
    backend: str  # "pytorch" or "onnxruntime"
    device: str  # torch device, or the onnxruntime execution provider really used
    out: Path | None
    texts: list[str] | None = None  # decoded samples of a sequence model


def is_model(target: Path) -> bool:
    """Whether ``gan sample`` and ``gan eval`` read ``target`` as an exported ONNX model rather than a run folder:
    by its suffix, in any case (``G.ONNX``), unless it is a run folder that happens to be named ``*.onnx``."""
    from gancore.runs import is_run_dir  # here: gancore.runs imports what imports this module

    return target.suffix.lower() == ".onnx" and not is_run_dir(target)


def refuse_run_options_for_model(target: Path, live: bool, checkpoint: str | None) -> None:
    """``--live`` (a run's last-step weights in place of the averages) and ``--checkpoint`` pick weights in a run
    folder; an exported model holds one set, so either one given with it is an error, not silently ignored."""
    if not is_model(target):
        return
    for flag, given in (("--live", live), ("--checkpoint", checkpoint is not None)):
        if given:
            raise ExportError(f"{flag} picks weights in a run folder; {target} holds one set of weights (its "
                              f"card says which); give the run folder instead, or leave {flag} out")


def sample(target: str | Path, *, n: int = 64, out: str | Path | None = None, seed: int = 0,
           device: str = "auto", checkpoint: str | None = None, traverse: int | None = None,
           default_out: str | Path | None = None, live: bool = False, force: bool = False) -> SampleResult:
    """Sample ``n`` items from a run folder or a ``.onnx`` file; write a PNG grid to ``out`` if given.

    A sequence model's samples are decoded to text (``texts``), and ``out`` gets them one per line.
    ``default_out`` is the grid an image model writes when ``out`` is None.

    With ``traverse=i``, draw a traversal grid of continuous code ``i`` instead (see :func:`traversal_latent`).
    ``live``: a run trained with ``train.ema`` is sampled from its last step's weights, not G's average.
    ``force``: a text model's ``out`` may replace an existing file (nothing tells samples from the user's text).
    """
    if (count := whole(n)) is None or not 1 <= count <= MAX_BATCH:
        raise ExportError(f"-n must be a whole number from 1 to {MAX_BATCH}, got {n!r}; for more, sample several "
                          f"times with different --seed values")
    n = count
    if traverse is not None and (traverse := whole(traverse_given := traverse)) is None:
        raise ExportError(f"traverse names a continuous code by its index (0 for the first), got {traverse_given!r}")
    seed = check_seed(seed, "--seed")
    target = path_arg(target, "the run or model to sample", ExportError)
    if out is not None:
        out = path_arg(out, "out", ExportError)
    refuse_run_options_for_model(target, live, checkpoint)
    nrow = None
    if is_model(target):
        from gancore.deploy import OnnxModel

        model = OnnxModel(target, device=device)
        if traverse is not None:
            feeds, nrow = traversal_latent(model.inputs, traverse, seed=seed)
            x = model.run(feeds)[0]
        else:
            x = model.sample(n, seed)
        output, info = model.meta.get("output", {}), model.meta.get("data", {})
        value_range = tuple(output.get("value_range", (-1.0, 1.0)))
        kind = {"NCHW": "image", "tokens": "sequence"}.get(output.get("layout"), info.get("kind", "other"))
        vocab, level = model.meta.get("vocab"), output.get("level", "char")
        res = SampleResult(x, "onnxruntime", model.provider, None)
    else:
        from gancore.runs import open_run

        state = open_run(target, checkpoint=checkpoint, device=None if device == "auto" else device, live=live)
        if traverse is not None:
            x, nrow = traversal_images(state, traverse, seed=seed)
        else:  # the latents the export's OnnxModel.sample draws at this seed, so both give one grid
            x = run_generator(state, draw_latent([s.to_json() for s in state.latent_specs], n, seed))
        info = state.data_info
        value_range = tuple(info["value_range"])
        kind = info.get("kind", "image")
        vocab, level = info.get("vocab"), info.get("level", "char")
        res = SampleResult(x, "pytorch", str(state.device), None)
    if kind == "sequence" and vocab:
        if traverse is not None:
            raise ExportError("--traverse draws image grids; a sequence model's samples are text")
        ids = res.samples.argmax(-1) if res.samples.dtype.kind == "f" else res.samples  # one-hots from a run
        res.texts = decode_tokens(ids, vocab, level)
        if out is not None:
            _check_text_path(Path(out), force)
            try:
                Path(out).parent.mkdir(parents=True, exist_ok=True)  # as a grid's folders are made
                write_text_atomic(Path(out), "".join(t + "\n" for t in res.texts))
            except OSError as e:
                raise ExportError(f"could not write {str(out)!r}: {e.strerror or e}") from None
            res.out = Path(out)
        return res
    out = out if out is not None else default_out
    if out is not None:
        points = kind == "points" and res.samples.ndim == 2 and res.samples.shape[1] == 2 and traverse is None
        if not points and (kind != "image" or res.samples.ndim != 4):
            raise ExportError("this model does not produce images or 2-D points; a PNG needs one or the other")
        try:
            _check_grid_path(Path(out))
            picture = {**info, "kind": "points" if points else "image", "value_range": value_range}
            res.out = save_picture(res.samples, out, picture, nrow=nrow,
                                   title=f"{len(res.samples)} samples, seed {seed} ({res.backend})")
        except (OSError, ValueError) as e:
            raise ExportError(f"could not write {str(out)!r}: {getattr(e, 'strerror', None) or e}") from None
    return res
