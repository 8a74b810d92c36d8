"""Your own images as a dataset: ``--dataset image-folder --data-dir DIR``.

DIR holds images, either in one subfolder per class (torchvision's ``ImageFolder`` layout: the subfolder names are
the classes, in sorted order) or all at its top level (no labels). Where DIR has ``train/`` and ``test/`` (or
``val/``) subfolders, those are the two splits, each laid out as above; otherwise every image is for training, the
test-set metrics say they need held-out images, and bigan's reconstruction pictures show training images. Each
image is resized on its shorter side and cropped to a centred square of ``image_size`` pixels (torchvision's
transforms), then read as RGB or greyscale; the whole set is decoded once into memory, as the other datasets are.
With ``data.limit=N`` only N training images are decoded, spread evenly over the sorted files, so each class keeps
its share (the first N files would all come from the first classes).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from gancore.components import TensorData
from gancore.errors import DataError, NoHeldOutError

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


# torchvision's types, and the others Pillow reads that cameras and the web use (a GIF's first frame)
EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS) and not name.startswith(".")


_NOTED: set[str] = set()


def _note(text: str) -> None:
    """A note on stderr, once per process: a split's files are listed more than once (its classes are checked)."""
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"gancore: note: {text}", file=sys.stderr)


class _Walk:
    """The folders one split has read (by real path), so a symlink that leads back to one (``cat/up -> ..``) or
    into another class (``dog/cats -> ../cat``) adds no copies and no mislabelled images; and the files it skipped
    for their type, for one note."""

    def __init__(self, root: Path, classes: list[Path]) -> None:
        self.root = Path(os.path.realpath(root))
        self.classes = {Path(os.path.realpath(c)): c for c in classes}
        if len(self.classes) < len(classes):  # two class folders, one a link to the other
            raise DataError(f"two class folders in {root} are the same folder (a symlink to another class); keep one")
        self.seen: set[str] = set()
        self.skipped: dict[str, int] = {}
        self.broken: list[str] = []  # broken symlinks, named in the note: one may be a class folder whose target moved

    def enters(self, folder: str, cls: Path) -> bool:
        """Whether to read ``folder``, met while reading class folder ``cls``: not if it was read already (a loop),
        holds the root (a way back up), or lies in another class (its images would take this class's label)."""
        real = Path(os.path.realpath(folder))
        mine = Path(os.path.realpath(cls))
        other = any(real.is_relative_to(c) for c in self.classes if c != mine)
        if str(real) in self.seen or self.root.is_relative_to(real) or other:
            _note(f"skipped {folder}: it leads to a folder read {'as another class' if other else 'already'}")
            return False
        self.seen.add(str(real))
        return True

    def images(self, here: str, files: list[str]) -> list[Path]:
        found = []
        for f in sorted(files):
            if f.startswith("."):
                continue
            path = os.path.join(here, f)
            if os.path.islink(path) and not os.path.exists(path):  # a broken symlink, to an image or a folder
                kind = "broken symlinks"  # at the top level as in class folders: skipped, counted and named
                self.broken.append(path)
            elif not _is_image(f):
                kind = Path(f).suffix.lower() or "(no suffix)"
            else:
                found.append(Path(here) / f)
                continue
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
        return found

    def note_skipped(self, folder: Path) -> None:
        if self.skipped:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
            links = (f"; broken symlinks (to images, or to class folders that moved): {', '.join(self.broken[:3])}"
                     f"{', ...' if len(self.broken) > 3 else ''}" if self.broken else "")
            _note(f"{folder}: skipped {sum(self.skipped.values())} files that are not images read here ({kinds}); "
                  f"images are {', '.join(EXTENSIONS)}{links}")


def _images_under(folder: Path, walk: _Walk) -> list[Path]:
    """Every image below ``folder``, through symlinked folders too (each real folder once), skipping hidden files
    and folders at every level (``.ipynb_checkpoints`` would otherwise add copies)."""
    found: list[Path] = []
    if not walk.enters(str(folder), folder):
        return found
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in sorted(dirs) if not d.startswith(".") and walk.enters(os.path.join(here, d), folder)]
        found += walk.images(here, files)
    return found


def _files(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """The images of one split, with their class indices and the class names (None for a flat folder)."""
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    walk = _Walk(folder, subfolders)
    top = walk.images(str(folder), [p.name for p in folder.iterdir() if not p.is_dir()])
    per_class = {d.name: _images_under(d, walk) for d in subfolders}
    walk.note_skipped(folder)
    labelled = [name for name, found in per_class.items() if found]
    if top and labelled:
        raise DataError(f"{folder} holds images both at its top level and in subfolders "
                        f"({', '.join(labelled[:3])}); put every image in a class subfolder, or all of them at the "
                        f"top level for unlabelled training")
    if top:
        return top, None, None
    if not labelled:
        raise DataError(f"no images found in {folder} (looked for .png, .jpg, .jpeg, .bmp, .webp and the other "
                        f"types torchvision reads); --data-dir takes {LAYOUT}")
    empty = [name for name, found in per_class.items() if not found]
    if empty:  # torchvision refuses these too: a class index would shift between splits
        raise DataError(f"class folder(s) {', '.join(empty)} in {folder} hold no images; fill or remove them")
    files, labels = [], []
    for i, found in enumerate(per_class.values()):
        files += found
        labels += [i] * len(found)
    return files, labels, list(per_class)


def has_held_out(root: str) -> bool:
    """Whether an image folder has a ``test/`` or ``val/`` split beside ``train/``."""
    base = Path(root).expanduser()
    return (base / "train").is_dir() and any((base / name).is_dir() for name in HELD_OUT)


def _check_splits(base: Path) -> None:
    """``test/`` without ``train/``, or ``Train/``: refused, since each would be read as a class of training images
    (the held-out ones trained on, under a class named test)."""
    if (base / "train").is_dir():  # on a case-insensitive disk, Train/ is train/
        return
    names = {p.name for p in base.iterdir() if p.is_dir()}
    odd = sorted(n for n in names if n.lower() in ("train", *HELD_OUT))
    if odd:
        raise DataError(f"{base} has {', '.join(n + '/' for n in odd)} but no train/ folder, so it would be read as "
                        f"classes named {', '.join(odd)}; name the splits train/ and test/ (lower case), or move the "
                        f"held-out folder out of {base} to train on every image")


def _split(base: Path, train: bool) -> Path:
    _check_splits(base)
    if not (base / "train").is_dir():
        if train:
            return base
        raise NoHeldOutError(f"{base} has no held-out images, which this needs (a test-set metric); put them in "
                             f"{base / 'test'} beside the training images in {base / 'train'}")
    if train:
        return base / "train"
    for name in HELD_OUT:
        if (base / name).is_dir():
            return base / name
    raise NoHeldOutError(f"{base} has train/ but no test/ or val/ folder of held-out images, which this needs (a "
                         f"test-set metric); add one laid out as train/ is")


def _pixels(im: Image.Image, mode: str) -> Image.Image:
    """An 8-bit ``mode`` image as it is meant to look: EXIF rotation applied, transparency over white, 16-bit
    greyscale scaled down rather than clipped to white, 32-bit float greyscale in [0, 1] scaled up rather than
    rounded to black."""
    im = ImageOps.exif_transpose(im)
    if im.mode in ("F", "I;16", "I;16B", "I;16L", "I"):  # greyscale wider than 8 bits: scaled to its range
        a = np.nan_to_num(np.asarray(im, dtype=np.float64))
        if im.mode == "F":  # 32-bit float: [0, 1] as most tools write it, else 0 to 255
            top = 1.0 if a.max() <= 1.0 else 255.0
        else:
            top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        im = Image.fromarray((a / top * 255.0 + 0.5).clip(0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return im.convert(mode)


def _transform(image_size: int) -> Callable[[Image.Image], torch.Tensor]:
    from torchvision import transforms as T

    return T.Compose([T.Resize(image_size), T.CenterCrop(image_size), T.PILToTensor()])


def image_folder(cfg: ImageFolderConfig, *, root: str = "", train: bool = True, limit: int = 0) -> TensorData:
    """Images from ``--data-dir``: resized, centre-cropped, in [-1, 1]; labelled by class subfolder if any;
    ``limit`` > 0: only that many training images, evenly spread over the files (and so over the classes)."""
    if not root:
        raise DataError(f"dataset image-folder reads the images in --data-dir DIR: {LAYOUT}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"--data-dir {root!r} is not a folder; image-folder takes {LAYOUT}")
    if train:
        x, y, classes = _decode(_split(base, True), cfg.image_size, cfg.channels, limit)
        if has_held_out(root):  # refused now, not at the first sample grid or metric that reads the split
            held = _split(base, False)
            _check_classes(held, _files(held)[2], classes)
    else:  # pictures and metrics read the held-out split again and again: decode it once per process
        x, y, classes = _held_out(str(base.resolve()), cfg.image_size, cfg.channels)
    return TensorData(x=x, y=y, kind="image", value_range=(-1.0, 1.0), classes=classes,
                      info={"dataset": "image-folder"})


@lru_cache(maxsize=2)
def _held_out(base: str, image_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None]:
    folder = _split(Path(base), False)
    trained = _files(_split(Path(base), True))[2]
    x, y, classes = _decode(folder, image_size, channels)
    _check_classes(folder, classes, trained)
    return x, y, classes


def _check_classes(folder: Path, classes: list[str] | None, trained: list[str] | None) -> None:
    if trained != classes:
        raise DataError(f"{folder}'s classes {classes or '(none: unlabelled)'} differ from those of the training "
                        f"images {trained or '(none: unlabelled)'}; lay both splits out alike")


def spread(n: int, limit: int) -> list[int]:
    """``limit`` indices of ``range(n)`` spaced as evenly as whole numbers allow (all of them if ``limit`` is 0 or
    at least ``n``): a sample of a class-sorted file list that keeps each class's share."""
    if not 0 < limit < n:
        return list(range(n))
    return [i * n // limit for i in range(limit)]


def _decode(folder: Path, image_size: int, channels: int, limit: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor | None, list[str] | None]:
    files, labels, classes = _files(folder)
    keep = spread(len(files), limit)
    files = [files[i] for i in keep]
    labels = [labels[i] for i in keep] if labels is not None else None
    mode, tf = ("RGB" if channels == 3 else "L"), _transform(image_size)
    if len(files) >= 10_000:  # minutes for a large set: say what the wait is
        print(f"gancore: note: decoding {len(files)} images from {folder}", file=sys.stderr, flush=True)
    pixels = []
    with warnings.catch_warnings():
        # Pillow warns of a "decompression bomb" from 89 megapixels: a user's own large photo, read and shrunk as
        # any other (past twice that, Pillow refuses it, and so do we, below)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for p in files:
            try:
                with Image.open(p) as im:
                    pixels.append(tf(_pixels(im, mode)))
            except MemoryError:
                raise  # the whole set decodes into memory: that is not this file's fault
            except Exception as e:  # OSError (UnidentifiedImageError), SyntaxError (a broken PNG chunk), Pillow's
                # DecompressionBombError (over its pixel limit, or a corrupt header claiming so), ValueError, ...
                raise DataError(f"cannot read image {p} ({type(e).__name__}: {e}); remove or replace it") from None
    # uint8 until the whole set is in: a quarter of the memory while decoding
    x = torch.stack(pixels).float().div_(127.5).sub_(1.0)
    return x, (torch.tensor(labels, dtype=torch.int64) if labels is not None else None), classes
