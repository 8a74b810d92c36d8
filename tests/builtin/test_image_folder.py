"""``image-folder``: class subfolders or a flat folder of any images, resized and cropped, with its splits."""

import pytest
import torch

from gancore.builtin.image_folder import ImageFolderConfig, image_folder
from gancore.errors import DataError, NoHeldOutError
from tests.conftest import BLUE, RED, paint, paint_classes


def test_class_subfolders_give_labels_and_images_are_squared_to_the_size(tmp_path):
    paint_classes(tmp_path)
    (tmp_path / "red" / "notes.txt").write_text("not an image: skipped")
    d = image_folder(ImageFolderConfig(image_size=32), root=str(tmp_path))
    assert d.x.shape == (6, 3, 32, 32) and d.classes == ["blue", "red"]
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1]
    red = d.x[d.y == 1]
    assert torch.allclose(red[:, 0], torch.ones(3, 32, 32), atol=0.02)  # red in [-1, 1]: R = 1, G = B = -1
    assert torch.allclose(red[:, 2], -torch.ones(3, 32, 32), atol=0.02)
    assert d.describe()["kind"] == "image" and d.info["dataset"] == "image-folder"


def test_greyscale_and_a_flat_folder_without_labels(tmp_path):
    paint(tmp_path, {"a": RED, "b": (128, 128, 128)})
    d = image_folder(ImageFolderConfig(image_size=28, channels=1), root=str(tmp_path))
    assert d.x.shape == (6, 1, 28, 28) and d.y is None and d.classes is None
    assert d.x.min() >= -1.0 and d.x.max() <= 1.0


def test_train_and_test_splits(tmp_path):
    paint_classes(tmp_path, "train")
    paint(tmp_path / "val" / "blue", {"x": BLUE}, sizes=((20, 20),))
    paint(tmp_path / "val" / "red", {"x": RED}, sizes=((20, 20),))
    train = image_folder(ImageFolderConfig(image_size=32), root=str(tmp_path))
    test = image_folder(ImageFolderConfig(image_size=32), root=str(tmp_path), train=False)
    assert len(train) == 6 and len(test) == 2 and test.y.tolist() == [0, 1]


def test_a_split_with_other_classes_is_refused(tmp_path):
    paint_classes(tmp_path, "train")
    paint(tmp_path / "test" / "green", {"x": (0, 255, 0)})
    with pytest.raises(DataError, match=r"classes \['green'\] differ from those of the training images"):
        image_folder(ImageFolderConfig(), root=str(tmp_path), train=False)
    with pytest.raises(DataError, match=r"classes \['green'\] differ"):  # at the start, not at the first metric
        image_folder(ImageFolderConfig(), root=str(tmp_path), train=True)


def test_held_out_images_are_asked_for_where_there_are_none(tmp_path):
    paint_classes(tmp_path)
    with pytest.raises(NoHeldOutError, match=r"no held-out images.*put them in .*test"):
        image_folder(ImageFolderConfig(), root=str(tmp_path), train=False)
    paint_classes(tmp_path / "split", "train")
    with pytest.raises(DataError, match="has train/ but no test/ or val/"):
        image_folder(ImageFolderConfig(), root=str(tmp_path / "split"), train=False)


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no images found in"),
    (lambda d: (d / "x.png").write_bytes(b"not a png"), r"cannot read image .*x\.png .*remove or replace it"),
    (lambda d: (paint(d, {"top": RED}), paint(d / "cls", {"in": RED})), "both at its top level and in subfolders"),
])
def test_bad_folders_say_what_is_wrong(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        image_folder(ImageFolderConfig(), root=str(tmp_path))


def test_sixteen_bit_transparent_and_rotated_images_look_as_meant(tmp_path):
    import numpy as np
    from PIL import Image

    grey = np.full((20, 20), 32768, dtype=np.uint16)  # mid-grey in 16 bits: not clipped to white
    Image.fromarray(grey).save(tmp_path / "a16.png")
    clear = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red: white, as a viewer shows it
    clear.save(tmp_path / "b-alpha.png")
    d = image_folder(ImageFolderConfig(image_size=16, channels=1), root=str(tmp_path))
    assert abs(d.x[0].mean().item()) < 0.02 and d.x[1].min().item() == 1.0
    tall = Image.new("RGB", (10, 30), RED)
    tall.paste(BLUE, (0, 0, 10, 15))  # blue on top
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise, blue to the right
    for f in tmp_path.iterdir():
        f.unlink()
    tall.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    x = image_folder(ImageFolderConfig(image_size=10), root=str(tmp_path)).x[0]
    assert x[2, :, -1].mean() > 0.8 and x[2, :, 0].mean() < -0.8  # blue channel high on the right only


def test_symlinked_class_folders_are_followed_and_hidden_copies_skipped(tmp_path):
    paint(tmp_path / "elsewhere", {"r": RED})
    (tmp_path / "data" / "red").mkdir(parents=True)
    (tmp_path / "data" / "red" / "linked").symlink_to(tmp_path / "elsewhere")
    paint(tmp_path / "data" / "red" / ".ipynb_checkpoints", {"copy": RED})
    paint(tmp_path / "data" / "blue", {"b": BLUE})
    d = image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path / "data"))
    assert d.classes == ["blue", "red"] and d.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_empty_class_folders_and_mixed_splits_are_refused(tmp_path):
    paint_classes(tmp_path / "a")
    (tmp_path / "a" / "green").mkdir()
    with pytest.raises(DataError, match=r"class folder.* green .*hold no images"):
        image_folder(ImageFolderConfig(), root=str(tmp_path / "a"))
    paint_classes(tmp_path / "b", "train")
    paint(tmp_path / "b" / "test", {"flat": RED})
    with pytest.raises(DataError, match=r"classes \(none: unlabelled\) differ .* \['blue', 'red'\]"):
        image_folder(ImageFolderConfig(), root=str(tmp_path / "b"), train=False)


def test_the_held_out_split_is_decoded_once(tmp_path, monkeypatch):
    from gancore.builtin import image_folder as module

    paint_classes(tmp_path, "train")
    paint_classes(tmp_path, "test")
    calls = []
    decode = module._decode
    monkeypatch.setattr(module, "_decode", lambda *a: calls.append(a[0]) or decode(*a))
    module._held_out.cache_clear()
    first = image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path), train=False)
    again = image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path), train=False)
    module._held_out.cache_clear()
    assert calls == [tmp_path / "test"] and torch.equal(first.x, again.x) and first is not again
    assert module.has_held_out(str(tmp_path)) and not module.has_held_out(str(tmp_path / "test"))


def test_a_folder_is_required():
    with pytest.raises(DataError, match="reads the images in --data-dir DIR"):
        image_folder(ImageFolderConfig())
    with pytest.raises(DataError, match="is not a folder"):
        image_folder(ImageFolderConfig(), root="/nonexistent/images")
    with pytest.raises(ValueError, match="channels"):
        ImageFolderConfig(channels=2)


def test_dcgan_trains_on_colour_images_and_exports_them(tmp_path):
    from gancore.deploy import OnnxModel
    from gancore.export import export_run
    from gancore.loop import prepare, train
    from tests.conftest import tiny

    paint_classes(tmp_path / "imgs", "train")
    cfg = tiny(data={"name": "image-folder", "dir": str(tmp_path / "imgs"), "image_size": 32},
               train={"batch_size": 4})
    state = prepare("dcgan", cfg, out=str(tmp_path / "run"))
    train(state, progress=False)
    assert state.data_info["shape"] == [3, 32, 32]
    out = export_run(state.run_dir, ["onnx"], out=tmp_path / "exp")
    assert OnnxModel(out / "generator.onnx", "cpu").sample(2, 0).shape == (2, 3, 32, 32)


def test_a_limit_decodes_only_that_many_images_spread_over_the_classes(tmp_path, monkeypatch):
    from gancore.builtin import image_folder as module
    from gancore.plugins import get_manager
    from gancore.state import load_data

    paint_classes(tmp_path)  # 3 blue files, then 3 red ones, in sorted order
    (tmp_path / "red" / "z-broken.png").write_bytes(b"not a png")  # the last file: not among the 2 picked
    opened = []
    real_open = module.Image.open
    monkeypatch.setattr(module.Image, "open", lambda p: opened.append(p) or real_open(p))
    cfg = {"data": {"name": "image-folder", "dir": str(tmp_path), "limit": 2, "labels_per_class": 0, "image_size": 8}}
    d = load_data(get_manager(), cfg)
    assert len(d) == 2 and d.y.tolist() == [0, 1] and len(opened) == 2  # one of each class, nothing else read
    assert module.spread(7, 3) == [0, 2, 4] and module.spread(3, 0) == module.spread(3, 5) == [0, 1, 2]
    with pytest.raises(DataError, match=r"z-broken\.png"):  # without the limit every file is read
        load_data(get_manager(), {"data": {**cfg["data"], "limit": 0}})


def test_a_relative_data_dir_is_saved_absolute_so_the_run_resumes_from_anywhere(tmp_path, monkeypatch):
    import json

    from gancore.loop import prepare, prepare_resume, train
    from tests.conftest import tiny

    paint_classes(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)
    cfg = tiny(data={"name": "image-folder", "dir": "imgs", "image_size": 28}, train={"batch_size": 4, "steps": 2})
    state = train(prepare("dcgan", cfg, out="run"), progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["data"]["dir"]
    assert saved == str(tmp_path / "imgs")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    resumed = train(prepare_resume(tmp_path / "run", steps=4), progress=False)
    assert resumed.step == 4 and state.step == 2


def test_symlinks_back_up_or_into_another_class_add_no_copies_or_wrong_labels(tmp_path, capsys):
    paint_classes(tmp_path)
    (tmp_path / "red" / "up").symlink_to("..")  # a loop: the root, with both classes in it, again and again
    (tmp_path / "red" / "self").symlink_to(".")
    (tmp_path / "red" / "blues").symlink_to("../blue")  # blue's images, which would be labelled red
    (tmp_path / "blue" / "reds").symlink_to("../red")  # into a class that sorts later: not read yet, still skipped
    d = image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))
    assert d.classes == ["blue", "red"] and d.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert (d.x[d.y == 1][:, 0] > 0.9).all() and (d.x[d.y == 0][:, 2] > 0.9).all()  # each labelled by its colour
    err = capsys.readouterr().err
    assert "it leads to a folder read already" in err and "it leads to a folder read as another class" in err
    (tmp_path / "copy").symlink_to("red")  # a class folder that is another class
    with pytest.raises(DataError, match=r"two class folders in .* are the same folder"):
        image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))


def test_files_of_other_types_are_named_in_a_note_and_gif_and_jfif_are_read(tmp_path, capsys):
    from PIL import Image

    Image.new("P", (12, 12), 3).save(tmp_path / "a.gif")
    Image.new("RGB", (12, 12), RED).save(tmp_path / "b.jfif", format="JPEG")
    Image.new("RGB", (12, 12), RED).save(tmp_path / "c.jpe", format="JPEG")
    (tmp_path / "labels.csv").write_text("a,1\n")
    (tmp_path / "x.heic").write_bytes(b"?")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    d = image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))
    assert len(d) == 3
    note = "skipped 3 files that are not images read here (.csv 1, .heic 1, broken symlinks 1)"
    assert note in capsys.readouterr().err


def test_a_class_folder_symlink_whose_target_is_gone_is_named(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "a").mkdir()
    for i in range(2):
        Image.new("RGB", (12, 12), RED).save(tmp_path / "a" / f"{i}.png")
    (tmp_path / "b").symlink_to(tmp_path / "moved")  # a class the user meant to have
    d = image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))
    assert d.classes == ["a"] and len(d) == 2
    err = capsys.readouterr().err
    assert "(broken symlinks 1)" in err
    assert f"; broken symlinks (to images, or to class folders that moved): {tmp_path / 'b'}" in err


def test_a_large_photo_is_read_without_pillows_decompression_bomb_warning(tmp_path, monkeypatch, recwarn):
    from PIL import Image

    Image.new("RGB", (40, 30), RED).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1200 pixels: Pillow's warning, short of its refusal
    assert len(image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))) == 1
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_float_image_in_0_1_is_scaled_not_rounded_to_black(tmp_path):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((10, 10), 0.5, dtype=np.float32), "F").save(tmp_path / "half.tif")
    x = image_folder(ImageFolderConfig(image_size=8, channels=1), root=str(tmp_path)).x
    assert abs(x.mean().item()) < 0.02  # mid-grey: 0 in [-1, 1]


@pytest.mark.parametrize("make", [
    lambda d: (d / "broken.png").write_bytes(_png_with_bad_chunk()),  # Pillow raises SyntaxError
    lambda d: __import__("PIL.Image").Image.new("L", (4000, 4000)).save(d / "huge.png"),  # over a lowered limit
])
def test_any_image_pillow_cannot_decode_is_a_data_error(tmp_path, make, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # > 2x this raises DecompressionBombError
    make(tmp_path)
    with pytest.raises(DataError, match=r"cannot read image .*\((SyntaxError|DecompressionBombError): .*"
                                        r"remove or replace it"):
        image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))


def _png_with_bad_chunk() -> bytes:
    """A PNG that opens (its header is fine) but whose first data chunk claims too short a length, so Pillow
    reads image data as the next chunk's header while decoding."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)  # several IDAT chunks
    Image.fromarray(noise).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    at = data.find(b"IDAT")
    data[at - 4:at] = (1000).to_bytes(4, "big")
    return bytes(data)


@pytest.mark.parametrize("splits", [("test",), ("Train", "Test")])
def test_splits_without_a_lower_case_train_folder_are_refused_not_read_as_classes(tmp_path, splits):
    for s in splits:
        paint_classes(tmp_path / s)
    with pytest.raises(DataError, match=r"but no train/ folder, so it would be read as classes named"):
        image_folder(ImageFolderConfig(image_size=8), root=str(tmp_path))
