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
