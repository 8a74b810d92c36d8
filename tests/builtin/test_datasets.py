import pytest

from gancore.builtin.datasets import ImageConfig, fashion_mnist
from gancore.errors import DataError


def test_fashion_mnist_loads_as_one_tensor_in_tanh_range():
    data = fashion_mnist(ImageConfig())
    assert data.x.shape == (60000, 1, 28, 28) and data.y.shape == (60000,)
    assert data.x.min().item() == -1.0 and data.x.max().item() == 1.0
    assert data.classes[0] == "T-shirt/top"
    test = fashion_mnist(ImageConfig(), train=False)
    assert len(test) == 10000


def test_resizing_to_32():
    data = fashion_mnist(ImageConfig(image_size=32))
    assert data.shape == (1, 32, 32)


def test_a_torchvision_root_given_as_data_dir(tmp_path):
    import shutil

    from gancore.builtin.datasets import find_root

    root = find_root("FashionMNIST", "")
    shutil.copytree(root / "FashionMNIST", tmp_path / "FashionMNIST")
    assert find_root("FashionMNIST", str(tmp_path)) == tmp_path


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist(ImageConfig(), root=str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        fashion_mnist(ImageConfig(), root=str(tmp_path / "nope"))


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_size"):
        ImageConfig(image_size=30)


def test_two_processes_unpacking_one_cache_do_not_collide(tmp_path, monkeypatch):
    # Two runs started together unpack the same files into the shared cache. Replay the bad interleaving:
    # this process has copied a file and not yet renamed it when "another process" unpacks it too.
    import os
    import shutil

    from gancore.builtin import datasets

    src, raw = tmp_path / "src", tmp_path / "cache" / "raw"
    src.mkdir()
    for f in datasets.IDX_FILES:
        (src / f).write_bytes(f.encode())
    real_copy, real_pid = shutil.copyfile, os.getpid
    other: list[bool] = []

    def copy_then_other_process(a, b):
        real_copy(a, b)
        if not other:
            other.append(True)
            monkeypatch.setattr(os, "getpid", lambda: real_pid() + 1)
            datasets._unpack_into(src, raw)
            monkeypatch.setattr(os, "getpid", real_pid)

    monkeypatch.setattr(datasets.shutil, "copyfile", copy_then_other_process)
    datasets._unpack_into(src, raw)
    assert sorted(p.name for p in raw.iterdir()) == sorted(datasets.IDX_FILES)  # no temporary left behind
    assert all((raw / f).read_bytes() == f.encode() for f in datasets.IDX_FILES)
