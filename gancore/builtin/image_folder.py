"""Your own images as a dataset: ``--dataset image-folder --data-dir DIR``.

DIR holds images, either in one subfolder per class (torchvision's ``ImageFolder`` layout: the subfolder names are
the classes, in sorted order) or all at its top level (no labels). Where DIR has ``train/`` and ``test/`` (or
``val/``) subfolders, those are the two splits, each laid out as above; otherwise every image is for training, the
test-set metrics say they need held-out images, and bigan's reconstruction pictures show training images. Each
image is resized on its shorter side and cropped to a centred square of ``image_size`` pixels (torchvision's
transforms), then read as RGB or greyscale; the whole set is decoded once into memory, as the other datasets are.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from gancore.components import TensorData
from gancore.errors import DataError

LAYOUT = ("a folder of images, or of one subfolder of images per class (torchvision's ImageFolder layout), "
          "optionally split into train/ and test/")
HELD_OUT = ("test", "val")


@dataclass(kw_only=True)
class ImageFolderConfig:
    image_size: int = 64  # pixels a side after the resize and centre crop (dcgan: 28, 32 or 64)
    channels: int = 3  # 3: RGB; 1: greyscale

    def __post_init__(self) -> None:
        if not 4 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [4, 1024] pixels, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 3 (RGB) or 1 (greyscale), got {self.channels}")


def _is_image(p: Path) -> bool:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return p.is_file() and p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith(".")


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """The images of one split, with their class indices and the class names (None for a flat folder)."""
    top = sorted(p for p in folder.iterdir() if _is_image(p))
    classes = [d for d in _subfolders(folder) if any(_is_image(p) for p in d.rglob("*"))]
    if top and classes:
        raise DataError(f"{folder} holds images both at its top level and in subfolders "
                        f"({', '.join(d.name for d in classes[:3])}); put every image in a class subfolder, "
                        f"or all of them at the top level for unlabelled training")
    if top:
        return top, None, None
    files, labels = [], []
    for i, d in enumerate(classes):
        found = sorted(p for p in d.rglob("*") if _is_image(p))
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"no images found in {folder} (looked for .png, .jpg, .jpeg, .bmp, .webp and the other "
                        f"types torchvision reads); --data-dir takes {LAYOUT}")
    return files, labels, [d.name for d in classes]


def _split(base: Path, train: bool) -> Path:
    if not (base / "train").is_dir():
        if train:
            return base
        raise DataError(f"{base} has no held-out images, which this needs (a test-set metric or picture); put "
                        f"them in {base / 'test'} beside the training images in {base / 'train'}")
    if train:
        return base / "train"
    for name in HELD_OUT:
        if (base / name).is_dir():
            return base / name
    raise DataError(f"{base} has train/ but no test/ or val/ folder of held-out images, which this needs (a "
                    f"test-set metric or picture); add one laid out as train/ is")


def _transform(cfg: ImageFolderConfig) -> Callable[[Image.Image], torch.Tensor]:
    from torchvision import transforms as T

    return T.Compose([T.Resize(cfg.image_size), T.CenterCrop(cfg.image_size), T.PILToTensor()])


def image_folder(cfg: ImageFolderConfig, *, root: str = "", train: bool = True) -> TensorData:
    """Images from ``--data-dir``: resized, centre-cropped, in [-1, 1]; labelled by class subfolder if any."""
    if not root:
        raise DataError(f"dataset image-folder reads the images in --data-dir DIR: {LAYOUT}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"--data-dir {root!r} is not a folder; image-folder takes {LAYOUT}")
    folder = _split(base, train)
    files, labels, classes = _files(folder)
    if not train and classes is not None:
        trained = _files(_split(base, True))[2]
        if trained != classes:
            raise DataError(f"{folder}'s classes {classes} differ from those of the training images {trained}; "
                            f"give both splits the same class subfolders")
    mode, tf = ("RGB" if cfg.channels == 3 else "L"), _transform(cfg)
    if len(files) >= 10_000:  # minutes for a large set: say what the wait is
        print(f"gancore: note: decoding {len(files)} images from {folder}", file=sys.stderr, flush=True)
    pixels = []
    for p in files:
        try:
            with Image.open(p) as im:
                pixels.append(tf(im.convert(mode)))
        except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
            raise DataError(f"cannot read image {p} ({e}); remove or replace it") from None
    # uint8 until the whole set is in: a quarter of the memory while decoding
    x = torch.stack(pixels).float().div_(127.5).sub_(1.0)
    y = torch.tensor(labels, dtype=torch.int64) if labels is not None else None
    return TensorData(x=x, y=y, kind="image", value_range=(-1.0, 1.0), classes=classes,
                      info={"dataset": "image-folder"})
