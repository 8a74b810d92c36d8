"""Sequence datasets: ``cfg`` (the arithmetic grammar), ``words`` (an English word list) and ``text`` (a file).

Every sequence is stored as T = ``max_len + 1`` int64 token ids: its tokens, then the end token ``<eos>``
(id 0) repeated to the end. The vocabulary (id -> token) travels in ``TensorData.vocab``, so the run, its
checkpoints and its ONNX export can all decode without the data. ``TensorData.info`` says how to read a
sequence back (``level``: characters or words) and which validity check fits (``validity``).
"""

from __future__ import annotations

import codecs
import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gancore.components import TensorData
from gancore.errors import DataError
from gancore.sampling import decode_tokens
from gancore_plugins.gumbel_text import grammar

EOS = "<eos>"
DICT_PATH = Path("/usr/share/dict/american-english")


def encode(seqs: Sequence[Sequence[str]], vocab: Sequence[str], length: int) -> torch.Tensor:
    """Token sequences -> N x ``length`` ids, padded with the end token (id 0)."""
    index = {tok: i for i, tok in enumerate(vocab)}
    out = torch.zeros(len(seqs), length, dtype=torch.int64)
    for row, seq in enumerate(seqs):
        out[row, : len(seq)] = torch.tensor([index[t] for t in seq], dtype=torch.int64)
    return out


def _split(items: list[str], held_out: float, seed: int, train: bool) -> list[str]:
    """A seeded shuffle, then the first ``1 - held_out`` for training and the rest held out."""
    items = list(items)
    random.Random(seed).shuffle(items)
    cut = len(items) - max(1, round(held_out * len(items)))
    return items[:cut] if train else items[cut:]


def _tensor_data(strings: list[str], vocab: list[str], max_len: int, level: str, **info: object) -> TensorData:
    seqs = [s.split() if level == "word" else list(s) for s in strings]
    return TensorData(x=encode(seqs, vocab, max_len + 1), kind="sequence", value_range=(0.0, float(len(vocab) - 1)),
                      vocab=vocab, info={"level": level, "max_len": max_len, **info})


# ------------------------------------------------------------------------------------------------ cfg


@dataclass(kw_only=True)
class GrammarConfig:
    max_len: int = 15  # symbols per expression, at most
    size: int = 50000  # training expressions (the held-out set is a tenth of this, drawn apart)
    seed: int = 0  # of the derivations: the same seed gives the same data on every machine

    def __post_init__(self) -> None:
        if self.max_len < 1 or self.size < 1:
            raise ValueError(f"max_len and size must be >= 1, got {self.max_len} and {self.size}")


def cfg_dataset(cfg: GrammarConfig, *, root: str = "", train: bool = True) -> TensorData:
    """Random derivations of S -> S+S | S-S | S*S | S/S | (S) | x | y; held-out ones come from another stream."""
    rng = random.Random(cfg.seed * 2 + (0 if train else 1))
    n = cfg.size if train else max(1, cfg.size // 10)
    strings = [grammar.sample(rng, cfg.max_len) for _ in range(n)]
    return _tensor_data(strings, [EOS, *grammar.SYMBOLS], cfg.max_len, "char", validity="cfg", dataset="cfg",
                        options=dataclasses.asdict(cfg))


# ------------------------------------------------------------------------------------------------ words


@dataclass(kw_only=True)
class WordsConfig:
    max_len: int = 12  # letters per word, at most
    held_out: float = 0.1  # share of the words kept out of training
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {self.max_len}")
        if not 0 < self.held_out < 1:
            raise ValueError(f"held_out must be in (0, 1), got {self.held_out}")


def dictionary(path: Path | None = None) -> list[str]:
    """The lower-case, letters-only entries of the word list (no names, no possessives)."""
    path = path or DICT_PATH
    if not path.exists():
        raise DataError(f"the word list {path} is missing; install the Debian package wamerican "
                        f"(apt-get install wamerican), or pass --data-dir with a folder holding american-english")
    words = {w for w in path.read_text(encoding="utf-8", errors="replace").split() if w.isascii() and w.isalpha()
             and w.islower()}
    return sorted(words)


def words_dataset(cfg: WordsConfig, *, root: str = "", train: bool = True) -> TensorData:
    """English words from /usr/share/dict/american-english, character level, split into training and held-out."""
    path = Path(root) / "american-english" if root else None
    words = [w for w in dictionary(path) if len(w) <= cfg.max_len]
    vocab = [EOS, *"abcdefghijklmnopqrstuvwxyz"]
    return _tensor_data(_split(words, cfg.held_out, cfg.seed, train), vocab, cfg.max_len, "char",
                        validity="words", dataset="words", options={**dataclasses.asdict(cfg), "root": root})


# ------------------------------------------------------------------------------------------------ text:PATH


@dataclass(kw_only=True)
class TextConfig:
    # one sequence per line (``--dataset text:PATH``); a file path, so saved absolute (see gancore.resolve)
    path: str = field(default="", metadata={"path": True})
    level: str = "char"  # char or word tokens
    max_len: int = 0  # tokens per sequence, at most; longer lines are dropped (0: the longest line)
    held_out: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.level not in ("char", "word"):
            raise ValueError(f"level must be char or word, got {self.level!r}")
        if self.max_len < 0:
            raise ValueError(f"max_len must be >= 0, got {self.max_len}")
        if not 0 < self.held_out < 1:
            raise ValueError(f"held_out must be in (0, 1), got {self.held_out}")


LONGEST_DEFAULT = 256  # tokens: the most data.max_len's default (the longest line) may be without being asked for


def _default_length(lines: list[str], size: Callable[[str], int], path: Path, level: str) -> int:
    """The longest line's length, which every sequence is padded to; refused past :data:`LONGEST_DEFAULT`, since
    one outlier line would make every step that long (minutes and gigabytes per step), without a word."""
    sizes = [size(s) for s in lines]
    if not sizes or max(sizes) <= LONGEST_DEFAULT:
        return max(sizes, default=0)
    longest = max(range(len(sizes)), key=sizes.__getitem__)
    ordered = sorted(sizes)
    most = ordered[int(0.99 * (len(ordered) - 1))]  # what 99% of the lines fit in
    unit = "words" if level == "word" else "characters"
    slow = f"; past {LONGEST_DEFAULT} every step is slow" if most > LONGEST_DEFAULT else ""
    raise DataError(f"{str(path)!r}: its longest line (non-empty line {longest + 1}) has {sizes[longest]} {unit}, and "
                    f"with data.max_len unset every sequence is padded to the longest; set --set data.max_len=N to "
                    f"drop longer lines (N={most} keeps 99% of them{slow}), or to that length to keep it")


def text_dataset(cfg: TextConfig, *, root: str = "", train: bool = True) -> TensorData:
    """A user's file, one sequence per line, at character or word level; the vocabulary is the training lines'."""
    if not cfg.path:
        raise DataError("dataset text needs a file: --dataset text:PATH (one sequence per line)")
    path = Path(cfg.path)
    if not path.is_file():
        raise DataError(f"text file {str(path)!r} does not exist or is not a file; pass --dataset text:PATH "
                        f"with a file holding one sequence per line")
    raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # Windows editors' mark, else a token of its own
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # decoding with replacement would train on U+FFFD in place of the letters
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{str(path)!r} is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); re-encode it, "
                        f"e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8") from None
    # one sequence per line, at \n (\r\n, \r): splitlines() would also cut at a form feed or U+2028 in a line
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [" ".join(line.split()) for line in lines if line]
    if cfg.level == "word" and (hit := next((i for i, s in enumerate(lines) if EOS in s.split()), None)) is not None:
        raise DataError(f"{str(path)!r} uses the word {EOS} (non-empty line {hit + 1}), the end token gancore adds to "
                        f"every line itself; remove it, e.g. sed -E 's/ ?<eos>//g' FILE > FILE.clean, or rename it")
    def size(s: str) -> int:
        return len(s.split()) if cfg.level == "word" else len(s)
    max_len = cfg.max_len or _default_length(lines, size, path, cfg.level)
    lines = [s for s in lines if size(s) <= max_len]
    if len(lines) < 2:
        raise DataError(f"{str(path)!r} has {len(lines)} usable line(s) (non-empty, at most {max_len} tokens); "
                        f"a text dataset needs at least 2")
    train_lines = _split(lines, cfg.held_out, cfg.seed, True)
    vocab = sorted({t for s in train_lines for t in (s.split() if cfg.level == "word" else s)})
    chosen = train_lines if train else _split(lines, cfg.held_out, cfg.seed, False)
    known = set(vocab)
    chosen = [s for s in chosen if all(t in known for t in (s.split() if cfg.level == "word" else s))]
    if not chosen:
        raise DataError(f"no held-out line of {str(path)!r} uses only tokens seen in training; add more lines")
    return _tensor_data(chosen, [EOS, *vocab], max_len, cfg.level, dataset="text",
                        options={**dataclasses.asdict(cfg), "path": str(path.resolve())})


BUILDERS = {"cfg": (GrammarConfig, cfg_dataset), "words": (WordsConfig, words_dataset),
            "text": (TextConfig, text_dataset)}


def reference_sets(info: dict[str, Any]) -> tuple[set[str], list[str], set[str] | None]:
    """The training strings (a set), the held-out strings and, for ``words``, the dictionary, rebuilt from a
    run's or an export's data description (so an ONNX file can be scored where its data can be made)."""
    name, options = info.get("dataset"), dict(info.get("options") or {})
    if name not in BUILDERS:
        raise DataError(f"cannot rebuild the reference data of dataset {name!r}; text metrics need cfg, words "
                        f"or text data")
    config, build = BUILDERS[name]
    root = options.pop("root", "")
    cfg = config(**options)
    level = info.get("level", "char")
    train = set(decode_tokens(build(cfg, root=root, train=True).x.tolist(), info["vocab"], level))
    held = decode_tokens(build(cfg, root=root, train=False).x.tolist(), info["vocab"], level)
    words = set(dictionary(Path(root) / "american-english" if root else None)) if name == "words" else None
    return train, held, words
