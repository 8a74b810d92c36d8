"""infogan: InfoGAN (Chen et al. 2016), interpretable codes learnt by maximising their mutual information
with the generated image.

Registers the ``infogan`` sampler (noise + categorical + continuous codes), generator and discriminator
(with the Q head sharing D's body), the ``mutual-info`` regularizer, the ``infogan-codes`` metric (Q's
clustering of real test images), the ``infogan`` recipe, latent traversal pictures during training, and
the Q head's export as ``q_head.onnx`` (image -> code logits and continuous means).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gancore.components import ExportModel, LatentSpec
from gancore.hookspecs import Register
from gancore.plugins import hookimpl
from gancore.sampling import traverse
from gancore_plugins.infogan import latent, metrics, mi, nets


def _is_infogan(state: Any) -> bool:
    return isinstance(state.nets.discriminator, nets.Discriminator)


@hookimpl
def gan_register_samplers(register: Register) -> None:
    register("infogan", latent.InfoSampler, config=latent.InfoLatentConfig,
             description="noise + categorical codes + continuous codes, as named inputs")


@hookimpl
def gan_register_generators(register: Register) -> None:
    register("infogan", nets.build_generator, config=nets.GeneratorConfig)


@hookimpl
def gan_register_discriminators(register: Register) -> None:
    register("infogan", nets.build_discriminator, config=nets.DiscriminatorConfig)


@hookimpl
def gan_register_regularizers(register: Register) -> None:
    register("mutual-info", mi.MutualInfo, config=mi.MutualInfoConfig,
             description="InfoGAN's lower bound on I(codes; G(z, codes)), read back by the Q head")


@hookimpl
def gan_register_metrics(register: Register) -> None:
    register("infogan-codes", metrics.CodeAccuracy,
             description="Q's categorical code on real test images: Hungarian-matched accuracy and NMI")


def recipe() -> dict[str, Any]:
    """InfoGAN on Fashion-MNIST with the paper's MNIST latent (62 noise, one 10-way code, 2 continuous)."""
    return {
        "data": {"name": "fashion-mnist"},
        "sampler": {"name": "infogan", "noise": 62, "categorical": [10], "continuous": 2},
        # width 32 rather than the paper's 64: about twice as fast on a CPU. The paper's D (discriminator.width=64)
        # draws better samples (Frechet distance 19.3 against 25.5 on 3 seeds) but its Q clusters worse (accuracy
        # 0.600 against 0.633), bench/infogan.py.
        "generator": {"name": "infogan", "width": 32},
        "discriminator": {"name": "infogan", "width": 32},
        "loss": {"name": "nonsaturating"},
        # lambda_real: Q also clusters the real batch (CatGAN/IMSAT-style); lambda_aug: Q reads a real image and
        # a copy shifted by up to 2 pixels alike (IMSAT). Together they moved the mean code accuracy on real
        # images of 3 seeds from 0.591 (lambda_real 0.3 alone) to 0.640, though the seeds spread by 0.065, at
        # some cost in sample quality (bench/infogan.py).
        # lambda_real=0 lambda_aug=0 is the paper's objective.
        "regularizers": {"mutual-info": {"lambda_cat": 1.0, "lambda_cont": 1.0, "lambda_real": 1.0,
                                         "lambda_aug": 1.0}},
        # The paper's rates: G learns faster than D (1e-3 against 2e-4). ema: sample, traverse and export an
        # average of G's weights over about the last 1000 steps: on 3 seeds, Frechet distance 32.4 -> 24.1 and
        # traversal row purity 0.76 -> 0.80 against the last step's weights (bench/infogan.py).
        "train": {"steps": 2000, "batch_size": 64, "lr_g": 1e-3, "lr_d": 2e-4, "beta1": 0.5, "ema": 0.999},
    }


@hookimpl
def gan_register_recipes(register: Register) -> None:
    register("infogan", recipe)


@hookimpl
def gan_train_pictures(state: Any, folder: Path) -> list[Path] | None:
    """One traversal grid per continuous code: rows are the categories, columns sweep the code from -2 to 2."""
    if not _is_infogan(state):
        return None
    n_cont = state.nets.discriminator.n_continuous
    return [traverse(state, folder / f"traverse-c{i}-step-{state.step:07d}.png", code=i)
            for i in range(max(n_cont, 1))]


NOTES = {"categorical_logits": "categorical_logits: batch x codes x classes (argmax over the last axis gives each "
                                "code)",
         "continuous_mean": "continuous_mean: batch x continuous codes"}


@hookimpl
def gan_export_extra(state: Any) -> dict[str, ExportModel] | None:
    """Q as its own model, so users can cluster images with onnxruntime alone."""
    if not _is_infogan(state):
        return None
    d = state.nets.discriminator
    data = state.data_info
    lo, hi = data["value_range"]
    outputs = (["categorical_logits"] if d.q_cat is not None else []) + \
              (["continuous_mean"] if d.q_cont is not None else [])
    return {"q_head": ExportModel(
        module=nets.QModel(d), inputs=[LatentSpec("images", tuple(data["shape"]), "uniform", low=lo, high=hi)],
        outputs=outputs, kind="q_head",
        metadata={"categories": list(d.categories), "continuous": d.n_continuous,
                  "note": "; ".join(NOTES[o] for o in outputs)})}
