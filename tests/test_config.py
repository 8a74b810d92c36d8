import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gancore.config import load_toml, parse_sets, parse_value
from gancore.errors import ConfigError, PluginError
from gancore.plugins import get_manager
from gancore.resolve import resolve_config


def test_parse_value_reads_toml_literals_and_falls_back_to_strings():
    assert parse_value("64") == 64
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("fashion-mnist") == "fashion-mnist"


@pytest.mark.parametrize("text, tp, pattern", [
    ("[generator]", list[str], r"--set k=\[generator\] is not a valid TOML value \(Invalid value\); quote the strings"),
    ("{a = .5}", dict, r"not a valid TOML value .*numbers with digits on both sides of the point"),
    ('"open', str | None, None), ("[old] faces", str, None),  # a string option takes the text as typed
    ('"open', list[str], r"not a valid TOML value \(Unterminated string\); close the quote"),
    (".9", float, r"--set k=\.9: write the number with digits on both sides of the point, e\.g\. 0\.9$"),
    ("-.5", float, r"e\.g\. -0\.5$"), ("1.e3", float, r"e\.g\. 1\.0e3$"),
    (".5", int, r"^k expects a whole number, got \.5$"),  # not "write it as 0.5", which a count refuses next
    ("1.", int, r"^k expects a whole number, got 1\.$")])
def test_a_value_that_looks_like_toml_but_is_not_is_refused_where_a_string_will_not_do(text, tp, pattern):
    from gancore.config import coerce

    value = parse_value(text, "k")
    if pattern is None:
        assert coerce(value, tp, "data: dir") == text and type(coerce(value, tp, "data: dir")) is str
        return
    with pytest.raises(ConfigError, match=pattern):
        coerce(value, tp, "k")


def test_numpy_numbers_are_taken_and_saved_as_plain_python_ones():
    import numpy as np

    from gancore.config import check_seed, coerce

    assert type(coerce(np.int64(3), int, "k")) is int and coerce(np.int64(3), int, "k") == 3
    assert type(coerce(np.float32(0.5), float, "k")) is float and type(coerce(np.int32(2), float, "k")) is float
    assert coerce(np.float32(1e-4), float, "k") == 1e-4  # as written, not float32's 9.999999747378752e-05
    assert type(check_seed(np.uint32(7))) is int
    with pytest.raises(ConfigError, match="expects an integer"):
        coerce(np.float64(2.0), int, "k")
    with pytest.raises(ConfigError, match="must be a finite number"):
        coerce(np.float32("nan"), float, "k")
    with pytest.raises(ConfigError, match="whole number from 0"):
        check_seed(np.bool_(True))
    cfg = resolve_config(get_manager(), "dcgan", {"seed": np.int64(4), "train": {"steps": np.int32(9)}})
    assert type(cfg["seed"]) is int and type(cfg["train"]["steps"]) is int


def test_a_string_option_given_a_number_says_to_quote_it():
    from gancore.config import coerce

    with pytest.raises(ConfigError, match=r"data: dir expects a string, got 2024; to give 2024 as text, quote it"):
        coerce(parse_value("2024"), str, "data: dir")


def test_parse_sets_nests_dotted_keys():
    assert parse_sets(["generator.width=64", "seed=3", "train.lr_g=1e-3"]) == {
        "generator": {"width": 64}, "seed": 3, "train": {"lr_g": 1e-3}}


def test_parse_sets_needs_key_equals_value():
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["generator.width"])


@given(st.lists(st.text(min_size=0, max_size=30), max_size=5))
def test_parse_sets_never_crashes_with_anything_but_config_error(pairs):
    with contextlib.suppress(ConfigError):
        parse_sets(pairs)


def test_recipe_defaults_fill_every_component_option():
    cfg = resolve_config(get_manager(), "dcgan")
    assert cfg["generator"] == {"name": "dcgan", "width": 32, "batchnorm": True, "virtual_batchnorm": False,
                                "reference_size": 64, "reference_seed": 0}
    assert cfg["loss"]["name"] == "nonsaturating"
    assert cfg["train"]["beta1"] == 0.5 and cfg["train"]["d_steps"] == 1
    assert cfg["data"]["name"] == "fashion-mnist"


def test_layers_apply_in_order():
    cfg = resolve_config(get_manager(), "dcgan", {"generator": {"width": 16}}, {"generator": {"width": 24}})
    assert cfg["generator"]["width"] == 24


def test_switching_a_component_drops_the_old_options():
    cfg = resolve_config(get_manager(), "dcgan", {"loss": {"name": "hinge"}})
    assert cfg["loss"] == {"name": "hinge"}


def test_switching_a_component_says_which_options_it_dropped(capsys):
    mgr = get_manager()
    cfg = resolve_config(mgr, "bigan", {"sampler": {"name": "normal"}})
    err = capsys.readouterr().err
    assert cfg["sampler"]["dim"] == 100  # the normal sampler's default, not the recipe's 50
    assert "sampler.name=normal replaces 'uniform' and drops its options dim=50" in err
    assert "--set sampler.dim=" in err
    cfg = resolve_config(mgr, "bigan", {"sampler": {"name": "normal", "dim": 50}})  # kept by hand: nothing to say
    assert cfg["sampler"]["dim"] == 50 and capsys.readouterr().err == ""
    resolve_config(mgr, "bigan", {"sampler": {"name": "uniform", "dim": 20}})  # same component: options merge
    assert capsys.readouterr().err == ""
    resolve_config(mgr, "bigan", {"loss": {"name": "nonsaturating"}})  # none of bigan's options: none suggested
    err = capsys.readouterr().err
    assert "replaces 'bigan' and drops its options cycle_x=3.0" in err and "--set loss." not in err
    assert "'nonsaturating' has none of them and starts from its own defaults" in err


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"generatr": {}}, r"unknown config key 'generatr'.*Did you mean 'generator'"),
        ({"generator": {"depth": 3}},
         r"unknown key 'depth' for generator 'dcgan'.*Valid keys: batchnorm, reference_seed, .*, width"),
        ({"generator": {"width": "x"}}, r"width expects an integer"),
        ({"train": {"steps": 0}}, r"train.steps must be >= 1"),
        ({"train": {"lr_g": 5.0}}, r"lr_g must be in \(0, 1\)"),
        ({"train": {"lr_decay": "step"}}, r"lr_decay.*'none', 'linear', 'cosine'"),
        ({"train": {"lr_decay_start": 1.0}}, r"lr_decay_start must be in \[0, 1\)"),
        ({"seed": "abc"}, r"seed expects an integer"),
        ({"data": {"colour": 1}}, r"unknown key 'colour'.*core data keys"),
        ({"loss": {"real_label": 0.2}}, r"real_label must be in \(0.5, 1\]"),
        ({"train": 3}, r"is a section"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(layer, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(get_manager(), "dcgan", layer)


def test_unknown_component_and_plugin():
    with pytest.raises(PluginError, match=r"unknown generator 'dcgam'.*Did you mean 'dcgan'"):
        resolve_config(get_manager(), "dcgan", {"generator": {"name": "dcgam"}})
    with pytest.raises(PluginError, match=r"unknown plugin 'dcgn'.*Did you mean 'dcgan'.*Known plugins: .*dcgan"):
        resolve_config(get_manager(), "dcgn")


def test_data_paths_are_saved_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config(get_manager(), "gumbel-text", {"data": {"name": "text:corpus.txt"}})
    assert cfg["data"]["path"] == str(tmp_path / "corpus.txt")  # so a run resumes from any folder
    cfg = resolve_config(get_manager(), "dcgan", {"data": {"dir": "~/fmnist"}})
    assert cfg["data"]["dir"] == str(Path.home() / "fmnist")
    assert resolve_config(get_manager(), "dcgan")["data"]["dir"] == ""  # empty: the default places are searched


def test_range_errors_name_their_key_once_and_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^train\.steps must be >= 1, got 0$"):
        resolve_config(get_manager(), "dcgan", {"train": {"steps": 0}})
    with pytest.raises(ConfigError, match="is a folder, not a TOML file"):
        load_toml(tmp_path)


def test_a_config_naming_another_plugin_is_refused():
    with pytest.raises(ConfigError, match=r"sets plugin = 'infogan' but this run trains 'dcgan'"):
        resolve_config(get_manager(), "dcgan", {"plugin": "infogan"})
    assert resolve_config(get_manager(), "dcgan", {"plugin": "dcgan"})["plugin"] == "dcgan"  # saying it again is fine


def test_new_runs_check_ema_nets_names_with_averaging_off_and_the_grid_size():
    mgr = get_manager()
    with pytest.raises(ConfigError, match=r"train\.ema_nets: this run has no network 'critic'; its networks are "
                                          r"generator, discriminator, encoder"):
        resolve_config(mgr, "bigan", {"train": {"ema_nets": ["generator", "critic"]}})
    with pytest.raises(ConfigError, match=r"train\.sample_count must be at most 4096"):
        resolve_config(mgr, "dcgan", {"train": {"sample_count": 5000}})
    resolve_config(mgr, "bigan", {"train": {"ema_nets": ["generator", "encoder"]}})  # a network of the run


def test_a_config_from_a_pipe_is_read(tmp_path):
    import os
    import threading

    fifo = tmp_path / "cfg"
    os.mkfifo(fifo)  # as the shell's --config <(...) gives

    def write() -> None:
        with open(fifo, "w") as f:
            f.write("[train]\nsteps = 7\n")

    writer = threading.Thread(target=write)
    writer.start()
    assert load_toml(fifo) == {"train": {"steps": 7}}
    writer.join(timeout=10)
