import math

import pytest
import torch

from gancore.augment import class_consistency, random_shift


def test_random_shift_moves_each_image_by_at_most_the_shift():
    torch.manual_seed(0)
    x = torch.full((64, 1, 9, 9), -1.0)
    x[:, 0, 4, 4] = 1.0  # one bright pixel in the middle, background at the edges
    moved = random_shift(x, 2)
    assert moved.shape == x.shape and (moved == 1.0).sum((1, 2, 3)).eq(1).all()
    where = (moved[:, 0] == 1.0).nonzero()[:, 1:]
    assert ((where - 4).abs() <= 2).all()
    assert len({tuple(p.tolist()) for p in where}) > 10  # offsets differ from image to image


def test_class_consistency_on_known_logits():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = (1/4, 3/4)
    assert class_consistency(logits, logits).item() == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(1, 1, 2)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert class_consistency(logits, uniform).item() == pytest.approx(kl, rel=1e-5)
    moved = uniform.clone().requires_grad_()
    class_consistency(logits.requires_grad_(), moved).backward()
    assert logits.grad is None and moved.grad is not None  # only the moved reading is pulled
    codes = torch.stack([logits.detach()[0, 0], torch.zeros(2)])[None]  # B x codes x classes: codes summed
    assert class_consistency(codes, torch.zeros(1, 2, 2)).item() == pytest.approx(kl, rel=1e-5)
    assert class_consistency(logits.detach()[:, 0], torch.zeros(1, 2)).item() == pytest.approx(kl, rel=1e-5)  # B x K
