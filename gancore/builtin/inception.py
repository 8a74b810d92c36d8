"""FID and KID in Inception-v3 features (Heusel et al. 2017; Binkowski et al. 2018): the optional extra.

Uses torch-fidelity's port of the TensorFlow Inception graph (``pip install 'gancore[fid]'``) and its
weights file, which torch-fidelity downloads from GitHub on first use. gancore never downloads: the
metric applies only when the package is installed and the weights are on disk, and says what is missing
otherwise. The file is checked to hold plain tensors (``torch.load(weights_only=True)``) before
torch-fidelity reads it, since it is a pickle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gancore.builtin.image_metrics import frechet_distance
from gancore.components import Metric
from gancore.sampling import batched

WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS}"
ENV = "GANCORE_INCEPTION_WEIGHTS"


def weights_path() -> Path:
    """Where the weights are looked for: $GANCORE_INCEPTION_WEIGHTS, else torch hub's checkpoint folder."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS


def unavailable() -> str | None:
    """None when FID/KID can run here; otherwise what is missing and how to get it."""
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        return "FID/KID need the optional extra: pip install 'gancore[fid]' (torch-fidelity)"
    path = weights_path()
    if not path.is_file():
        return (f"FID/KID need the Inception-v3 weights at {path}, and gancore never downloads them (this "
                f"machine may be offline). On a machine with network access fetch {URL} and copy it there, "
                f"or point ${ENV} at the file")
    return None


def kernel_inception_distance(f1: Tensor, f2: Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: the unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, mean and sd over subsets."""
    f1, f2 = f1.double(), f2.double()
    m = min(subset_size, len(f1), len(f2))
    d = f1.shape[1]
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        x = f1[torch.randperm(len(f1), generator=g)[:m]]
        y = f2[torch.randperm(len(f2), generator=g)[:m]]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = 1 - torch.eye(m, dtype=torch.float64)  # the unbiased estimate leaves out i == j
        mmd = (kxx * off).sum() / (m * (m - 1)) + (kyy * off).sum() / (m * (m - 1)) - 2 * kxy.mean()
        vals.append(float(mmd))
    t = torch.tensor(vals)
    return float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0


def to_uint8_rgb(x: Tensor, value_range: tuple[float, float]) -> Tensor:
    lo, hi = value_range
    x = ((x.float() - lo) / (hi - lo)).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class InceptionFID(Metric):
    """FID and KID against the dataset's test images, in torch-fidelity's Inception-v3 pool features."""

    samples = 5000

    def applies(self, state: Any) -> bool:
        info = state.data_info
        return info.get("kind") == "image" and info["shape"][0] in (1, 3)

    def unavailable(self, state: Any) -> str | None:
        from gancore.builtin.image_folder import has_held_out

        data = state.config["data"]
        if data["name"] == "image-folder" and not data.get("dir"):  # an export does not know where its images are
            return ("FID/KID compare with held-out images, and an exported model does not say where its image folder "
                    "is; give --data-dir the folder (with train/ and test/) its run trained on")
        if data["name"] == "image-folder" and not has_held_out(data["dir"]):
            return (f"FID/KID compare with held-out images, and the image folder {data['dir']!r} has none; put "
                    f"some in its test/ folder beside train/")
        return unavailable()

    def extractor(self, device: torch.device) -> torch.nn.Module:
        """torch-fidelity's Inception-v3 on its weights file, once that file is known to hold only tensors."""
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        torch.load(weights_path(), map_location="cpu", weights_only=True)  # refuses anything but tensors
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                           feature_extractor_weights_path=str(weights_path())).to(device)

    @staticmethod
    def features(net: torch.nn.Module, x: Tensor, value_range: tuple[float, float], device: torch.device) -> Tensor:
        return batched(lambda xs: net(to_uint8_rgb(xs, value_range).to(device))[0].double(), x, 100)

    def __call__(self, state: Any) -> dict[str, float]:
        from gancore.plugins import get_manager
        from gancore.state import load_data

        if hasattr(state, "manager"):
            test = load_data(state.manager, state.config, train=False)
        else:  # an exported model: its metadata names the dataset
            shape = state.data_info["shape"]  # the real images at the model's own size and channels
            data = {"name": state.config["data"]["name"], "dir": state.config["data"].get("dir", ""), "limit": 0,
                    "labels_per_class": 0, "image_size": shape[-1]}
            if data["name"] == "image-folder":
                data["channels"] = shape[0]
            test = load_data(get_manager(), {"data": data}, train=False)
        device = getattr(state, "device", torch.device("cpu"))
        vr = tuple(state.data_info["value_range"])
        g = torch.Generator().manual_seed(0)
        real = test.x[torch.randperm(len(test), generator=g)[:self.samples]]
        fake = state.generate(min(self.samples, len(real)), seed=0).cpu()
        net = self.extractor(device)  # built once for both sets
        fr, ff = self.features(net, real, vr, device), self.features(net, fake, vr, device)
        kid, kid_sd = kernel_inception_distance(ff, fr)
        return {"fid": frechet_distance(ff, fr), "kid": kid, "kid_sd": kid_sd}
