"""The n+1-class objective (Salimans et al. 2016, sec. 5; Odena 2016): D is a K-class classifier whose
implicit fake class has logit 0, so its real/fake logit is logsumexp of the K logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from gancore.builtin.losses import FeatureMatchingConfig, match_features, nonsaturating_d_loss
from gancore.components import Loss, Losses, Step, real_logit
from gancore.errors import ConfigError


@dataclass(kw_only=True)
class SemiSupervisedConfig(FeatureMatchingConfig):  # real_label: one-sided smoothing of the real/fake part
    generator: str = "feature-matching"  # or nonsaturating: -log D(G(z))
    norm: str = "l1"  # feature matching distance: l1 (mean abs, as the paper's code) or l2 (squared, as its text)
    unlabelled_weight: float = 0.5  # the paper's code: 0.5 on each unsupervised term

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.generator not in ("feature-matching", "nonsaturating"):
            raise ValueError(f"generator must be feature-matching or nonsaturating, got {self.generator!r}")
        if self.unlabelled_weight < 0:
            raise ValueError("unlabelled_weight must be >= 0")


def unsupervised_loss(real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    """-log D(x) on real and -log(1 - D(G(z))) on generated class logits; real targets smoothed to ``real_label``."""
    return nonsaturating_d_loss(real_logit(real), real_logit(fake), real_label)


class SemiSupervised(Loss):
    """Supervised cross-entropy on the labelled batch plus the real/fake game on unlabelled and generated ones."""

    def __init__(self, cfg: SemiSupervisedConfig) -> None:
        self.cfg = cfg

    def discriminator_loss(self, step: Step) -> Losses:
        b = step.batch
        if b.x_labelled is None or b.y_labelled is None:
            raise ConfigError("loss ssgan needs labelled examples: set data.labels_per_class (e.g. "
                              "--set data.labels_per_class=10)")
        step.d_together({"d_labelled": b.x_labelled, "d_real": step.real, "d_fake": step.fake})
        labelled = step.cached("d_labelled", lambda: step.run("discriminator", b.x_labelled))
        unl = unsupervised_loss(step.d_real().logits, step.d_fake().logits, self.cfg.real_label)
        return {"d_sup": F.cross_entropy(labelled.logits.float(), b.y_labelled),
                "d_unsup": self.cfg.unlabelled_weight * unl}

    def generator_loss(self, step: Step) -> Losses:
        if self.cfg.generator == "nonsaturating":
            return {"g_adv": F.softplus(-real_logit(step.d_fake().logits)).mean()}
        step.d_together({"d_real": step.real, "d_fake": step.fake})
        return {"g_fm": match_features(step, self.cfg.norm)}
