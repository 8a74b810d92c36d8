"""ssgan: the semi-supervised GAN of Salimans et al. 2016 ("Improved Techniques for Training GANs", sec. 5).

D is a K-class classifier with an implicit (K+1)-th fake class; it learns from a few labelled images, the
unlabelled rest and G's samples. G is trained by feature matching. Registers the ``ssgan`` generator, the
``ssgan`` (MLP) and ``ssgan-conv`` discriminators, the ``ssgan`` loss, the ``ssgan-accuracy`` metric (D on the
test set), the ``ssgan`` recipe (10 labels per class), and D's export as ``classifier.onnx`` (images -> class
probabilities and P(real)).

The other Improved Techniques are core components any plugin can switch on: the ``feature-matching`` loss,
``MinibatchDiscrimination`` and ``VirtualBatchNorm`` layers (``gancore.layers``; here
``discriminator.minibatch_features`` and ``generator.norm=virtual``), one-sided label smoothing
(``loss.real_label``) and the ``historical-averaging`` regularizer.
"""

from __future__ import annotations

from typing import Any

from gancore.components import ExportModel, LatentSpec
from gancore.hookspecs import Register
from gancore.plugins import hookimpl
from gancore_plugins.ssgan import loss, metrics, nets


@hookimpl
def gan_register_generators(register: Register) -> None:
    register("ssgan", nets.build_generator, config=nets.GeneratorConfig)


@hookimpl
def gan_register_discriminators(register: Register) -> None:
    register("ssgan", nets.build_discriminator, config=nets.DiscriminatorConfig)
    register("ssgan-conv", nets.build_conv_discriminator, config=nets.ConvDiscriminatorConfig)


@hookimpl
def gan_register_losses(register: Register) -> None:
    register("ssgan", loss.SemiSupervised, config=loss.SemiSupervisedConfig,
             description="n+1 classes: cross-entropy on labelled data, real/fake on the rest; G by feature matching")


@hookimpl
def gan_register_metrics(register: Register) -> None:
    register("ssgan-accuracy", metrics.TestAccuracy, description="D as a K-class classifier on the test set")


def recipe() -> dict[str, Any]:
    """The paper's MNIST feature-matching model on Fashion-MNIST with 10 labels per class."""
    return {
        "data": {"name": "fashion-mnist", "labels_per_class": 10},
        "sampler": {"name": "uniform", "dim": 100},
        "generator": {"name": "ssgan"},
        "discriminator": {"name": "ssgan"},
        "loss": {"name": "ssgan"},
        # D also reads each real image and a copy shifted by up to 2 px alike (Pi-model). It raised the gain over
        # the supervised reference's best point at 10 / 50 / 100 labels per class from 3.2 / 0.6 / 0.2 to
        # 5.6 / 2.4 / 2.0 points (bench/ssgan.py, 3 label draws)
        "regularizers": {"consistency": {"weight": 1.0, "shift": 2}},
        # D is scored and exported through its weights' average over about the last 100 steps (G likewise): 0.2 to
        # 0.7 points above the last step's D at 3000 steps on CPU, about a point at 10000 to 15000 on a GPU, about
        # nothing at 20000 on CPU (bench/ssgan.py averages its reference alike and prints both readings)
        "train": {"steps": 3000, "batch_size": 100, "lr_g": 3e-3, "lr_d": 3e-3, "beta1": 0.5,
                  "ema": 0.99, "ema_nets": ["generator", "discriminator"]},
    }


@hookimpl
def gan_register_recipes(register: Register) -> None:
    register("ssgan", recipe)


@hookimpl
def gan_export_extra(state: Any) -> dict[str, ExportModel] | None:
    """D as an image classifier, so users can classify with onnxruntime alone."""
    d = state.nets.discriminator
    if not isinstance(d, nets.Discriminator | nets.ConvDiscriminator):
        return None
    data = state.data_info
    lo, hi = data["value_range"]
    return {"classifier": ExportModel(
        module=nets.Classifier(d), inputs=[LatentSpec("images", tuple(data["shape"]), "uniform", low=lo, high=hi)],
        outputs=["probabilities", "real_probability"], kind="classifier",
        metadata={"classes": data.get("classes"),
                  "note": "probabilities: batch x classes (softmax of D's class logits); real_probability: "
                          "D(x) = Z / (Z + 1) with Z the sum of exp(logits)"})}
