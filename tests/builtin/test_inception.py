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


def test_an_image_folder_without_held_out_images_is_named_before_training_scores_it(tmp_path):
    from types import SimpleNamespace

    from tests.conftest import paint_classes

    paint_classes(tmp_path, "train")
    state = SimpleNamespace(config={"data": {"name": "image-folder", "dir": str(tmp_path)}})
    assert "has none; put some in its test/ folder" in inception.InceptionFID().unavailable(state)
    exported = SimpleNamespace(config={"data": {"name": "image-folder", "dir": ""}})  # an export's stand-in
    assert "an exported model does not say where its image folder is; give --data-dir the folder" in \
        inception.InceptionFID().unavailable(exported)


def test_an_exported_model_is_scored_against_real_images_of_its_own_size_and_channels(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from gancore.builtin.image_folder import _held_out
    from tests.conftest import paint_classes

    paint_classes(tmp_path, "train")
    paint_classes(tmp_path, "test")
    seen = []

    def features(net, x, value_range, device):  # stands in for Inception: records what it is shown
        seen.append(tuple(x.shape[1:]))
        return torch.randn(len(x), 4, dtype=torch.float64, generator=torch.Generator().manual_seed(len(seen)))

    monkeypatch.setattr(inception.InceptionFID, "extractor", lambda self, device: None)
    monkeypatch.setattr(inception.InceptionFID, "features", staticmethod(features))
    model = SimpleNamespace(config={"data": {"name": "image-folder", "dir": str(tmp_path)}},
                            data_info={"shape": [1, 16, 16], "value_range": [-1.0, 1.0]}, step=1,
                            generate=lambda n, seed: torch.zeros(n, 1, 16, 16))
    _held_out.cache_clear()
    metric = inception.InceptionFID()
    metric.samples = 6
    assert set(metric(model)) == {"fid", "kid", "kid_sd"}
    _held_out.cache_clear()
    assert seen == [(1, 16, 16), (1, 16, 16)]  # real and generated alike: greyscale 16 px, not the default 64 RGB
