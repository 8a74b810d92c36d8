"""Cheap image augmentations for consistency terms: the same reading of an image and of a slightly moved copy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def not_images(data: dict[str, Any], what: str) -> str | None:
    """Why data whose examples are not images (channels, height, width) cannot be used, or None."""
    shape = data.get("shape", [])
    if len(shape) != 3:
        return f"{what} (channels, height, width), and this data's examples have shape {list(shape)}"
    return None


def random_shift(x: Tensor, shift: int) -> Tensor:
    """Each image (B x C x H x W) moved by its own whole-pixel offset in [-shift, shift] on both axes; the edge
    pixels fill in. Draws from torch's global generator, which a run seeds and checkpoints."""
    b, c, h, w = x.shape
    padded = F.pad(x, (shift, shift, shift, shift), mode="replicate")
    dy, dx = (torch.randint(0, 2 * shift + 1, (b, 1), device=x.device) for _ in range(2))
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    return padded[batch, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


def class_consistency(logits: Tensor, moved_logits: Tensor) -> Tensor:
    """KL(p || p_moved) over the last axis, summed over any middle axes, mean over the batch, with p (the reading
    of the unmoved image) held fixed, so only the moved reading is pulled towards it."""
    logp = F.log_softmax(logits.detach().float(), dim=-1)
    kl = (logp.exp() * (logp - F.log_softmax(moved_logits.float(), dim=-1))).sum(-1)
    return kl.flatten(1).sum(1).mean() if kl.dim() > 1 else kl.mean()
