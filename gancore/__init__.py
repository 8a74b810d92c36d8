"""gancore: a plugin-based GAN toolkit on PyTorch.

The public API::

    import gancore
    state = gancore.prepare("dcgan", {"train": {"steps": 500}})
    gancore.train(state)
    gancore.sample(state.run_dir, n=64, out="grid.png")
    gancore.export_run(state.run_dir, ["onnx", "torchscript"])
    scores = gancore.evaluate_run(state.run_dir).results   # as `gan eval`: {"fashion-quality/frechet": ...}
    gancore.list_plugins()                                  # as `gan plugins`: what each plugin registered
"""

from __future__ import annotations

import importlib.metadata as _md

try:
    __version__ = _md.version("gancore")
except _md.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

from gancore.plugins import hookimpl

__all__ = ["__version__", "evaluate_run", "export_run", "hookimpl", "list_plugins", "prepare", "prepare_resume",
           "sample", "train"]


def __getattr__(name: str):  # lazy: `import gancore` in a plugin must not pull in torch
    if name in ("prepare", "prepare_resume", "train"):
        from gancore import loop as _train

        return getattr(_train, name)
    if name == "export_run":
        from gancore.export import export_run

        return export_run
    if name == "sample":
        from gancore.sampling import sample

        return sample
    if name == "evaluate_run":
        from gancore.evaluate import evaluate_run

        return evaluate_run
    if name == "list_plugins":
        from gancore.plugins import list_plugins

        return list_plugins
    raise AttributeError(name)
