"""Hook specifications for gancore plugins, grouped by phase.

A plugin is a module (or object) with functions marked ``@gancore.hookimpl`` whose names match the
specs below, exposed through an entry point in the ``gancore`` group::

    [project.entry-points.gancore]
    myplugin = "my_package.gan_plugin"

Registration hooks run once, when the plugin manager starts; each receives a ``register`` callable
bound to the plugin, so the registries can name the plugin behind every component. The training
hooks run at phase boundaries of the loop (start, each log line, each checkpoint, end), never per
tensor op. In data-parallel training (``state.world``), ``gan_train_start`` and ``gan_train_end`` run in
every process; the log, picture and checkpoint hooks run in rank 0 alone, which writes the run folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from gancore.state import TrainState

hookspec = pluggy.HookspecMarker("gancore")

#: ``register(name, builder, *, config=None, description="")``: ``builder(config, **context)`` builds the
#: component from an instance of ``config`` (a keyword-only dataclass) or, without one, ``builder(**context)``.
Register = Callable[..., None]


# -------------------------------------------------------------------------------------------------
# Registration: components a plugin provides
# -------------------------------------------------------------------------------------------------


@hookspec
def gan_register_generators(register: Register) -> None:
    """Register generator networks.

    :param register: ``register(name, builder, config=Cfg)``. ``builder(cfg, latent=..., data=...)``
        returns a ``torch.nn.Module`` whose ``forward(**latent)`` takes the sampler's named latent
        tensors and returns a batch in the dataset's layout. ``latent`` is the sampler's tuple of
        :class:`gancore.components.LatentSpec`; ``data`` is a dict (``data["shape"]``, ``data["value_range"]``,
        ``data["kind"]``: ``image``, ``points`` or ``sequence``, and ``classes``, ``vocab`` where the data has them).
    """


@hookspec
def gan_register_discriminators(register: Register) -> None:
    """Register discriminator networks.

    :param register: ``register(name, builder, config=Cfg)``. ``builder(cfg, latent=..., data=...)``
        returns a ``torch.nn.Module`` whose ``forward(x, **cond)`` returns a
        :class:`gancore.components.DOut`: real/fake (or K-class) logits, optional intermediate
        features (for feature matching) and optional extra heads sharing the body (e.g. InfoGAN's Q).
    """


@hookspec
def gan_register_networks(register: Register) -> None:
    """Register extra networks trained beside G and D (e.g. BiGAN's encoder E(x) -> z).

    :param register: ``register(name, builder, config=Cfg)``; ``builder(cfg, latent=..., data=...)``
        returns a ``torch.nn.Module``. A run switches one on under ``[networks.<role>]`` with
        ``group = "generator"`` or ``"discriminator"``: the optimizer it is trained with.
    """


@hookspec
def gan_register_losses(register: Register) -> None:
    """Register adversarial objectives.

    :param register: ``register(name, builder, config=Cfg)``; ``builder(cfg)`` returns a
        :class:`gancore.components.Loss`, which computes the discriminator's and the generator's
        loss from a :class:`gancore.components.Step` (real batch, labels, latent, networks).
    """


@hookspec
def gan_register_regularizers(register: Register) -> None:
    """Register regularizers: extra terms added to the D and/or G loss (penalties, MI terms, ...).

    :param register: ``register(name, builder, config=Cfg)``; ``builder(cfg)`` returns a
        :class:`gancore.components.Regularizer`.
    """


@hookspec
def gan_register_samplers(register: Register) -> None:
    """Register latent samplers.

    :param register: ``register(name, builder, config=Cfg)``; ``builder(cfg)`` returns a
        :class:`gancore.components.Sampler`: named latent inputs with their shapes, dtypes and
        distributions (these become the exported model's inputs). A builder with a ``data`` keyword gets the
        dataset's description too, for inputs shaped by the data (Gumbel noise per token and vocabulary entry).
    """


@hookspec
def gan_register_datasets(register: Register) -> None:
    """Register datasets.

    :param register: ``register(name, builder, config=Cfg)``; ``builder(cfg, root=..., train=...)``
        returns a :class:`gancore.components.TensorData` (the whole set as tensors, so it can live on
        the device). Raise :class:`gancore.errors.DataError` saying how to get missing files. A builder
        that also takes ``limit`` gets ``data.limit`` for the training split and may read only that many
        examples, a sample representative of the whole; the core keeps the first ``limit`` of any builder's.
        A config field that holds a file path, declared ``field(metadata={"path": True})``, is saved absolute
        in new runs (as ``data.dir`` is), so a run resumes from any folder.
    """


@hookspec
def gan_register_metrics(register: Register) -> None:
    """Register evaluation metrics.

    :param register: ``register(name, builder, config=Cfg)``; ``builder(cfg)`` (``builder()`` without a config)
        returns a :class:`gancore.components.Metric`, whose ``applies(run)`` says whether it fits a run and
        ``unavailable(run)`` why it cannot run here, or a bare callable ``metric(run) -> dict[str, float]``,
        which fits every run. A metric that raises is skipped with its plugin named; the others still run.
    """


@hookspec
def gan_register_recipes(register: Register) -> None:
    """Register recipes: the default run config behind ``gan train --plugin NAME``.

    :param register: ``register(name, lambda: {...})``: a builder returning a partial config dict
        (sections as in :mod:`gancore.config`) merged over the core defaults.
    """


@hookspec
def gan_register_commands(register: Register) -> None:
    """Register extra ``gan`` sub-commands.

    :param register: ``register(name, function)``: ``function`` is a typer command callback.
    """


# -------------------------------------------------------------------------------------------------
# Training: called by the loop at phase boundaries
# -------------------------------------------------------------------------------------------------


@hookspec
def gan_train_start(state: TrainState) -> None:
    """Called once the networks, optimizers and data are ready, before the first step.

    :param state: the run's training state (config, networks, optimizers, step, run folder). Work of its own
        (a pre-training phase) shows progress only where ``state.progress`` is true (not under ``--quiet``).
    """


@hookspec
def gan_train_log(state: TrainState, metrics: dict[str, float]) -> None:
    """Called at each log step with the averaged losses and throughput.

    :param state: the run's training state.
    :param metrics: the line just written to ``metrics.jsonl`` (``step``, losses, ``images_per_s``...).
    """


@hookspec
def gan_train_pictures(state: TrainState, folder: Path) -> list[Path] | None:
    """Called each time the loop draws its sample grid (every ``train.sample_every`` steps, and at the end):
    draw the plugin's own pictures of the run (latent traversals, reconstructions) into ``folder``.

    :param state: the run's training state; networks are in training mode (use
        :func:`gancore.sampling.eval_mode`).
    :param folder: the run's ``samples/`` folder; name files with ``state.step`` so they do not overwrite.
    :return: the files written, or None when the run is not the plugin's. Tell by the run's networks (a
        component of yours among ``state.nets``, as bigan looks for its encoder), not by
        ``state.config["plugin"]``: that names the recipe, and components mix across recipes.
    """


@hookspec
def gan_train_checkpoint(state: TrainState, path: Path) -> None:
    """Called after a checkpoint has been written completely.

    :param state: the run's training state.
    :param path: the checkpoint folder.
    """


@hookspec
def gan_train_end(state: TrainState) -> None:
    """Called once training has finished (the final checkpoint is written).

    :param state: the run's training state.
    """


# -------------------------------------------------------------------------------------------------
# Export
# -------------------------------------------------------------------------------------------------


@hookspec
def gan_export_extra(state: TrainState) -> dict[str, Any] | None:
    """Extra models to export beside the generator (a classifier, an encoder, a Q head).

    :param state: the trained run, networks loaded and in eval mode.
    :return: ``{file stem: gancore.components.ExportModel}``, or None when the run has none of the plugin's
        networks (see :func:`gan_train_pictures`).
    """
