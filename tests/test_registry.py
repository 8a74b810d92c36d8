import re
from dataclasses import dataclass

import pytest

from gancore.errors import ConfigError, PluginError
from gancore.registry import Registry


@dataclass(kw_only=True)
class Cfg:
    width: int = 8
    rate: float = 0.5

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError("width must be >= 1")


def build(cfg: Cfg, **ctx):
    return ("built", cfg, ctx)


def test_a_description_from_a_docstring_is_its_first_paragraph_whole():
    def recipe():
        """DCGAN-style networks, E with a dense
        layer of 1024 units.

        Details a listing does not need."""

    reg = Registry("things")
    reg.register("r", recipe, plugin="p1")
    assert reg.get("r").description == "DCGAN-style networks, E with a dense layer of 1024 units."


def test_lists_sorted_names_and_builds_from_typed_config():
    reg = Registry("things")  # a kind whose builders' results are not checked
    reg.register("b", build, config=Cfg, plugin="p1")
    reg.register("a", build, config=Cfg, plugin="p1")
    assert reg.list() == ["a", "b"]
    _, cfg, ctx = reg.build("a", {"width": 3, "rate": 1}, extra=1)
    assert cfg == Cfg(width=3, rate=1.0) and isinstance(cfg.rate, float) and ctx == {"extra": 1}


def test_duplicate_names_both_plugins():
    reg = Registry("losses")
    reg.register("ns", build, plugin="first")
    with pytest.raises(PluginError, match=r"'ns' is registered twice: by plugin 'first' and by plugin 'second'"):
        reg.register("ns", build, plugin="second")


def test_unknown_name_suggests_closest_and_lists_known():
    reg = Registry("losses")
    reg.register("nonsaturating", build, plugin="p")
    with pytest.raises(PluginError, match=r"^unknown loss 'nonsaturatin'\. Did you mean 'nonsaturating'\? Known "
                                          r"losses: nonsaturating"):
        reg.get("nonsaturatin")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"widht": 2}, r"unknown key 'widht'.*Did you mean 'width'.*Valid keys: rate, width"),
        ({"width": "wide"}, r"width expects an integer, got 'wide'"),
        ({"width": 2.5}, r"width expects an integer"),
        ({"rate": True}, r"rate expects a number"),
        ({"width": 0}, r"width must be >= 1"),
    ],
)
def test_bad_params_are_refused(params, message):
    reg = Registry("generators")
    reg.register("g", build, config=Cfg, plugin="p")
    with pytest.raises(ConfigError, match=message):
        reg.build("g", params)


def test_config_must_be_a_dataclass():
    with pytest.raises(PluginError, match="must be a dataclass"):
        Registry("losses").register("x", build, config=dict, plugin="p")


def test_a_builder_that_cannot_take_what_gancore_passes_is_refused_naming_its_plugin():
    def no_data(cfg: Cfg, *, latent):
        raise AssertionError("never called")

    reg = Registry("generators")
    reg.register("g", no_data, config=Cfg, plugin="mine")
    with pytest.raises(PluginError, match=r"generator 'g' of plugin 'mine': its builder cannot be called as gancore "
                                          r"calls it, builder\(cfg, latent=\.\.\., data=\.\.\.\): got an unexpected "
                                          r"keyword argument 'data'"):
        reg.build("g", {}, latent=(), data={})
    reg.register("m", lambda run: None, plugin="mine")  # a metric builder wants no argument
    with pytest.raises(PluginError, match=r"builder\(\): missing a required argument: 'run'"):
        reg.build("m")


@pytest.mark.parametrize("name", ["../odd", "sp ace", "odd.name=x", ".hidden", "a/b", "-x"])
def test_a_name_that_cannot_be_typed_or_name_a_run_folder_is_refused(name):
    with pytest.raises(PluginError, match=rf"plugin 'p' registered a recipe named '{re.escape(name)}'; a name is "
                                          r"letters, digits and \. _ \+ -"):
        Registry("recipes").register(name, dict, plugin="p")
    Registry("recipes").register("my-gan_2.0+cuda", dict, plugin="p")


def test_a_builder_that_is_not_callable_is_refused_at_registration():
    with pytest.raises(PluginError, match=r"plugin 'p' registered recipe 'r' with a str as its builder; register a "
                                          r"function"):
        Registry("recipes").register("r", "not a function", plugin="p")


def test_a_builder_that_raises_or_returns_the_wrong_thing_is_named_with_its_plugin():
    from torch import nn

    from gancore.errors import DataError

    def boom(cfg):
        raise RuntimeError("CUDA kernel missing")

    def missing(cfg, **ctx):
        raise DataError("download the files first")

    reg = Registry("generators")
    reg.register("boom", boom, config=Cfg, plugin="mine")
    reg.register("number", lambda: 42, plugin="mine")
    reg.register("missing", missing, config=Cfg, plugin="mine")
    reg.register("net", lambda: nn.Linear(1, 1), plugin="mine")
    with pytest.raises(PluginError, match=r"^generator 'boom' of plugin 'mine' failed to build \(test_registry.py:"
                                          r"\d+\): RuntimeError: CUDA kernel missing; GANCORE_TRACEBACK=1 shows the "
                                          r"traceback$") as raised:
        reg.build("boom")
    assert isinstance(raised.value.__cause__, RuntimeError)  # for GANCORE_TRACEBACK=1
    with pytest.raises(PluginError, match=r"^generator 'number' of plugin 'mine': its builder returned an object of "
                                          r"type int, expected a torch.nn.Module"):
        reg.build("number")
    with pytest.raises(DataError, match=r"^download the files first$"):  # a plugin's own clear error stays as it is
        reg.build("missing")
    assert isinstance(reg.build("net"), nn.Linear)
    losses = Registry("losses")
    losses.register("half", lambda: type("Half", (), {"discriminator_loss": lambda self, s: {}})(), plugin="mine")
    with pytest.raises(PluginError, match=r"type Half, expected a gancore.components.Loss \(with "
                                          r"discriminator_loss, generator_loss\)"):
        losses.build("half")
