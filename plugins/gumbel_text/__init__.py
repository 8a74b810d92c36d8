"""gumbel-text: a GAN for discrete sequences through the Gumbel-softmax relaxation.

G (a GRU) writes T tokens; each step's distribution is relaxed with Gumbel-softmax at an annealed
temperature (straight-through optional) so that D, a CNN over (soft) one-hot sequences, can pass gradients
back through the samples (Jang et al. 2016; Kusner & Hernández-Lobato 2016). Registers the ``gumbel-text``
generator, discriminator, sampler (``noise`` and the uniform ``gumbel`` input) and loss; the datasets
``cfg`` (an arithmetic grammar, parser included), ``words`` (wamerican's word list) and ``text``
(``--dataset text:PATH``); the ``text-quality`` metric (validity, uniqueness, novelty, BLEU-4, self-BLEU-4);
the ``gumbel-text`` recipe; samples as text during training; and the export of G as
(noise, gumbel) -> (ids, logits) with the vocabulary in the model's metadata.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from gancore.components import ExportModel
from gancore.hookspecs import Register
from gancore.plugins import hookimpl
from gancore.progress import Progress
from gancore.sampling import decode_tokens, eval_mode
from gancore_plugins.gumbel_text import data, loss, metrics, nets


@hookimpl
def gan_register_generators(register: Register) -> None:
    register("gumbel-text", nets.build_generator, config=nets.GeneratorConfig)


@hookimpl
def gan_register_discriminators(register: Register) -> None:
    register("gumbel-text", nets.build_discriminator, config=nets.DiscriminatorConfig)


@hookimpl
def gan_register_samplers(register: Register) -> None:
    register("gumbel-text", nets.TextSampler, config=nets.SamplerConfig)


@hookimpl
def gan_register_losses(register: Register) -> None:
    register("gumbel-text", loss.TextGANLoss, config=loss.TextLossConfig,
             description="relativistic (or non-saturating) GAN on relaxed one-hots; optional MLE pre-training")


@hookimpl
def gan_register_datasets(register: Register) -> None:
    register("cfg", data.cfg_dataset, config=data.GrammarConfig)
    register("words", data.words_dataset, config=data.WordsConfig)
    register("text", data.text_dataset, config=data.TextConfig)


@hookimpl
def gan_register_metrics(register: Register) -> None:
    register("text-quality", metrics.TextQuality,
             description="validity, uniqueness, novelty, BLEU-4 against held-out data and self-BLEU-4 of 10k samples")


def recipe() -> dict[str, Any]:
    """The arithmetic grammar; a 256-unit GRU, MLE pre-trained for 1000 steps, then 2000 adversarial steps against
    a CNN (relativistic loss, straight-through Gumbel-softmax, temperature 1 -> 0.1, the NLL kept in G's loss)."""
    return {
        "data": {"name": "cfg"},
        "sampler": {"name": "gumbel-text"},
        "generator": {"name": "gumbel-text", "straight_through": True},
        "discriminator": {"name": "gumbel-text"},
        "loss": {"name": "gumbel-text", "pretrain_steps": 1000, "mle_weight": 1.0},
        "train": {"steps": 2000, "batch_size": 64, "lr_g": 1e-4, "lr_d": 1e-4, "beta1": 0.5},
    }


@hookimpl
def gan_register_recipes(register: Register) -> None:
    register("gumbel-text", recipe)


def _generator(state: Any) -> nets.TextGenerator | None:
    g = state.nets.generator
    return g if isinstance(g, nets.TextGenerator) else None


@hookimpl
def gan_train_start(state: Any) -> None:
    """MLE pre-training of G (``loss.pretrain_steps``), on a new run only, with its own Adam."""
    g = _generator(state)
    if g is None or not isinstance(state.loss, loss.TextGANLoss) or state.step > 0:
        return
    cfg = state.loss.cfg
    if not cfg.pretrain_steps:
        return
    opt = torch.optim.Adam(g.parameters(), lr=cfg.pretrain_lr)
    bar = Progress(0, cfg.pretrain_steps, state.progress, label="MLE pre-training")
    batch_size = state.config["train"]["batch_size"]
    start = time.perf_counter()
    for i in range(cfg.pretrain_steps):
        ids = state.next_batch(batch_size).x
        noise = state.sampler.sample(len(ids), state.latent_gen, state.device)["noise"]
        value = loss.nll(g, ids, noise)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if (i + 1) % state.config["train"]["log_every"] == 0 or i + 1 == cfg.pretrain_steps:
            took = time.perf_counter() - start
            bar.update(i + 1, {"nll": value.item(), "images_per_s": (i + 1) * batch_size / took},
                       took / (i + 1) * (cfg.pretrain_steps - i - 1))
    bar.close()


@hookimpl
def gan_train_pictures(state: Any, folder: Path) -> list[Path] | None:
    """G's samples of the fixed latent, as text, one per line."""
    g = _generator(state)
    if g is None:
        return None
    with eval_mode(g):
        ids, _ = g.decode(**state.fixed_latent)
    info = state.data_info
    path = folder / f"step-{state.step:07d}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(decode_tokens(ids.tolist(), info["vocab"], info.get("level", "char"))) + "\n")
    return [path]


@hookimpl
def gan_export_extra(state: Any) -> dict[str, ExportModel] | None:
    """G as (noise, gumbel) -> (ids, logits), replacing the default generator export."""
    g = _generator(state)
    if g is None:
        return None
    info = state.data_info
    output = {"name": "ids", "shape": info["shape"], "dtype": "int64", "value_range": info["value_range"],
              "layout": "tokens", "level": info.get("level", "char"), "eos": 0}
    return {"generator": ExportModel(
        module=nets.TextExport(g).eval(), inputs=list(state.latent_specs), outputs=["ids", "logits"],
        kind="generator",
        metadata={"output": output, "vocab": info["vocab"], "data": info, "data_name": state.config["data"]["name"],
                  "note": "ids: batch x T token ids, vocab[id]; a sequence ends at its first id 0 (<eos>). "
                          "gumbel: U(0,1) noise, one per token and vocabulary entry (the Gumbel-max draw); "
                          "logits: batch x T x vocabulary, each step's scores given the tokens drawn before it."})}
