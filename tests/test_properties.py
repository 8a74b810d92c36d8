"""Property-based tests (hypothesis): config parsing and ONNX metadata parsing never fail other than cleanly."""

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gancore.config import TrainConfig, coerce_params, parse_sets
from gancore.deploy import parse_metadata
from gancore.errors import ConfigError, ExportError

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=12)


@given(st.dictionaries(st.sampled_from(["steps", "batch_size", "lr_g", "beta1", "on_nan", "channels_last", "x"]),
                       json_values, max_size=4))
def test_train_config_accepts_valid_values_and_refuses_the_rest_with_config_error(params):
    try:
        out = coerce_params(TrainConfig, params, where="train")
    except ConfigError:
        return
    cfg = TrainConfig(**out)  # what passed the check builds
    assert cfg.steps >= 1 and 0 < cfg.lr_g < 1


@given(st.lists(st.text(max_size=20).map(lambda s: s.replace("\x00", "")), max_size=4))
def test_set_parsing_is_total(pairs):
    with contextlib.suppress(ConfigError):
        parse_sets(pairs)


spec = st.fixed_dictionaries({"name": st.text(max_size=6), "shape": json_values, "dtype": st.sampled_from(
    ["float32", "int64", "float16"]), "distribution": st.sampled_from(["normal", "uniform", "categorical", "x"])},
    optional={"low": json_values, "high": json_values, "classes": json_values})


@settings(max_examples=200)
@given(st.dictionaries(st.sampled_from(["gancore.kind", "gancore.inputs", "gancore.output", "other"]),
                       st.one_of(st.text(max_size=30), json_values.map(json.dumps),
                                 st.lists(spec, max_size=3).map(json.dumps)), max_size=4))
def test_metadata_parsing_accepts_well_formed_specs_and_refuses_the_rest_with_export_error(raw):
    try:
        meta = parse_metadata(raw)
    except ExportError:
        return
    for s in meta["inputs"]:  # whatever passed is safe to draw from
        assert s["name"] and all(d > 0 for d in s["shape"])
        if s["distribution"] == "categorical":
            assert s["classes"] >= 1
