"""Source of fake plugins the tests install into a temporary site folder."""

BROKEN_IMPORT = """
raise ImportError("this plugin needs a library that is not installed")
"""

RAISES_IN_REGISTER = """
from gancore import hookimpl

@hookimpl
def gan_register_losses(register):
    raise RuntimeError("boom while registering")
"""

DUPLICATE_LOSS = """
from gancore import hookimpl

class Loss:
    pass

@hookimpl
def gan_register_losses(register):
    register("nonsaturating", Loss)
"""

GOOD = """
from dataclasses import dataclass
from gancore import hookimpl
from gancore.components import LogitLoss

@dataclass(kw_only=True)
class Cfg:
    scale: float = 1.0

class Scaled(LogitLoss):
    def __init__(self, cfg):
        self.scale = cfg.scale
    def d_loss(self, real, fake):
        return self.scale * (fake.mean() - real.mean())
    def g_loss(self, fake):
        return -self.scale * fake.mean()

@hookimpl
def gan_register_losses(register):
    register("scaled-wasserstein", Scaled, config=Cfg)
"""

COMMAND = """
from gancore import hookimpl

def hello(name: str = "world"):
    '''Say hello from a plugin command.'''
    print(f"hello {name} from a plugin")

@hookimpl
def gan_register_commands(register):
    register("hello", hello)
"""

COMMAND_BUG = """
import typer
from gancore import hookimpl

def boom(code: int = 0):
    '''A plugin command with a bug in it, and one that exits on purpose.'''
    if code:
        raise typer.Exit(code)
    return {}["oops"]

@hookimpl
def gan_register_commands(register):
    register("boom", boom)
"""

WRONG_SHAPE = """
from dataclasses import dataclass
import torch
from torch import nn
from gancore import hookimpl

class Flat(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(100, 32 * 32)
    def forward(self, noise):
        return self.lin(noise).view(-1, 1, 32, 32)   # 32 px while the data is 28 px

@hookimpl
def gan_register_generators(register):
    register("wrong-shape", lambda **ctx: Flat())
"""

COLOUR_DATA = """
import torch
from gancore import hookimpl
from gancore.components import TensorData

def colour_squares(cfg=None, *, root="", train=True):
    '''Class k: a 3 x 16 x 16 image of its own colour, plus noise; 200 training and 50 test images.'''
    g = torch.Generator().manual_seed(0 if train else 1)
    y = torch.arange(10).repeat(20 if train else 5)
    colour = torch.rand(10, 3, 1, 1, generator=torch.Generator().manual_seed(7)) * 2 - 1
    x = (colour[y] + 0.2 * torch.randn(len(y), 3, 16, 16, generator=g)).clamp(-1, 1)
    return TensorData(x=x, y=y, classes=[f"colour {k}" for k in range(10)], info={"dataset": "colour-squares"})

@hookimpl
def gan_register_datasets(register):
    register("colour-squares", colour_squares)
"""

EXITS_AT_IMPORT = """
import sys
sys.exit("this plugin exits when imported")
"""

HALF_LOADS = """
from gancore import hookimpl

@hookimpl
def gan_register_generators(register):
    register("half-g", lambda cfg=None, **kw: None)

@hookimpl
def gan_register_losses(register):
    register("nonsaturating", object)  # taken by the core: this hook fails after the generator went in

@hookimpl
def gan_register_recipes(register):
    register("half", lambda: {"generator": {"name": "half-g"}})
"""

HIJACKS_UNINSTALL = """
from gancore import hookimpl

def uninstall():
    print("hijacked")

@hookimpl
def gan_register_commands(register):
    register("uninstall", uninstall)
"""

BAD_HOOK_ARGUMENT = """
from gancore import hookimpl

@hookimpl
def gan_register_losses(reg):   # the spec's argument is `register`
    pass
"""

MISSPELT_HOOK = """
from gancore import hookimpl

@hookimpl
def gan_register_loss(register):   # gan_register_losses
    pass
"""

NEWER_HOOK = """
from gancore import hookimpl

@hookimpl(optionalhook=True)
def gan_a_hook_of_a_later_gancore(state):
    pass
"""

TRAINING_HOOK_RAISES = """
import os
from gancore import hookimpl

@hookimpl
def gan_train_start(state):
    if os.environ.get("FAKE_HOOK") == "start":
        raise RuntimeError("the logging service is down")

@hookimpl
def gan_export_extra(state):
    if os.environ.get("FAKE_HOOK") == "export":
        return ["not", "a", "dict"]

@hookimpl
def gan_register_recipes(register):
    register("listed", lambda: ["not", "a", "dict"])
    register("misspelt", lambda: {"genrator": {"width": 8}})
    register("deep", lambda: {"train": {"step": 20}})
"""
