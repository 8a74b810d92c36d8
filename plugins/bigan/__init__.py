"""bigan: BiGAN / ALI (Donahue et al. 2016; Dumoulin et al. 2016), an encoder learnt adversarially.

D judges joint pairs: (x, E(x)) for data, (G(z), z) for samples; G and E are trained together to fool it,
so at the optimum E inverts G. Registers the ``bigan`` encoder (a network, switched on as
``[networks.encoder] group = "generator"``), discriminator and loss, the ``bigan-probes`` metric (1-NN and
linear-probe accuracy of E(x) beside raw pixels and a random encoder; reconstruction error), the ``bigan``
recipe, reconstruction pictures during training, and the encoder's export as ``encoder.onnx``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gancore.components import ExportModel, LatentSpec
from gancore.errors import NoHeldOutError
from gancore.hookspecs import Register
from gancore.images import save_grid
from gancore.plugins import hookimpl
from gancore.sampling import eval_mode
from gancore.state import load_data, to_device
from gancore_plugins.bigan import loss, nets, probes


@hookimpl
def gan_register_networks(register: Register) -> None:
    register("bigan", nets.build_encoder, config=nets.EncoderConfig)


@hookimpl
def gan_register_discriminators(register: Register) -> None:
    register("bigan", nets.build_discriminator, config=nets.DiscriminatorConfig)


@hookimpl
def gan_register_losses(register: Register) -> None:
    register("bigan", loss.BiGANLoss, config=loss.BiGANLossConfig,
             description="D on (x, E(x)) against (G(z), z); G and E trained together to fool it")


@hookimpl
def gan_register_metrics(register: Register) -> None:
    register("bigan-probes", probes.EncoderProbes,
             description="1-NN and linear-probe test accuracy of E(x), raw pixels and a random encoder; G(E(x)) MSE")


def recipe() -> dict[str, Any]:
    """BiGAN on Fashion-MNIST with the paper's prior, uniform(-1, 1)^50, and DCGAN-style networks, E with a dense
    layer of 1024 units before its head (as the paper's MNIST encoder; ``networks.encoder.hidden=0`` for a linear
    head); G and E also pay ALICE's explicit cycle, the mean squared error of G(E(x)) against x, at weight 3
    (``loss.cycle_x=0`` gives the paper's game alone), and E reads each real image and a copy moved by up to 4
    pixels alike (``loss.consistency=0`` drops it).
    """
    return {
        "data": {"name": "fashion-mnist"},
        "sampler": {"name": "uniform", "dim": 50},
        "generator": {"name": "dcgan", "width": 32},
        "discriminator": {"name": "bigan", "width": 32},
        "networks": {"encoder": {"name": "bigan", "group": "generator", "width": 32, "hidden": 1024}},
        # The consistency term raised the linear probe of E(x) on 3 seeds from 82.7% to 83.9% (bench/bigan.py)
        "loss": {"name": "bigan", "cycle_x": 3.0, "consistency": 1.0, "consistency_shift": 4},
        "train": {"steps": 3000, "batch_size": 64, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5},
    }


@hookimpl
def gan_register_recipes(register: Register) -> None:
    register("bigan", recipe)


def _encoder(state: Any) -> nets.Encoder | None:
    e = state.nets.extra.get("encoder")
    return e if isinstance(e, nets.Encoder) else None


def reconstructions(state: Any, n: int = 32) -> np.ndarray:
    """Rows of 8: real test images, then G(E(x)) of each, alternating; training images for a dataset without
    held-out ones (an image folder with no test/), rather than stopping the training that draws them."""
    e = _encoder(state)
    assert e is not None
    try:
        x = load_data(state.manager, state.config, train=False).x[:n]
    except NoHeldOutError:
        if getattr(state, "data", None) is None:
            raise
        x = state.data.x[:n].cpu()
    with eval_mode(e, state.nets.generator), torch.no_grad():
        xd = to_device(x, state.device, state.config)
        rec = state.nets.generator(**{e.name: e(xd)}).float().cpu()
    rows = [t for i in range(0, n, 8) for t in (x[i:i + 8], rec[i:i + 8])]
    return torch.cat(rows).numpy()


@hookimpl
def gan_train_pictures(state: Any, folder: Path) -> list[Path] | None:
    """Reconstructions G(E(x)) under real test images x (training images where the data holds none out)."""
    if _encoder(state) is None:
        return None
    path = folder / f"reconstructions-step-{state.step:07d}.png"
    save_grid(reconstructions(state), path, tuple(state.data_info["value_range"]), nrow=8)
    return [path]


@hookimpl
def gan_export_extra(state: Any) -> dict[str, ExportModel] | None:
    """E as its own model: images -> latent, with onnxruntime alone."""
    e = _encoder(state)
    if e is None:
        return None
    data = state.data_info
    lo, hi = data["value_range"]
    return {"encoder": ExportModel(
        module=e, inputs=[LatentSpec("images", tuple(data["shape"]), "uniform", low=lo, high=hi)],
        outputs=["latent"], kind="encoder",
        metadata={"latent": e.name, "note": f"latent: batch x {e.dim}, the generator's {e.name!r} input for x"})}
