"""Image datasets read with torchvision's own classes, never downloaded at run time.

Fashion-MNIST is looked for, in order, in ``data.dir`` (a torchvision root or a folder of the four IDX
files), the gancore cache (``$GANCORE_CACHE``, default ``~/.cache/gancore``) and the folder of the
Debian package ``dataset-fashion-mnist``. IDX files found outside a torchvision root are unpacked once
into the cache, where torchvision's ``FashionMNIST(root, download=False)`` reads them.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gancore.components import TensorData
from gancore.errors import DataError
from gancore.fsutil import replacing

DEBIAN_DIRS = {"FashionMNIST": "/usr/share/datasets/fashion-mnist", "MNIST": "/usr/share/datasets/mnist"}
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
HOW_TO_GET = {
    "FashionMNIST": "install the Debian package (apt-get install dataset-fashion-mnist), or pass "
                    "--data-dir with a torchvision root or a folder holding the four IDX files",
    "MNIST": "pass --data-dir with a torchvision root (MNIST/raw/) or a folder holding the four IDX files",
}


@dataclass(kw_only=True)
class ImageConfig:
    image_size: int = 0  # resize to this many pixels a side (0: native 28)

    def __post_init__(self) -> None:
        if self.image_size not in (0, 28, 32, 64):
            raise ValueError(f"image_size must be 28, 32 or 64 (or 0 for native), got {self.image_size}")


def cache_dir() -> Path:
    return Path(os.environ.get("GANCORE_CACHE") or Path.home() / ".cache" / "gancore")


def _idx_folder(folder: Path) -> bool:
    return all((folder / f).exists() or (folder / f"{f}.gz").exists() for f in IDX_FILES)


def _unpack_into(src: Path, raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    for f in IDX_FILES:
        dest = raw / f
        if dest.exists():
            continue
        with replacing(dest) as tmp:  # a crash never leaves a half-written file under its real name
            if (src / f).exists():
                shutil.copyfile(src / f, tmp)
            else:
                with gzip.open(src / f"{f}.gz", "rb") as fin, open(tmp, "wb") as fout:
                    shutil.copyfileobj(fin, fout)


def find_root(folder_name: str, data_dir: str) -> Path:
    """A torchvision root holding ``<folder_name>/raw/`` with the uncompressed IDX files."""
    candidates: list[Path] = []
    if data_dir:
        d = Path(data_dir).expanduser()
        if not d.exists():
            raise DataError(f"--data-dir {data_dir!r} does not exist; {HOW_TO_GET[folder_name]}")
        candidates = [d, d / folder_name / "raw"]
    else:
        candidates = [cache_dir() / "data" / folder_name / "raw", Path(DEBIAN_DIRS[folder_name])]
    for c in candidates:
        if c.is_dir() and _idx_folder(c):
            if c.name == "raw" and c.parent.name == folder_name and all((c / f).exists() for f in IDX_FILES):
                return c.parent.parent
            root = cache_dir() / "data"
            try:
                _unpack_into(c, root / folder_name / "raw")
            except OSError as e:
                raise DataError(f"could not unpack {folder_name} from {c} into {root}: {e}; "
                                f"set GANCORE_CACHE to a writable folder") from None
            return root
    where = ", ".join(str(c) for c in candidates)
    raise DataError(f"{folder_name} files not found (looked in {where}); {HOW_TO_GET[folder_name]}")


def _load(cls_name: str, cfg: ImageConfig, root: str, train: bool) -> TensorData:
    import torchvision

    base = find_root(cls_name, root)
    cls = getattr(torchvision.datasets, cls_name)
    try:
        ds = cls(str(base), train=train, download=False)
    except (RuntimeError, ValueError, OSError) as e:
        raise DataError(f"{cls_name} files in {base} are unreadable ({e}); {HOW_TO_GET[cls_name]}") from None
    # uint8 N x 28 x 28 -> float N x 1 x 28 x 28 in [-1, 1], the tanh range of the generators.
    x = ds.data.unsqueeze(1).float().div_(127.5).sub_(1.0)
    if cfg.image_size and cfg.image_size != x.shape[-1]:
        x = F.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear", align_corners=False)
        x = x.clamp_(-1.0, 1.0)
    return TensorData(x=x.contiguous(), y=ds.targets.to(torch.int64), kind="image", value_range=(-1.0, 1.0),
                      classes=list(ds.classes), info={"dataset": cls_name})


def fashion_mnist(cfg: ImageConfig, *, root: str = "", train: bool = True) -> TensorData:
    """Fashion-MNIST (Xiao et al. 2017): 60k/10k 28x28 greyscale images of 10 clothing classes."""
    return _load("FashionMNIST", cfg, root, train)


def mnist(cfg: ImageConfig, *, root: str = "", train: bool = True) -> TensorData:
    """MNIST handwritten digits: 60k/10k 28x28 greyscale images."""
    return _load("MNIST", cfg, root, train)
