"""Historical averaging on known parameter paths, and its state in checkpoints."""

import pytest
import torch
from torch import nn

from gancore.builtin.regularizers import HistoricalAveraging, HistoricalAveragingConfig
from gancore.components import Batch, Nets, Step
from gancore.loop import prepare, prepare_resume, train
from tests.conftest import tiny


def _step(nets: Nets) -> Step:
    return Step("discriminator", Batch(x=torch.zeros(1)), {}, nets, 0, 1)


def test_each_step_is_held_to_the_mean_of_the_values_before_it():
    d = nn.Linear(1, 1, bias=False)
    nets = Nets(generator=nn.Identity(), discriminator=d)
    reg = HistoricalAveraging(HistoricalAveragingConfig(weight=0.5))
    terms = []
    for w in (1.0, 3.0, 5.0, 5.0):
        with torch.no_grad():
            d.weight.fill_(w)
        terms.append(reg(_step(nets))["d_hist"].item())
    # past means: -, 1, 2, 3  ->  0, (3-1)^2, (5-2)^2, (5-3)^2, times the weight
    assert terms == pytest.approx([0.0, 0.5 * 4, 0.5 * 9, 0.5 * 4])
    d.weight.grad = None
    with torch.no_grad():
        d.weight.fill_(7.0)
    reg(_step(nets))["d_hist"].backward()
    assert d.weight.grad.item() == pytest.approx(0.5 * 2 * (7.0 - 3.5))  # mean of 1, 3, 5, 5


def test_bad_options():
    with pytest.raises(ValueError, match="phases must be"):
        HistoricalAveragingConfig(phases="d")
    with pytest.raises(ValueError, match="weight must be >= 0"):
        HistoricalAveragingConfig(weight=-1)


def test_the_averages_survive_a_resume(tmp_path):
    cfg = tiny(regularizers={"historical-averaging": {"weight": 0.01, "phases": "both"}})
    state = train(prepare("dcgan", cfg, out="runs/ha"), progress=False)
    reg = state.regularizers["historical-averaging"]
    assert reg.count == {"discriminator": 6, "generator": 6}
    resumed = prepare_resume(state.run_dir, steps=8)
    back = resumed.regularizers["historical-averaging"]
    assert back.count == reg.count
    for phase in ("discriminator", "generator"):
        for a, b in zip(reg.average[phase], back.average[phase], strict=True):
            assert torch.equal(a, b)
    train(resumed, progress=False)
    assert back.count["discriminator"] == 8
