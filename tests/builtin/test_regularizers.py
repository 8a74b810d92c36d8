"""Historical averaging on known parameter paths, and its state in checkpoints; R1/R2 and the shift consistency
on known discriminators."""

import pytest
import torch
from torch import nn

from gancore.augment import class_consistency, random_shift
from gancore.builtin.regularizers import (
    R1,
    R2,
    Consistency,
    ConsistencyConfig,
    GradientPenaltyConfig,
    HistoricalAveraging,
    HistoricalAveragingConfig,
)
from gancore.components import Batch, DOut, Nets, Step
from gancore.errors import ConfigError
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


class _LinearD(nn.Module):
    """D(x) = x @ W^T: (B,) logits with one output row, (B, K) class logits with K rows."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> DOut:
        logits = x.flatten(1) @ self.w.T
        return DOut(logits=logits.squeeze(1) if len(self.w) == 1 else logits)


def _gp_step(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, step: int = 0) -> Step:
    nets = Nets(generator=lambda **_: fake, discriminator=d)  # type: ignore[arg-type]
    return Step("discriminator", Batch(x=real), {}, nets, step, 10)


def test_r1_of_a_linear_d_is_half_gamma_times_its_squared_weight_norm():
    d = _LinearD(torch.tensor([[3.0, 4.0]]))  # grad_x D = w everywhere, ||w||^2 = 25
    real = torch.randn(6, 2)
    term = R1(GradientPenaltyConfig(gamma=2.0))(_gp_step(d, real, real))["d_r1"]
    assert term.item() == pytest.approx(0.5 * 2.0 * 25)
    term.backward()  # d/dw of gamma/2 ||w||^2 = gamma * w: the penalty shrinks D's slope
    assert torch.allclose(d.w.grad, 2.0 * d.w.detach())


def test_r1_penalises_the_slope_of_a_quadratic_d_where_the_real_data_is():
    class Quadratic(nn.Module):  # D(x) = a * ||x||^2, grad = 2 a x
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.tensor(1.5))

        def forward(self, x: torch.Tensor) -> DOut:
            return DOut(logits=self.a * x.pow(2).sum(1))

    real, fake = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[3.0, 0.0], [0.0, 0.0]])
    # E||2 a x||^2 = 4 a^2 * mean(1, 4) = 4 * 2.25 * 2.5 on real; 4 * 2.25 * 4.5 on fake
    r1 = R1(GradientPenaltyConfig(gamma=1.0))(_gp_step(Quadratic(), real, fake))["d_r1"]
    r2 = R2(GradientPenaltyConfig(gamma=1.0))(_gp_step(Quadratic(), real, fake))["d_r2"]
    assert r1.item() == pytest.approx(0.5 * 4 * 2.25 * 2.5)
    assert r2.item() == pytest.approx(0.5 * 4 * 2.25 * 4.5)


def test_r1_of_a_packed_d_takes_each_packs_gradient_norm():
    class PackedLinear(nn.Module):  # PacGAN: one verdict w . [x_1, x_2] per pack of 2 examples
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.tensor([3.0, 4.0, 0.0, 12.0]))

        def forward(self, x: torch.Tensor) -> DOut:
            return DOut(logits=x.reshape(len(x) // 2, -1) @ self.w)

    real = torch.randn(6, 2)  # ||grad of a verdict with respect to its pack|| ^2 = ||w||^2 = 169 for each pack
    term = R1(GradientPenaltyConfig(gamma=2.0))(_gp_step(PackedLinear(), real, real))["d_r1"]
    assert term.item() == pytest.approx(0.5 * 2.0 * 169)


def test_r1_on_a_k_class_d_uses_log_z():
    # Identical class rows: log Z = x.w + log K, so its gradient is w again.
    d = _LinearD(torch.tensor([[1.0, 2.0]] * 3))
    term = R1(GradientPenaltyConfig(gamma=1.0))(_gp_step(d, torch.randn(4, 2), torch.randn(4, 2)))["d_r1"]
    assert term.item() == pytest.approx(0.5 * 5)
    # Distinct rows: grad log Z = softmax(x W^T) W, which no single class logit, mean or max gives.
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    x = torch.tensor([[0.5, -0.2], [1.0, 1.0]])
    p = torch.softmax(x @ w.T, 1)
    want = 0.5 * (p @ w).pow(2).sum(1).mean()
    term = R1(GradientPenaltyConfig(gamma=1.0))(_gp_step(_LinearD(w), x, x))["d_r1"]
    assert term.item() == pytest.approx(want.item(), rel=1e-5)


def test_lazy_r1_runs_every_nth_step_at_n_times_the_weight():
    d = _LinearD(torch.tensor([[3.0, 4.0]]))
    reg = R1(GradientPenaltyConfig(gamma=1.0, every=4))
    real = torch.randn(2, 2)
    got = [reg(_gp_step(d, real, real, step)) for step in range(5)]
    assert [bool(t) for t in got] == [True, False, False, False, True]
    assert got[0]["d_r1"].item() == pytest.approx(4 * 0.5 * 25)


def test_gamma_zero_switches_the_penalty_off():
    d = _LinearD(torch.tensor([[3.0, 4.0]]))
    assert R1(GradientPenaltyConfig(gamma=0.0))(_gp_step(d, torch.randn(2, 2), torch.randn(2, 2))) == {}


def test_bad_gradient_penalty_options():
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        GradientPenaltyConfig(gamma=-1)
    with pytest.raises(ValueError, match="every must be >= 1"):
        GradientPenaltyConfig(every=0)


def test_r1_trains_a_dcgan_run():
    state = train(prepare("dcgan", tiny(regularizers={"r1": {"gamma": 10.0, "every": 2}}), out="runs/r1"),
                  progress=False)
    assert state.step == 6
    logged = (state.run_dir / "metrics.jsonl").read_text()
    assert "d_r1" in logged


def test_r1_refuses_a_pair_discriminator_before_the_run_starts(tmp_path):
    from gancore.errors import ConfigError

    with pytest.raises(ConfigError, match=r"regularizers.r1: .*judges \(x, z\) pairs"):
        prepare("bigan", tiny(regularizers={"r1": {}}), out="runs/bad")
    assert not (tmp_path / "runs" / "bad").exists()


class _CentreD(nn.Module):
    """Reads only the centre pixel: real/fake logit ``a * x_centre``, or K = 2 class logits (x_centre, 0)."""

    def __init__(self, classes: bool) -> None:
        super().__init__()
        self.classes = classes
        self.a = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> DOut:
        c = self.a * x[:, 0, 4, 4]
        return DOut(logits=torch.stack([c, torch.zeros_like(c)], 1) if self.classes else c)


@pytest.mark.parametrize("classes", [False, True])
def test_consistency_is_zero_where_a_shift_changes_nothing_and_matches_the_moved_reading(classes):
    d = _CentreD(classes)
    reg = Consistency(ConsistencyConfig(weight=3.0, shift=1))
    flat = torch.zeros(5, 1, 9, 9)  # every shift of a flat image is the same image
    assert reg(_gp_step(d, flat, flat))["d_consistency"].item() == pytest.approx(0.0, abs=1e-7)
    dot = torch.full((64, 1, 9, 9), -1.0)
    dot[:, 0, 4, 4] = 1.0
    torch.manual_seed(0)
    term = reg(_gp_step(d, dot, dot))["d_consistency"]
    torch.manual_seed(0)
    moved = random_shift(dot, 1)  # the same offsets
    here, there = d(dot).logits.detach(), d(moved).logits.detach()
    want = class_consistency(here, there) if classes else (here - there).pow(2).mean()
    assert 0 < term.item() == pytest.approx(3.0 * want.item(), rel=1e-5)
    term.backward()
    assert d.a.grad is not None and d.a.grad.abs() > 0


def test_consistency_weight_zero_is_off():
    dot = torch.zeros(4, 1, 9, 9)
    assert Consistency(ConsistencyConfig(weight=0.0))(_gp_step(_CentreD(True), dot, dot)) == {}


def test_consistency_refuses_flat_data_and_pair_discriminators():
    reg = Consistency(ConsistencyConfig())
    images, points = {"shape": [1, 28, 28]}, {"shape": [2]}
    d = Nets(generator=None, discriminator=_LinearD(torch.ones(1, 2)))  # type: ignore[arg-type]
    assert reg.check(d, images) is None
    assert "moves images" in reg.check(d, points) and "[2]" in reg.check(d, points)
    pair = nn.Module()
    pair.joint_latent = True
    assert "pairs" in reg.check(Nets(generator=None, discriminator=pair), images)  # type: ignore[arg-type]


def test_consistency_on_2d_data_is_refused_before_the_run_starts(tmp_path):
    with pytest.raises(ConfigError, match=r"regularizers\.consistency: it moves images"):
        prepare("gan2d", {"device": "cpu", "data": {"points": 2000},
                          "regularizers": {"consistency": {"weight": 1.0}}}, out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="shift must be >= 1"):
        ConsistencyConfig(shift=0)
