"""Text quality: validity, uniqueness, novelty, BLEU-4 against held-out data and self-BLEU-4.

- validity: the share of samples the grammar parses (``cfg``) or that are dictionary words (``words``);
- uniqueness: distinct samples / samples;
- novelty: the share of samples not in the training set;
- BLEU-4 (Papineni et al. 2002) of each sample against the whole held-out set as references, averaged over
  samples (as in Texygen, Zhu et al. 2018): how much the samples' n-grams look like real ones;
- self-BLEU-4: each sample against the other samples: high means the samples repeat each other.

BLEU uses smoothing method 1 of Chen & Cherry (2014; an epsilon of 0.1 for an order with no match), and
orders longer than the sample are left out of its geometric mean, so short words still score.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from gancore.components import Metric
from gancore.sampling import decode_tokens
from gancore_plugins.gumbel_text import grammar

MAX_N = 4
SMOOTH = 0.1


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


class References:
    """A reference set for BLEU: per order, each n-gram's highest count in any one reference (the clip), the
    second highest and which reference holds the highest (so one reference can be left out: self-BLEU)."""

    def __init__(self, refs: Sequence[Sequence[str]]) -> None:
        self.lengths = sorted({len(r) for r in refs})
        self.lengths_of = [len(r) for r in refs]
        self.top: list[dict[tuple[str, ...], tuple[int, int, int]]] = []
        for n in range(1, MAX_N + 1):
            top: dict[tuple[str, ...], tuple[int, int, int]] = {}
            for i, r in enumerate(refs):
                for g, c in _ngrams(r, n).items():
                    best, holder, second = top.get(g, (0, -1, 0))
                    if c > best:
                        top[g] = (c, i, best)
                    elif c > second:
                        top[g] = (best, holder, c)
            self.top.append(top)

    def clip(self, n: int, gram: tuple[str, ...], skip: int = -1) -> int:
        best, holder, second = self.top[n - 1].get(gram, (0, -1, 0))
        return second if holder == skip else best

    def closest_length(self, length: int, skip: int = -1) -> int:
        lengths = self.lengths if skip < 0 else sorted(set(self.lengths_of[:skip] + self.lengths_of[skip + 1:]))
        return min(lengths, key=lambda r: (abs(r - length), r))


def sentence_bleu(hyp: Sequence[str], refs: References, skip: int = -1) -> float:
    """BLEU-4 of one tokenised sample against ``refs`` (leaving reference ``skip`` out)."""
    if not hyp:
        return 0.0
    logs = []
    for n in range(1, min(MAX_N, len(hyp)) + 1):
        grams = _ngrams(hyp, n)
        matched = sum(min(c, refs.clip(n, g, skip)) for g, c in grams.items())
        logs.append(math.log((matched or SMOOTH) / sum(grams.values())))
    r = refs.closest_length(len(hyp), skip)
    bp = 1.0 if len(hyp) > r else math.exp(1 - r / len(hyp))
    return bp * math.exp(sum(logs) / len(logs))


def bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Mean BLEU-4 of ``hyps``, each against all of ``refs``."""
    index = References(refs)
    return sum(sentence_bleu(h, index) for h in hyps) / max(len(hyps), 1)


def self_bleu(hyps: Sequence[Sequence[str]]) -> float:
    """Mean BLEU-4 of each of ``hyps`` against all the others."""
    if len(hyps) < 2:
        return 0.0
    index = References(hyps)
    return sum(sentence_bleu(h, index, skip=i) for i, h in enumerate(hyps)) / len(hyps)


def validity(strings: Sequence[str], check: str | None, dictionary: set[str] | None = None) -> float | None:
    """The share of ``strings`` the grammar parses (``cfg``) or found in ``dictionary`` (``words``); None for
    data with no notion of validity."""
    if check == "cfg":
        return sum(grammar.is_valid(s) for s in strings) / max(len(strings), 1)
    if check == "words" and dictionary is not None:
        return sum(s in dictionary for s in strings) / max(len(strings), 1)
    return None


def tokens(s: str, level: str) -> list[str]:
    return s.split() if level == "word" else list(s)


def text_scores(samples: Sequence[str], train: set[str], held_out: Sequence[str], level: str, check: str | None,
                dictionary: set[str] | None = None, n_bleu: int = 1000) -> dict[str, float]:
    """Every figure of the module docstring for ``samples``; BLEU on the first ``n_bleu`` of them."""
    out: dict[str, float] = {}
    valid = validity(samples, check, dictionary)
    if valid is not None:
        out["validity"] = valid
    out["uniqueness"] = len(set(samples)) / max(len(samples), 1)
    out["novelty"] = sum(s not in train for s in samples) / max(len(samples), 1)
    hyps = [tokens(s, level) for s in samples[:n_bleu]]
    out["bleu4"] = bleu(hyps, [tokens(s, level) for s in held_out])
    out["self_bleu4"] = self_bleu(hyps)
    return out


def ids_of(x: torch.Tensor) -> torch.Tensor:
    """Token ids from a generator's output: ids already, or (one-hot) scores over the vocabulary."""
    return x.argmax(-1) if x.is_floating_point() else x


class TextQuality(Metric):
    """The figures above on 10k samples, with the same figures for held-out data in the real-data column."""

    n = 10000

    def applies(self, state: Any) -> bool:
        return state.data_info.get("kind") == "sequence" and bool(state.data_info.get("vocab"))

    def __call__(self, state: Any) -> dict[str, float]:
        from gancore_plugins.gumbel_text.data import reference_sets

        info = state.data_info
        level = info.get("level", "char")
        train, held_out, dictionary = reference_sets(info)
        samples = decode_tokens(ids_of(state.generate(self.n, seed=0)).tolist(), info["vocab"], level)
        out = text_scores(samples, train, held_out, level, info.get("validity"), dictionary)
        half = len(held_out) // 2  # real data scored like samples: one half of held-out against the other
        real = text_scores(held_out[:half], train, held_out[half:], level, info.get("validity"), dictionary)
        out.update({f"{k}_ceiling": v for k, v in real.items()})
        return out
