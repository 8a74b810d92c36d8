"""The optional Inception FID/KID: KID on known sets, and clear messages when the extra or weights are missing."""

import sys

import pytest
import torch

from gancore.builtin import inception
from tests.conftest import needs_fidelity


def test_kid_of_a_set_against_itself_is_about_zero_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    same, _ = inception.kernel_inception_distance(a, b, subsets=20, subset_size=500)
    near, _ = inception.kernel_inception_distance(a, b + 0.5, subsets=20, subset_size=500)
    far, _ = inception.kernel_inception_distance(a, b + 2.0, subsets=20, subset_size=500)
    assert abs(same) < 0.01 and 0 < near < far


def test_kid_matches_the_unbiased_mmd_written_out():
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 2.0]])

    def k(a, b):
        return (a @ b / 2 + 1) ** 3

    m = 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    kid, sd = inception.kernel_inception_distance(x, y, subsets=1, subset_size=3)
    assert kid == pytest.approx(float(xx + yy - 2 * xy)) and sd == 0.0


@needs_fidelity
def test_missing_weights_name_the_path_the_url_and_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(inception.ENV, str(tmp_path / "w.pth"))
    why = inception.unavailable()
    assert str(tmp_path / "w.pth") in why and inception.URL in why and "never downloads" in why
    (tmp_path / "w.pth").write_bytes(b"")
    assert inception.unavailable() is None


def test_missing_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import fails as if not installed
    assert "pip install 'gancore[fid]'" in inception.unavailable()


class Payload:
    pass


@needs_fidelity
def test_a_weights_file_holding_more_than_tensors_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"conv.weight": Payload()}, path)
    monkeypatch.setenv(inception.ENV, str(path))
    with pytest.raises(Exception, match=r"(?i)weights only|unpickl"):
        inception.InceptionFID().extractor(torch.device("cpu"))


def test_images_become_uint8_rgb():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)
    out = inception.to_uint8_rgb(x, (-1.0, 1.0))
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 1, 1)
    assert out[:, 0].flatten().tolist() == [0, 128, 255]
