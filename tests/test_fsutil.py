import pytest

from gancore.fsutil import replacing


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
