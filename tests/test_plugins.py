"""Plugin loading: entry points, the environment switches, broken and duplicate plugins."""

import json

import pytest

from gancore.plugins import build_manager, get_manager
from tests.conftest import make_dist
from tests.fake_plugins import BROKEN_IMPORT, DUPLICATE_LOSS, EXITS_AT_IMPORT, GOOD, HALF_LOADS, RAISES_IN_REGISTER


def test_builtin_dcgan_comes_from_the_entry_point_group():
    mgr = build_manager()
    info = mgr.info["dcgan"]
    assert info.entry_point == "gancore_plugins.dcgan"
    assert info.distribution == "gancore" and info.version
    assert info.origin.endswith("dcgan/__init__.py")
    assert info.components["generators"] == ["dcgan"] and info.components["recipes"] == ["dcgan"]
    assert mgr.registries.generators.get("dcgan").plugin == "dcgan"


def test_core_components_are_registered_under_gancore():
    mgr = build_manager()
    assert set(mgr.info["gancore"].components["losses"]) >= {"nonsaturating", "minimax", "hinge"}
    assert mgr.registries.datasets.get("fashion-mnist").plugin == "gancore"


def test_autoload_can_be_switched_off(monkeypatch, capsys):
    monkeypatch.setenv("GANCORE_DISABLE_PLUGIN_AUTOLOAD", "1")
    mgr = build_manager()
    assert "dcgan" not in mgr.info and "dcgan" not in mgr.registries.generators
    assert "nonsaturating" in mgr.registries.losses  # the core's own components stay
    monkeypatch.setenv("GANCORE_PLUGINS", "dcgan")
    build_manager()
    assert "GANCORE_PLUGINS is ignored: GANCORE_DISABLE_PLUGIN_AUTOLOAD=1 loads no plugin" in capsys.readouterr().err


@pytest.mark.parametrize("value, disabled", [("", False), ("0", False), ("False", False), ("off", False),
                                             ("no", False), ("1", True), ("true", True), ("yes", True)])
def test_autoload_switch_reads_explicit_off_values_as_off(monkeypatch, value, disabled):
    monkeypatch.setenv("GANCORE_DISABLE_PLUGIN_AUTOLOAD", value)
    assert ("dcgan" not in build_manager().info) is disabled


def test_allow_list_restricts_loading(fake_site, monkeypatch):
    make_dist(fake_site, "fake-good", {"good": "fake_good"}, {"fake_good": GOOD})
    monkeypatch.setenv("GANCORE_PLUGINS", "good")
    mgr = build_manager()
    assert "good" in mgr.info and "dcgan" not in mgr.info
    monkeypatch.setenv("GANCORE_PLUGINS", "dcgan")
    mgr = build_manager()
    assert "good" not in mgr.info and "dcgan" in mgr.info


def test_an_allow_list_that_matches_no_plugin_says_so(monkeypatch, capsys):
    monkeypatch.setenv("GANCORE_PLUGINS", "dcgan,DCGN")
    mgr = build_manager()
    err = capsys.readouterr().err
    assert "dcgan" in mgr.info and "GANCORE_PLUGINS names 'DCGN', which no installed plugin is called. Did you mean " \
                                   "'dcgan'? Installed plugins: " in err and "'dcgan'," not in err
    monkeypatch.setenv("GANCORE_PLUGINS", "")
    assert list(build_manager().info) == ["gancore"] and "is set but empty" in capsys.readouterr().err


def test_a_plugin_that_fails_to_import_is_named_and_the_rest_work(fake_site, capsys):
    make_dist(fake_site, "fake-broken", {"broken": "fake_broken"}, {"fake_broken": BROKEN_IMPORT})
    make_dist(fake_site, "fake-good", {"good": "fake_good"}, {"fake_good": GOOD})
    mgr = build_manager()
    assert "plugin 'broken'" in capsys.readouterr().err
    assert "needs a library" in mgr.info["broken"].error
    assert mgr.info["broken"].distribution == "fake-broken"
    assert "scaled-wasserstein" in mgr.registries.losses and "dcgan" in mgr.registries.generators


def test_a_plugin_that_raises_while_registering_is_reported(fake_site, capsys):
    make_dist(fake_site, "fake-raises", {"raises": "fake_raises"}, {"fake_raises": RAISES_IN_REGISTER})
    mgr = build_manager()
    assert "boom while registering" in mgr.info["raises"].error
    assert "plugin 'raises' failed in gan_register_losses" in capsys.readouterr().err
    assert "dcgan" in mgr.registries.generators


def test_a_duplicate_component_names_both_plugins(fake_site):
    make_dist(fake_site, "fake-dup", {"dup": "fake_dup"}, {"fake_dup": DUPLICATE_LOSS})
    mgr = build_manager()
    assert "by plugin 'gancore' and by plugin 'dup'" in mgr.info["dup"].error
    assert mgr.registries.losses.get("nonsaturating").plugin == "gancore"  # the first one stays


def test_a_plugin_that_exits_while_importing_is_reported_and_the_others_load(fake_site, capsys):
    make_dist(fake_site, "fake-exits", {"exits": "fake_exits"}, {"fake_exits": EXITS_AT_IMPORT})
    mgr = build_manager()
    assert "SystemExit: this plugin exits when imported" in mgr.info["exits"].error
    assert "plugin 'exits'" in capsys.readouterr().err and "dcgan" in mgr.registries.generators


def test_a_plugin_that_fails_in_one_registration_hook_is_not_loaded_at_all(fake_site, capsys):
    from gancore.errors import UnknownNameError
    from gancore.resolve import resolve_config

    make_dist(fake_site, "fake-half", {"half": "fake_half"}, {"fake_half": HALF_LOADS})
    mgr = build_manager()
    assert "plugin 'half' failed in gan_register_losses and is not loaded" in capsys.readouterr().err
    assert "half-g" not in mgr.registries.generators and "half" not in mgr.registries.recipes  # nothing of it
    assert mgr.info["half"].components == {kind: [] for kind in mgr.info["half"].components}
    with pytest.raises(UnknownNameError, match=r"plugin 'half' is installed but failed to load \(gan_register_losses "
                                               r"failed: PluginError: loss 'nonsaturating' is registered twice"):
        resolve_config(mgr, "half")


def test_a_plugin_that_fails_late_neither_keeps_a_name_from_the_next_nor_has_its_other_hooks_called(capsys):
    from gancore.plugins import hookimpl

    def build(**kw):
        return None

    class Late:
        @hookimpl
        def gan_register_generators(self, register):
            register("foo", build)

        @hookimpl
        def gan_register_recipes(self, register):
            raise RuntimeError("late broke")

        @hookimpl
        def gan_export_extra(self, state):
            raise AssertionError("a plugin that is not loaded is never called")

    class Next:
        @hookimpl
        def gan_register_generators(self, register):
            register("foo", build)

    mgr = build_manager(extra=[("late", Late()), ("next", Next())])
    assert "late broke" in mgr.info["late"].error and mgr.info["next"].error is None
    assert mgr.registries.generators.get("foo").plugin == "next"
    assert not mgr.pm.has_plugin("late")
    assert "late" not in [i.plugin_name for i in mgr.hook.gan_export_extra.get_hookimpls()]


def test_two_distributions_with_one_plugin_name_are_reported(fake_site, capsys):
    make_dist(fake_site, "fake-good", {"good": "fake_good"}, {"fake_good": GOOD})
    make_dist(fake_site, "fake-other", {"good": "fake_other"}, {"fake_other": GOOD})
    mgr = build_manager()
    err = capsys.readouterr().err
    assert "two installed distributions provide a plugin named 'good'" in err and "Uninstall one of them" in err
    assert {"fake-good", "fake-other"} >= {mgr.info["good"].distribution} and "fake-good" in err and "fake-other" in err


def test_report_is_json_serialisable_and_lists_components():
    report = get_manager().report()
    json.dumps(report)
    dcgan = next(p for p in report if p["name"] == "dcgan")
    assert dcgan["components"] == {"generators": ["dcgan"], "discriminators": ["dcgan"], "recipes": ["dcgan"]}


def test_hookspecs_are_prefixed_typed_and_documented():
    import inspect

    from gancore import hookspecs

    specs = [f for n, f in vars(hookspecs).items() if n.startswith("gan_")]
    assert len(specs) >= 14
    for f in specs:
        sig = inspect.signature(f)
        assert f.__doc__ and ":param" in f.__doc__, f.__name__
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), f.__name__
        assert sig.return_annotation is not inspect.Signature.empty, f.__name__


@pytest.mark.parametrize("kind", ["generators", "discriminators", "networks", "losses", "regularizers",
                                  "samplers", "datasets", "metrics", "recipes", "commands"])
def test_every_registry_has_a_registration_hook(kind):
    from gancore import hookspecs

    assert hasattr(hookspecs, f"gan_register_{kind}")


@pytest.mark.parametrize(("source", "why"), [
    ("BAD_HOOK_ARGUMENT", r"Argument\(s\) \{'reg'\} are declared in the hookimpl but can not be found in the hookspec"),
    ("MISSPELT_HOOK", r"implements gan_register_loss, which is not a gancore hook. Did you mean "
                      r"'gan_register_losses'\?")])
def test_a_plugin_whose_hook_does_not_fit_a_spec_is_skipped_and_named_and_the_rest_work(fake_site, capsys, source,
                                                                                         why):
    import re

    from tests import fake_plugins

    make_dist(fake_site, "fake-bad", {"bad": "fake_bad"}, {"fake_bad": getattr(fake_plugins, source)})
    make_dist(fake_site, "fake-good", {"good": "fake_good"}, {"fake_good": GOOD})
    mgr = build_manager()  # before, one such plugin stopped every command, `gan uninstall` included
    assert re.search(why, mgr.info["bad"].error) and "plugin 'bad' (fake_bad) is skipped" in capsys.readouterr().err
    assert not mgr.pm.has_plugin("bad") and "scaled-wasserstein" in mgr.registries.losses
    assert "error" in next(p for p in mgr.report() if p["name"] == "bad")


def test_a_hook_marked_optional_for_a_later_gancore_loads(fake_site):
    from tests.fake_plugins import NEWER_HOOK

    make_dist(fake_site, "fake-newer", {"newer": "fake_newer"}, {"fake_newer": NEWER_HOOK})
    assert build_manager().info["newer"].error is None


def test_an_entry_point_named_as_the_core_is_skipped_with_its_distribution_named(fake_site, capsys):
    make_dist(fake_site, "fake-core", {"gancore": "fake_good"}, {"fake_good": GOOD})
    mgr = build_manager()
    assert "fake-core provides a plugin named 'gancore', a name already taken; it is not loaded" in \
        capsys.readouterr().err
    assert mgr.info["gancore"].distribution == "gancore" and "scaled-wasserstein" not in mgr.registries.losses
    assert "dcgan" in mgr.registries.generators  # the rest load, so `gan uninstall fake-core` can run


def test_a_hook_that_raises_is_named_with_its_plugin():
    from gancore.errors import GanError, PluginError
    from gancore.plugins import hookimpl

    class Logger:
        @hookimpl
        def gan_train_log(self, state, metrics):
            raise RuntimeError("the logging service is down")

    class Picky:
        @hookimpl
        def gan_train_log(self, state, metrics):
            raise GanError("a clear error of the plugin's own")

    mgr = build_manager(extra=[("logger", Logger())])
    with pytest.raises(PluginError, match=r"^plugin 'logger' failed in gan_train_log \(test_plugins.py:\d+\): "
                                          r"RuntimeError: the logging service is down; GANCORE_PLUGINS=<plugins to "
                                          r"load> leaves it out; GANCORE_TRACEBACK=1 shows the traceback$"):
        mgr.call("gan_train_log", state=None, metrics={})
    with pytest.raises(GanError, match=r"^a clear error of the plugin's own$"):
        build_manager(extra=[("picky", Picky())]).call("gan_train_log", state=None, metrics={})
    assert mgr.call("gan_train_end", state=None) == []


def test_call_each_pairs_answers_with_their_plugins_in_pluggy_order():
    from gancore.errors import PluginError
    from gancore.plugins import hookimpl

    class A:
        @hookimpl
        def gan_export_extra(self, state):
            return {"a": state}

    class B:
        @hookimpl
        def gan_export_extra(self):  # a hook function may take fewer arguments than the spec
            return None

    class C:
        @hookimpl
        def gan_export_extra(self, state):
            raise KeyError("encoder")

    mgr = build_manager(extra=[("a", A()), ("b", B())], autoload=False)  # the shipped plugins want a run
    assert mgr.call_each("gan_export_extra", state=1) == [("a", {"a": 1})]
    assert [r for _, r in mgr.call_each("gan_export_extra", state=1)] == mgr.hook.gan_export_extra(state=1)
    with pytest.raises(PluginError, match=r"plugin 'c' failed in gan_export_extra \(test_plugins.py:\d+\): "
                                          r"KeyError: 'encoder'"):
        build_manager(extra=[("c", C())], autoload=False).call_each("gan_export_extra", state=1)



def test_a_hook_error_is_blamed_on_the_instance_that_raised_not_its_class_twin():
    from gancore.errors import PluginError
    from gancore.plugins import hookimpl

    class Logger:
        def __init__(self, broken):
            self.broken = broken

        @hookimpl
        def gan_train_log(self, state, metrics):
            if self.broken:
                raise RuntimeError("down")

    mgr = build_manager(extra=[("first", Logger(True)), ("second", Logger(False))], autoload=False)
    with pytest.raises(PluginError, match=r"^plugin 'first' failed in gan_train_log"):
        mgr.call("gan_train_log", state=None, metrics={})
    mgr = build_manager(extra=[("first", Logger(False)), ("second", Logger(True))], autoload=False)
    with pytest.raises(PluginError, match=r"^plugin 'second' failed in gan_train_log"):
        mgr.call("gan_train_log", state=None, metrics={})


def test_an_entry_point_under_a_taken_name_is_not_even_imported(fake_site, capsys):
    from tests.fake_plugins import BROKEN_IMPORT

    make_dist(fake_site, "fake-core", {"gancore": "fake_core"}, {"fake_core": BROKEN_IMPORT})
    mgr = build_manager()  # its import error must not be recorded as the core's
    assert mgr.info["gancore"].error is None and "nonsaturating" in mgr.registries.losses
    assert "fake-core provides a plugin named 'gancore'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- bugs in training


class BuggyLoss:
    """A third party's loss: one bug per mode."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def discriminator_loss(self, step):

        if self.mode == "raises":
            return {"d_mine": undefined_name}  # noqa: F821
        x = step.d_real().logits
        return {"d_mine": x.mean() if self.mode == "float" else x}  # "batch": forgot .mean()

    def generator_loss(self, step):
        return {"g_mine": 0.5 if self.mode == "float" else step.d_fake().logits.mean()}


def buggy_run(mode: str, builder=None):
    from gancore.loop import prepare
    from gancore.plugins import hookimpl
    from tests.conftest import tiny

    class Plugin:
        @hookimpl
        def gan_register_losses(self, register):
            register("buggy", builder or (lambda: BuggyLoss(mode)))

    mgr = build_manager(extra=[("thirdparty", Plugin())])
    return prepare("dcgan", tiny(loss={"name": "buggy"}), out=f"runs/{mode}", mgr=mgr)


def test_a_plugin_losss_bug_in_training_is_one_line_naming_it_and_where():
    from gancore.errors import PluginError
    from gancore.loop import train

    with pytest.raises(PluginError, match=r"^loss 'buggy' of plugin 'thirdparty' failed at step 1 \(test_plugins\.py:"
                                          r"\d+\): NameError: name 'undefined_name' is not defined; "):
        train(buggy_run("raises"), progress=False)


@pytest.mark.parametrize("mode, got", [("batch", r"a tensor of shape \(8,\)"), ("float", "float 0.5")])
def test_a_loss_term_that_is_not_one_number_is_named(mode, got):
    from gancore.errors import GanError
    from gancore.loop import train

    with pytest.raises(GanError, match=rf"loss term '[dg]_mine' is {got}, not a single number; a loss or regularizer "
                                       rf"returns its terms as 0-d tensors \(reduce a batch of them with \.mean\(\)\)"):
        train(buggy_run(mode), progress=False)


def test_a_builder_that_returns_its_class_not_an_instance_is_named():
    from gancore.errors import PluginError

    with pytest.raises(PluginError, match=r"loss 'buggy' of plugin 'thirdparty': its builder returned the class "
                                          r"BuggyLoss, not an instance of it \(BuggyLoss\(\.\.\.\)\)"):
        buggy_run("class", builder=lambda: BuggyLoss)


def test_a_bug_in_a_plugins_network_is_named_in_the_dry_run():
    from torch import nn

    from gancore.errors import GanError

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(1, 1)

        def forward(self, noise):
            return undefined_net  # noqa: F821

    with pytest.raises(GanError, match=r"the networks do not fit together or the data \(generator 'broken' of plugin "
                                       r"'nets' raised \(test_plugins\.py:\d+\) NameError: name 'undefined_net'"):
        prepare_with_generator("broken", Broken)


def prepare_with_generator(name: str, net: type):
    """A run of dcgan's recipe with its generator replaced by ``net()``, registered by plugin 'nets'."""
    from gancore.loop import prepare
    from gancore.plugins import hookimpl
    from tests.conftest import tiny

    class Plugin:
        @hookimpl
        def gan_register_generators(self, register):
            register(name, lambda **ctx: net())

    mgr = build_manager(extra=[("nets", Plugin())])
    return prepare("dcgan", tiny(generator={"name": name}), out=f"runs/{name}", mgr=mgr)


def test_a_plugins_network_without_weights_is_named():
    from torch import nn

    from gancore.errors import PluginError

    class Empty(nn.Module):
        def forward(self, noise):
            return noise

    with pytest.raises(PluginError, match=r"generator 'empty' of plugin 'nets' has no weights to train \(no "
                                          r"nn.Parameter that requires grad\); make its layers attributes"):
        prepare_with_generator("empty", Empty)


def test_a_run_is_not_rebuilt_from_another_plugins_component_of_the_same_name():
    import torch
    from torch import nn

    from gancore.errors import CheckpointError
    from gancore.loop import prepare, prepare_resume, train
    from gancore.plugins import hookimpl
    from gancore.runs import open_run
    from tests.conftest import tiny

    def provider(scale: float):
        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = nn.Linear(100, 28 * 28)

            def forward(self, noise):
                return torch.tanh(self.lin(noise) * scale).view(-1, 1, 28, 28)

        class Plugin:
            @hookimpl
            def gan_register_generators(self, register):
                register("tiny", lambda **ctx: Net())

        return Plugin()

    cfg = tiny(generator={"name": "tiny"}, train={"steps": 2, "checkpoint_every": 2})
    run = train(prepare("dcgan", cfg, out="runs/owned", mgr=build_manager(extra=[("hunt", provider(1.0))])),
                progress=False).run_dir
    impostor = build_manager(extra=[("impostor", provider(5.0))])  # the same name, other code, the same weights
    for reopen in (lambda: open_run(run, mgr=impostor), lambda: prepare_resume(run, steps=4, mgr=impostor)):
        with pytest.raises(CheckpointError, match=r"was trained with generator 'tiny' of plugin 'hunt', and here "
                                                  r"plugin 'impostor' provides a generator of that name; install "
                                                  r"'hunt' again"):
            reopen()
    assert open_run(run, mgr=build_manager(extra=[("hunt", provider(1.0))])).step == 2


def test_the_component_blamed_is_the_one_that_raised_when_a_module_holds_several():
    from torch import nn

    from gancore.components import DOut
    from gancore.errors import PluginError
    from gancore.loop import prepare, train
    from gancore.plugins import hookimpl
    from tests.conftest import tiny

    class G(nn.Module):  # G and D in one module, as most plugins have them
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(100, 28 * 28)

        def forward(self, noise):
            if self.training:  # past the dry run, which runs in eval mode
                return self.lin(noise[:, :99])  # a shape bug inside one of G's layers
            return self.lin(noise).view(-1, 1, 28, 28)

    class D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(28 * 28, 1)

        def forward(self, x):
            return DOut(self.lin(x.flatten(1)).squeeze(1))

    class Plugin:
        @hookimpl
        def gan_register_generators(self, register):
            register("g1", lambda **ctx: G())

        @hookimpl
        def gan_register_discriminators(self, register):
            register("d1", lambda **ctx: D())

    mgr = build_manager(extra=[("pair", Plugin())])
    state = prepare("dcgan", tiny(generator={"name": "g1"}, discriminator={"name": "d1"}), out="runs/pair", mgr=mgr)
    with pytest.raises(PluginError, match=r"^generator 'g1' of plugin 'pair' failed at step 1 \(linear\.py:\d+\): "
                                          r"RuntimeError: mat1 and mat2 shapes cannot be multiplied"):
        train(state, progress=False)


def test_a_recipe_may_leave_a_required_option_to_the_user_and_types_are_compared_as_saved():
    from dataclasses import dataclass

    from gancore.components import Loss
    from gancore.errors import PluginError
    from gancore.plugins import hookimpl
    from gancore.resolve import resolve_config
    from gancore.state import check_same_data

    @dataclass(kw_only=True)
    class Needs:
        scale: float  # no default: the user's to give

    class Scaled(Loss):
        def __init__(self, cfg: Needs) -> None:
            self.cfg = cfg

    class Plugin:
        @hookimpl
        def gan_register_losses(self, register):
            register("req", Scaled, config=Needs)

        @hookimpl
        def gan_register_recipes(self, register):
            register("needs", lambda: {"data": {"name": "ring"}, "generator": {"name": "mlp2d"},
                                       "discriminator": {"name": "mlp2d"}, "loss": {"name": "req"}})

    mgr = build_manager(extra=[("needs", Plugin())])
    assert resolve_config(mgr, "needs", {"loss": {"scale": 2.0}})["loss"]["scale"] == 2.0
    with pytest.raises(PluginError, match=r"recipe 'needs' of plugin 'needs': loss 'req' needs scale"):
        resolve_config(mgr, "needs")  # given by no layer: the recipe names a loss it does not set up
    check_same_data({"classes": ["cat", "dog"]}, {"classes": ("cat", "dog")}, "data", "")  # a tuple, saved as a list
