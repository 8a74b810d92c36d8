import json
import math

import pytest

from gancore.fsutil import json_text, replacing, write_json_atomic


def test_replacing_renames_a_complete_file_and_deletes_a_failed_one(tmp_path):
    path = tmp_path / "a.txt"
    with replacing(path) as tmp:
        tmp.write_text("one")
        assert not path.exists()  # nothing under the real name until it is complete
    assert path.read_text() == "one"
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "one"  # the old file kept
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # and no temporary left behind


def _strict(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_text_is_strict_json_with_non_finite_floats_as_strings_float_reads_back():
    data = {"kl": math.inf, "low": -math.inf, "loss": math.nan, "list": [1.5, math.inf], "n": 3, "s": "inf"}
    back = _strict(json_text(data))
    assert back == {"kl": "inf", "low": "-inf", "loss": "nan", "list": [1.5, "inf"], "n": 3, "s": "inf"}
    assert float(back["kl"]) == math.inf and float(back["low"]) == -math.inf and math.isnan(float(back["loss"]))


def test_write_json_atomic_writes_strict_json(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"results": {"reverse_kl": math.inf}})
    assert _strict((tmp_path / "r.json").read_text()) == {"results": {"reverse_kl": "inf"}}
