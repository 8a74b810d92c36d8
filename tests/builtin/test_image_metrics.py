"""Image metrics with known answers, the shipped evaluator's accuracy, and the metric on a run."""

import math

import pytest
import torch

from gancore.builtin.image_metrics import classifier_score, coverage, frechet_distance, precision_recall


def gauss(n, d, scale=1.0, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale + shift


def test_frechet_distance_of_a_set_with_itself_is_zero():
    f = gauss(2000, 16)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_a_shift_is_its_squared_length():
    f = gauss(2000, 8)
    assert frechet_distance(f, f + 3.0) == pytest.approx(8 * 9.0, rel=1e-6)


def test_frechet_distance_between_two_known_gaussians():
    # N(0, I) vs N(0, 4I) in d dims: d * (1 + 4 - 2 * 2) = d
    a, b = gauss(200_000, 4, seed=1), gauss(200_000, 4, scale=2.0, seed=2)
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_classifier_score_bounds():
    k = 10
    confident_uniform = torch.eye(k).repeat(50, 1)
    assert classifier_score(confident_uniform) == pytest.approx(k, rel=1e-6)
    assert classifier_score(torch.full((100, k), 1.0 / k)) == pytest.approx(1.0)
    collapsed = torch.zeros(100, k)
    collapsed[:, 3] = 1
    assert classifier_score(collapsed) == pytest.approx(1.0)


def test_coverage_catches_dropped_classes():
    probs = torch.eye(10)[torch.arange(1000) % 8]  # classes 8 and 9 never produced
    c = coverage(probs)
    assert c["classes_covered"] == 8 and c["class_kl_uniform"] == pytest.approx(math.log(10 / 8))
    assert coverage(torch.eye(10).repeat(10, 1))["class_kl_uniform"] == pytest.approx(0.0, abs=1e-12)


def test_precision_and_recall():
    real = gauss(500, 4)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    half = torch.cat([real[:250], real[:250] + 100.0])  # half the fakes off the manifold
    p, _ = precision_recall(real, half)
    assert p == pytest.approx(0.5, abs=0.02)


def test_the_shipped_evaluator_classifies_fashion_mnist_test_images():
    from gancore.builtin.datasets import ImageConfig, fashion_mnist
    from gancore.builtin.evaluator import WEIGHTS, embed

    assert WEIGHTS.stat().st_size < 4 * 2**20  # a few MB at most
    test = fashion_mnist(ImageConfig(), train=False)
    _, probs = embed(test.x)
    accuracy = (probs.argmax(1) == test.y).double().mean().item()
    assert accuracy >= 0.92


def test_fashion_quality_on_a_run_reports_figures_beside_their_ceilings(trained_run):
    from gancore.builtin.image_metrics import FashionQuality
    from gancore.evaluate import evaluate
    from gancore.runs import open_run

    state = open_run(trained_run, device="cpu")
    metric = FashionQuality()
    metric.samples = 500
    assert metric.applies(state)
    r = evaluate(state, {"fashion-quality": metric})
    assert r["fashion-quality/frechet"] > 10 * r["fashion-quality/frechet_ceiling"]  # 6 steps of training
    assert r["fashion-quality/score_ceiling"] > 5  # real test images: confident and balanced (max 10)
    assert r["fashion-quality/score_ceiling"] > r["fashion-quality/score"]
    assert 1.0 <= r["fashion-quality/score"] <= 10.0 and r["fashion-quality/classes"] == 10


def test_fashion_quality_reads_real_images_where_the_run_read_its_own(torchvision_root_only):
    from gancore.builtin.image_metrics import FashionQuality
    from gancore.evaluate import evaluate
    from gancore.loop import prepare, train
    from tests.conftest import tiny

    state = prepare("dcgan", tiny(data={"dir": str(torchvision_root_only)}), out="run")
    train(state, progress=False)
    metric = FashionQuality()
    metric.samples = 200
    r = evaluate(state, {"fashion-quality": metric})
    assert r["fashion-quality/frechet"] > r["fashion-quality/frechet_ceiling"] > 0
