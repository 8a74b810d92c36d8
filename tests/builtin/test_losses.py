"""The standard losses on known logits."""

import math

import pytest
import torch

from gancore.builtin.losses import Hinge, Minimax, MinimaxConfig, NonSaturating, NonSaturatingConfig


def test_nonsaturating_matches_binary_cross_entropy():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    loss = NonSaturating(NonSaturatingConfig())
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected_d = bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))
    assert loss.d_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert loss.g_loss(fake).item() == pytest.approx(bce(fake, torch.ones(2)).item(), rel=1e-6)


def test_at_d_equal_half_the_losses_are_log_two():
    zero = torch.zeros(4)
    assert NonSaturating(NonSaturatingConfig()).d_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert NonSaturating(NonSaturatingConfig()).g_loss(zero).item() == pytest.approx(math.log(2))
    assert Minimax(MinimaxConfig()).g_loss(zero).item() == pytest.approx(-math.log(2))


def test_one_sided_label_smoothing_only_moves_the_real_target():
    real, fake = torch.tensor([3.0]), torch.tensor([1.0])
    smooth = NonSaturating(NonSaturatingConfig(real_label=0.9))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(real, torch.tensor([0.9])) + bce(fake, torch.tensor([0.0]))
    assert smooth.d_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_minimax_saturates_where_nonsaturating_does_not():
    # D confidently rejects the fakes (logit -8): the minimax G gradient nearly vanishes.
    fake = torch.tensor([-8.0], requires_grad=True)
    Minimax(MinimaxConfig()).g_loss(fake).backward()
    g_minimax = fake.grad.abs().item()
    fake.grad = None
    NonSaturating(NonSaturatingConfig()).g_loss(fake).backward()
    assert g_minimax < 1e-3 < fake.grad.abs().item()


def test_hinge():
    loss = Hinge()
    assert loss.d_loss(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])).item() == pytest.approx(0.5 + 0.75)
    assert loss.g_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_feature_matching_on_known_features():
    from gancore.builtin.losses import feature_matching

    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # batch mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)  # batch mean (1, 1)
    assert feature_matching(real, fake, "l2").item() == pytest.approx(1.0 + 4.0)
    assert feature_matching(real, fake, "l1").item() == pytest.approx((1.0 + 2.0) / 2)
    real.requires_grad_(True)
    feature_matching(real, fake).backward()
    assert real.grad is None  # the real statistics are a target
    assert torch.allclose(fake.grad, torch.tensor([[-1.0, -2.0], [-1.0, -2.0]]))  # d/dfake of (r - mean f)^2


def test_feature_matching_loss_trains_g_on_d_features(trained_run):
    from gancore.builtin.losses import FeatureMatching, FeatureMatchingConfig
    from gancore.components import Batch, Step
    from gancore.runs import open_run

    state = open_run(trained_run, device="cpu")
    batch = Batch(x=state.data.x[:8]) if state.data is not None else Batch(x=torch.zeros(8, 1, 28, 28))
    step = Step("generator", batch, state.sampler.sample(8, torch.Generator().manual_seed(0), state.device),
                state.nets, 0, 1)
    terms = FeatureMatching(FeatureMatchingConfig()).generator_loss(step)
    assert set(terms) == {"g_fm"} and terms["g_fm"].item() > 0
    terms["g_fm"].backward()
    assert all(p.grad is not None for p in state.nets.generator.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="norm must be l1 or l2"):
        FeatureMatchingConfig(norm="l3")
