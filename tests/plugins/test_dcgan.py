import pytest
import torch

from gancore.components import DOut, LatentSpec
from gancore_plugins.dcgan.nets import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

LATENT = (LatentSpec("noise", (16,), "normal"),)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 28, 28), (1, 32, 32), (3, 64, 64)])
def test_generator_and_discriminator_fit_each_supported_shape(shape):
    g = Generator(GeneratorConfig(width=8), LATENT, shape)
    d = Discriminator(DiscriminatorConfig(width=8), shape)
    x = g(noise=torch.randn(3, 16))
    assert x.shape == (3, *shape)
    assert x.abs().max() <= 1.0  # tanh output
    out = d(x)
    assert isinstance(out, DOut) and out.logits.shape == (3,) and out.features.shape[0] == 3


def test_unsupported_shapes_are_refused():
    with pytest.raises(ValueError, match="28, 32 and 64"):
        Generator(GeneratorConfig(), LATENT, (1, 48, 48))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        Discriminator(DiscriminatorConfig(), (2, 28, 28))


def test_discriminator_has_no_batchnorm_on_its_input_layer():
    d = Discriminator(DiscriminatorConfig(width=8), (1, 28, 28))
    first_bn = next(i for i, m in enumerate(d.body) if isinstance(m, torch.nn.BatchNorm2d))
    assert first_bn > 1
