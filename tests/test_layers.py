"""Reusable layers on known inputs: minibatch discrimination, virtual batch norm, Gaussian noise."""

import pytest
import torch
from torch import nn

from gancore.components import LatentSpec
from gancore.layers import (
    GaussianNoise,
    MinibatchDiscrimination,
    ReferenceBatchNet,
    VirtualBatchNorm,
    add_reference_batch,
    frozen_norm_stats,
    record_reference_statistics,
    reference_pass,
)


def test_minibatch_discrimination_sees_a_collapsed_batch():
    layer = MinibatchDiscrimination(3, 4, 2)
    same = torch.ones(5, 3)
    out = layer(same)
    assert out.shape == (5, 7) and torch.equal(out[:, :3], same)
    assert torch.allclose(out[:, 3:], torch.full((5, 4), 4.0))  # exp(0) from each of the 4 others
    far = torch.arange(5.0).unsqueeze(1).repeat(1, 3) * 1000
    assert out[:, 3:].min() > layer(far)[:, 3:].max()


def _vbn_net(ref: torch.Tensor) -> tuple[nn.Module, VirtualBatchNorm]:
    vbn = VirtualBatchNorm(2, reference_size=len(ref))
    net = nn.Sequential(vbn)
    reference_pass(net, lambda: net(ref))
    return net, vbn


def test_virtual_batch_norm_uses_the_reference_statistics_plus_the_example():
    ref = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    net, vbn = _vbn_net(ref)
    x = torch.tensor([[10.0, -1.0]])
    c = 1 / 4  # one example against three reference ones
    mean = c * x + (1 - c) * ref.mean(0)
    var = c * x**2 + (1 - c) * (ref**2).mean(0) - mean**2
    assert torch.allclose(net(x), (x - mean) / torch.sqrt(var + vbn.eps), atol=1e-5)
    assert torch.allclose(vbn.ref_mean, ref.mean(0)) and torch.allclose(vbn.ref_sq, (ref**2).mean(0))


def test_virtual_batch_norm_outputs_do_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    ref = torch.randn(16, 2, 4, 4)
    vbn = VirtualBatchNorm(2, reference_size=16)
    reference_pass(vbn, lambda: vbn(ref))
    a, b = torch.randn(3, 2, 4, 4), torch.randn(5, 2, 4, 4) * 10
    alone = vbn(a)
    mixed = vbn(torch.cat([a, b]))[:3]
    assert torch.allclose(alone, mixed, atol=1e-6)
    bn = nn.BatchNorm2d(2)  # what it replaces: batch norm's outputs move with the batch
    assert not torch.allclose(bn(a), bn(torch.cat([a, b]))[:3], atol=1e-3)


def test_virtual_batch_norm_backpropagates_through_the_reference_in_training_only():
    ref = torch.randn(4, 2, requires_grad=True)
    vbn = VirtualBatchNorm(2, reference_size=4)
    reference_pass(vbn, lambda: vbn(ref))
    vbn(torch.randn(3, 2)).pow(2).sum().backward()
    assert ref.grad is not None and ref.grad.abs().sum() > 0  # the reference statistics follow the weights
    vbn.eval()  # eval uses the recorded buffers: no reference batch needed
    assert torch.allclose(vbn(torch.ones(1, 2)), vbn(torch.ones(1, 2)))


class _TinyG(ReferenceBatchNet):
    def __init__(self) -> None:
        super().__init__()
        self.latent = [LatentSpec("noise", (3,), "normal")]
        self.lin, self.vbn = nn.Linear(3, 2), VirtualBatchNorm(2, reference_size=8)
        self.drop = nn.Dropout(0.5)  # draws random numbers in training mode
        add_reference_batch(self, self.latent, 8, seed=0)

    def reference_net(self, latent: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.drop(self.vbn(self.lin(latent["noise"])))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        self.reference_pass_in_training()
        return self.reference_net({"noise": noise})


def _fresh_statistics(g: _TinyG) -> tuple[torch.Tensor, torch.Tensor]:
    h = g.lin(g.reference_noise).detach()
    return h.mean(0), (h * h).mean(0)


def test_eval_mode_and_saving_record_the_reference_statistics_of_the_current_weights():
    torch.manual_seed(0)
    g = _TinyG()
    opt = torch.optim.SGD(g.parameters(), lr=0.5)
    g(torch.randn(4, 3)).pow(2).sum().backward()  # training records the statistics of the weights before the step
    opt.step()
    mean, sq = _fresh_statistics(g)
    assert not torch.allclose(g.vbn.ref_mean, mean, atol=1e-3)  # the step left the buffers behind
    rng = torch.get_rng_state()
    record_reference_statistics(nn.Sequential(g))  # what a checkpoint does before saving
    assert torch.allclose(g.vbn.ref_mean, mean, atol=1e-6) and torch.allclose(g.vbn.ref_sq, sq, atol=1e-6)
    assert torch.equal(torch.get_rng_state(), rng) and g.training
    g(torch.randn(4, 3)).pow(2).sum().backward()
    opt.step()
    g.eval()  # what sampling, evaluation and export read
    mean, _ = _fresh_statistics(g)
    assert torch.allclose(g.vbn.ref_mean, mean, atol=1e-6)


def test_gaussian_noise_only_in_training():
    layer = GaussianNoise(0.5)
    x = torch.zeros(10000)
    assert abs(layer(x).std().item() - 0.5) < 0.02
    layer.eval()
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("momentum", [0.1, None])  # None: a cumulative average over num_batches_tracked
def test_frozen_norm_stats_normalise_by_the_batch_and_keep_the_running_statistics(momentum):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=momentum)).train()
    net(torch.randn(16, 3))  # some history
    bn = net[1]
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    x = torch.randn(16, 3) * 5 + 2  # another distribution
    with frozen_norm_stats(net):
        y = net(x)
    assert all(torch.equal(v, before[k]) for k, v in bn.state_dict().items()) and bn.momentum == momentum
    h = net[0](x).detach()  # still training mode's output: normalised by this batch's own statistics
    expected = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + bn.eps) * bn.weight + bn.bias
    assert torch.allclose(y, expected, atol=1e-5)
    with pytest.raises(RuntimeError), frozen_norm_stats(net):  # put back on the way out of an error too
        raise RuntimeError
    assert bn.momentum == momentum
    net(x)  # outside the block they move again
    assert not torch.equal(bn.running_mean, before["running_mean"])
