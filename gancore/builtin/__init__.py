"""The core's own components: standard GAN losses, plain latent samplers and the image datasets.

Registered through the same hooks as every plugin, under the plugin name ``gancore``. They are not a
GAN; every GAN lives in a plugin.
"""

from __future__ import annotations

from gancore.builtin import datasets, image_folder, image_metrics, inception, losses, regularizers, samplers
from gancore.hookspecs import Register
from gancore.plugins import hookimpl


@hookimpl
def gan_register_losses(register: Register) -> None:
    register("nonsaturating", losses.NonSaturating, config=losses.NonSaturatingConfig)
    register("minimax", losses.Minimax, config=losses.MinimaxConfig)
    register("hinge", losses.Hinge)
    register("feature-matching", losses.FeatureMatching, config=losses.FeatureMatchingConfig,
             description="D: non-saturating; G: matches D's mean features on real data (Salimans et al. 2016)")


@hookimpl
def gan_register_regularizers(register: Register) -> None:
    register("historical-averaging", regularizers.HistoricalAveraging, config=regularizers.HistoricalAveragingConfig,
             description="weight * ||theta - mean of past theta||^2 (Salimans et al. 2016)")
    register("r1", regularizers.R1, config=regularizers.GradientPenaltyConfig,
             description="gamma/2 * E||grad D(x)||^2 on real data (Mescheder et al. 2018)")
    register("r2", regularizers.R2, config=regularizers.GradientPenaltyConfig,
             description="gamma/2 * E||grad D(x)||^2 on generated data (Mescheder et al. 2018)")
    register("consistency", regularizers.Consistency, config=regularizers.ConsistencyConfig,
             description="D reads real images and copies shifted a few pixels alike (Pi-model, bCR)")


@hookimpl
def gan_register_samplers(register: Register) -> None:
    register("normal", samplers.NormalSampler, config=samplers.NoiseConfig)
    register("uniform", samplers.UniformSampler, config=samplers.NoiseConfig)


@hookimpl
def gan_register_metrics(register: Register) -> None:
    register("fashion-quality", image_metrics.FashionQuality)
    register("inception-fid", inception.InceptionFID,
             description="FID and KID in Inception-v3 features; needs the fid extra and its weights file")


@hookimpl
def gan_register_datasets(register: Register) -> None:
    register("fashion-mnist", datasets.fashion_mnist, config=datasets.ImageConfig)
    register("mnist", datasets.mnist, config=datasets.ImageConfig)
    register("image-folder", image_folder.image_folder, config=image_folder.ImageFolderConfig,
             description="your own images: --data-dir DIR of images, or of one subfolder per class")
