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
