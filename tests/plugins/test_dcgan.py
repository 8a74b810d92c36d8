import copy

import pytest
import torch
from safetensors.torch import load_file

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


def test_virtual_batch_norm_makes_each_sample_independent_of_its_batch_mates():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(width=8, virtual_batchnorm=True, reference_size=16), LATENT, (1, 28, 28))
    plain = Generator(GeneratorConfig(width=8), LATENT, (1, 28, 28))
    z = torch.randn(6, 16)
    for mode in (True, False):  # training (statistics of this step's reference) and eval (recorded ones)
        g.train(mode)
        with torch.no_grad():
            alone, in_batch = g(noise=z[:1]), g(noise=z)[:1]
        assert torch.allclose(alone, in_batch, atol=1e-5)
    plain.train()
    with torch.no_grad():  # the control: batch norm in training mixes the batch in
        assert not torch.allclose(plain(noise=z)[:1], plain(noise=torch.cat([z[:1], z[1:] * 3]))[:1], atol=1e-3)
    g.train()
    with torch.no_grad():
        assert torch.allclose(g(noise=z)[:1], g(noise=torch.cat([z[:1], z[1:] * 3]))[:1], atol=1e-5)
    assert g.reference_noise.shape == (16, 16)
    assert sum(isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in g.modules()) == 0


def test_minibatch_discrimination_lets_d_see_the_rest_of_its_batch():
    torch.manual_seed(0)
    d = Discriminator(DiscriminatorConfig(width=8, batchnorm=False, minibatch_features=4), (1, 28, 28)).eval()
    x = torch.randn(4, 1, 28, 28).clamp(-1, 1)
    with torch.no_grad():
        varied, collapsed = d(x).logits[0], d(x[:1].expand(4, -1, -1, -1)).logits[0]
    assert not torch.isclose(varied, collapsed)  # same first image, other batch-mates: another reading
    no_mbd = Discriminator(DiscriminatorConfig(width=8, batchnorm=False), (1, 28, 28)).eval()
    with torch.no_grad():
        assert torch.isclose(no_mbd(x).logits[0], no_mbd(x[:1].expand(4, -1, -1, -1)).logits[0])


def test_bad_improved_technique_settings_are_refused():
    with pytest.raises(ValueError, match="needs batchnorm = true"):
        GeneratorConfig(batchnorm=False, virtual_batchnorm=True)
    with pytest.raises(ValueError, match="minibatch_features must be >= 0"):
        DiscriminatorConfig(minibatch_features=-1)


def test_dcgan_with_the_improved_techniques_trains_resumes_and_exports(tmp_path):
    from gancore.deploy import OnnxModel
    from gancore.export import export_run
    from gancore.loop import prepare, prepare_resume, train
    from tests.conftest import tiny

    cfg = tiny(generator={"virtual_batchnorm": True, "reference_size": 8},
               discriminator={"minibatch_features": 4},
               train={"sample_every": 100})  # no sample grid puts G in eval mode before step 3's checkpoint
    state = train(prepare("dcgan", cfg, out=str(tmp_path / "run")), progress=False)
    stats = {k: v.clone() for k, v in state.nets.generator.state_dict().items() if k.endswith(("ref_mean", "ref_sq"))}
    assert len(stats) == 4  # the projection's and the one hidden convolution's, each a mean and a mean square
    resumed = prepare_resume(state.run_dir, steps=8).nets.generator.state_dict()
    for k, v in stats.items():  # the reference statistics eval and export read travel in the checkpoint
        assert torch.equal(resumed[k], v) and not torch.equal(v, torch.zeros_like(v)), k
    g = copy.deepcopy(state.nets.generator).train()
    for ckpt in sorted((state.run_dir / "checkpoints").glob("step-*")):  # step 3 (no sample grid before it) and 6
        saved = {k[len("generator."):]: v for k, v in load_file(ckpt / "weights.safetensors").items()
                 if k.startswith("generator.")}
        g.load_state_dict(saved)
        with torch.no_grad():  # a training-mode pass records the statistics of the loaded weights
            g(**{s.name: getattr(g, f"reference_{s.name}")[:1] for s in g.latent})
        for k in stats:  # ... the checkpoint's were recorded for the weights saved beside them, not the step before's
            assert torch.allclose(g.state_dict()[k], saved[k], atol=1e-6), (ckpt.name, k)
    out = export_run(state.run_dir, ["onnx"], out=tmp_path / "exp")  # parity-checked on export
    assert OnnxModel(out / "generator.onnx", "cpu").sample(3, 0).shape == (3, 1, 28, 28)
