"""Image metrics in the Fashion-MNIST evaluator's feature space (no Inception weights needed).

- Frechet distance between Gaussians fitted to real and generated features (as FID does with Inception);
- classifier score: exp(E_x KL(p(y|x) || p(y))), the Inception Score with our classifier;
- class coverage: classes holding at least 1/(2K) of the samples, and the KL of the class histogram to uniform;
- precision and recall of k-NN manifolds (Kynkaanniemi et al. 2019, k = 3).

Each figure is printed beside its real-data ceiling: train-vs-test Frechet distance, test-set classifier score.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from gancore.components import Metric


def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), with the trace of the root from eigenvalues of S1 S2."""
    f1, f2 = f1.double(), f2.double()
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)
    eig = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0)  # S1 S2 is similar to a PSD matrix: real, >= 0
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum())


def classifier_score(probs: Tensor) -> float:
    p = probs.double().clamp(min=1e-12)
    marginal = p.mean(0, keepdim=True)
    return float((p * (p.log() - marginal.log())).sum(1).mean().exp())


def coverage(probs: Tensor) -> dict[str, float]:
    k = probs.shape[1]
    hist = torch.bincount(probs.argmax(1), minlength=k).double() / len(probs)
    nz = hist[hist > 0]
    return {"classes_covered": float((hist >= 1 / (2 * k)).sum()), "classes": float(k),
            "class_kl_uniform": float((nz * (nz * k).log()).sum())}


def _radii(f: Tensor, k: int) -> Tensor:
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values  # the 0th neighbour is the point itself


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Share of fakes inside the real manifold (precision) and of reals inside the fake one (recall)."""
    real, fake = real.double(), fake.double()
    r_real, r_fake = _radii(real, k), _radii(fake, k)
    d = torch.cdist(fake, real)  # fakes x reals
    precision = (d <= r_real[None, :]).any(1).double().mean()
    recall = (r_fake[None, :] >= d.T).any(1).double().mean()
    return float(precision), float(recall)


@lru_cache(maxsize=2)
def reference(n: int, root: str = "") -> dict[str, Any]:
    """Evaluator features of n test images and n training images, read from ``root`` (a run's ``data.dir``; ""
    for the default places), and the real-data ceilings (cached)."""
    from gancore.builtin.datasets import ImageConfig, fashion_mnist
    from gancore.builtin.evaluator import embed

    g = torch.Generator().manual_seed(0)
    test, train = fashion_mnist(ImageConfig(), root=root, train=False), fashion_mnist(ImageConfig(), root=root)
    ft, pt = embed(test.x[torch.randperm(len(test), generator=g)[:n]])
    fr, _ = embed(train.x[torch.randperm(len(train), generator=g)[:n]])
    return {"features": ft, "ceiling_frechet": frechet_distance(fr, ft), "ceiling_score": classifier_score(pt),
            "ceiling_pr": precision_recall(ft, fr)}


class FashionQuality(Metric):
    """Frechet distance, classifier score, class coverage, precision/recall against Fashion-MNIST test images."""

    samples = 5000

    def applies(self, state: Any) -> bool:
        info = state.data_info
        return info.get("dataset") == "FashionMNIST" and info.get("kind") == "image" and info["shape"][0] == 1

    def __call__(self, state: Any) -> dict[str, float]:
        import torch.nn.functional as F

        from gancore.builtin.evaluator import embed

        ref = reference(self.samples, str(state.config["data"].get("dir") or ""))  # where the run read its data
        x = state.generate(self.samples, seed=0).cpu()
        if x.shape[-1] != 28:  # runs trained at 32 or 64 px
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
        f, p = embed(x)
        precision, recall = precision_recall(ref["features"], f)
        return {"frechet": frechet_distance(f, ref["features"]), "frechet_ceiling": ref["ceiling_frechet"],
                "score": classifier_score(p), "score_ceiling": ref["ceiling_score"], **coverage(p),
                "precision": precision, "recall": recall, "precision_ceiling": ref["ceiling_pr"][0],
                "recall_ceiling": ref["ceiling_pr"][1]}
