"""How well Q's categorical code clusters real test images: accuracy after Hungarian matching, and NMI."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from gancore.components import Metric
from gancore.sampling import batched, eval_mode
from gancore.state import load_data, to_device


def contingency(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """counts[i, j]: examples put in cluster i whose true class is j."""
    k, c = int(pred.max()) + 1, int(labels.max()) + 1
    table = np.zeros((k, c), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    return table


def matched_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy under the best one-to-one map of clusters to classes (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(pred, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(pred))


def nmi(pred: np.ndarray, labels: np.ndarray) -> float:
    """Normalised mutual information, I(pred; labels) / mean(H(pred), H(labels)) (scikit-learn's default)."""
    p = contingency(pred, labels) / len(pred)
    pi, pj = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pi @ pj)[nz])).sum())
    h = [float(-(q[q > 0] * np.log(q[q > 0])).sum()) for q in (pi, pj)]
    return mi / ((h[0] + h[1]) / 2) if h[0] + h[1] > 0 else 1.0  # two single-cluster partitions agree


def read_codes(d: Any, x: Tensor, batch: int = 1000) -> Tensor:
    """Q's most likely class of categorical code 0 for each image in ``x``."""
    return batched(lambda xs: d.q(d.body(xs))["q_cat"][:, 0].argmax(1), x, batch)


class CodeAccuracy(Metric):
    """Categorical code 0 read by Q on the labelled test set: matched accuracy and NMI against the classes."""

    def applies(self, state: Any) -> bool:
        d = getattr(getattr(state, "nets", None), "discriminator", None)
        return getattr(d, "q_cat", None) is not None and state.data_info.get("classes") is not None

    def __call__(self, state: Any) -> dict[str, float]:
        test = load_data(state.manager, state.config, train=False)
        if test.y is None:
            return {}
        d = state.nets.discriminator
        with eval_mode(d):
            pred = read_codes(d, to_device(test.x, state.device, state.config)).numpy()
        labels = test.y.cpu().numpy()
        return {"accuracy": matched_accuracy(pred, labels), "nmi": nmi(pred, labels),
                "clusters_used": float(len(np.unique(pred)))}
