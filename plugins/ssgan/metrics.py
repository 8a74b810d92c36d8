"""D as a classifier: its accuracy on the labelled test set."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gancore.components import Metric
from gancore.sampling import batched, eval_mode
from gancore.state import load_data, to_device


def predict(d: nn.Module, x: Tensor, batch: int = 1000) -> Tensor:
    """argmax of D's K class logits (the fake class never wins: it is not among them)."""
    return batched(lambda xs: d(xs).logits.argmax(1), x, batch)


class TestAccuracy(Metric):
    """Test-set accuracy of a K-class discriminator (one with ``classes`` logits matching the dataset's)."""

    def applies(self, state: Any) -> bool:
        d = getattr(getattr(state, "nets", None), "discriminator", None)
        classes = state.data_info.get("classes")
        return d is not None and classes is not None and getattr(d, "classes", None) == len(classes)

    def __call__(self, state: Any) -> dict[str, float]:
        test = load_data(state.manager, state.config, train=False)
        if test.y is None:
            return {}
        d = state.nets.discriminator
        with eval_mode(d):
            pred = predict(d, to_device(test.x, state.device, state.config))
        return {"test_accuracy": float((pred == test.y.cpu()).float().mean())}
