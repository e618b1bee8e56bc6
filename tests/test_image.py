"""stylist.image: reading any common image as RGB, tensors, sizes, safe writes.

Fast and offline: no VGG, no network; every image is made here in tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylist.errors import ImageError
from stylist.image import (
    check_output_path,
    fit_size,
    open_image,
    resize_long_side,
    save_image,
    to_pil,
    to_tensor,
)

FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF", ".bmp": "BMP"}
LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}


def noise(h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth(h: int = 32, w: int = 48) -> np.ndarray:
    """A colour gradient: survives lossy compression with small errors."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def pixels(im: Image.Image) -> np.ndarray:
    assert im.mode == "RGB"
    return np.asarray(im).astype(int)


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write could leave behind (save_image's start with '.')."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> str:
    msg = str(err.value)
    assert msg.strip() and "\n" not in msg, repr(msg)
    assert str(path) in msg, msg
    return msg


# --- reading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_reads_common_formats_as_rgb(tmp_path, suffix):
    src = smooth()
    path = tmp_path / f"in{suffix}"
    Image.fromarray(src).save(path, format=FORMATS[suffix])
    im = open_image(path)
    assert im.mode == "RGB" and im.size == (48, 32)
    diff = np.abs(pixels(im) - src.astype(int))
    if suffix in LOSSLESS:
        assert diff.max() == 0
    else:
        assert diff.mean() < 4


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".webp"])
def test_save_image_round_trips(tmp_path, suffix):
    src = smooth()
    path = save_image(Image.fromarray(src), tmp_path / f"out{suffix}")
    assert path == tmp_path / f"out{suffix}"
    with Image.open(path) as written:
        assert written.format == {".tiff": "TIFF", ".jpeg": "JPEG"}.get(suffix, FORMATS.get(suffix))
    diff = np.abs(pixels(open_image(path)) - src.astype(int))
    if suffix in LOSSLESS:
        assert diff.max() == 0
    else:
        assert diff.mean() < 4


def test_save_image_accepts_a_tensor(tmp_path):
    src = noise()
    path = save_image(to_tensor(Image.fromarray(src)), tmp_path / "t.png")
    assert np.array_equal(pixels(open_image(path)), src)


def _oriented_jpeg(path: Path, orientation: int) -> None:
    """40 wide x 20 high as stored: blue, with a red 8x8 block in the stored top-left corner."""
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[...] = (0, 0, 255)
    arr[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(path, format="JPEG", quality=95, exif=exif.tobytes())


def _is_red(p) -> bool:
    return p[0] > 200 and p[1] < 60 and p[2] < 60


def _is_blue(p) -> bool:
    return p[0] < 60 and p[1] < 60 and p[2] > 200


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "phone.jpg"
    _oriented_jpeg(path, 6)  # 6 = "rotate 90 degrees clockwise to display"
    im = open_image(path)
    assert im.size == (20, 40)  # (W, H): upright portrait
    a = pixels(im)
    # Turned clockwise, the stored top-left corner is displayed at the top right.
    assert _is_red(a[3, 16]), a[3, 16]
    for y, x in [(3, 3), (36, 3), (36, 16)]:  # the other three corners
        assert _is_blue(a[y, x]), (y, x, a[y, x])


def test_exif_orientation_is_honoured_for_pil_input(tmp_path):
    path = tmp_path / "phone.jpg"
    _oriented_jpeg(path, 6)
    with Image.open(path) as raw:
        assert raw.size == (40, 20)
        im = open_image(raw)
    assert im.size == (20, 40) and _is_red(pixels(im)[3, 16])


def test_upright_jpeg_is_not_rotated(tmp_path):
    path = tmp_path / "upright.jpg"
    _oriented_jpeg(path, 1)
    im = open_image(path)
    assert im.size == (40, 20) and _is_red(pixels(im)[3, 3])


def test_grayscale_becomes_grey_rgb(tmp_path):
    grey = np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    a = pixels(open_image(tmp_path / "g.png"))
    assert a.shape == (8, 8, 3)
    for c in range(3):
        assert np.array_equal(a[..., c], grey)


def test_palette_becomes_rgb(tmp_path):
    src = np.zeros((8, 8, 3), np.uint8)
    src[:4] = (255, 0, 0)
    src[4:, :4] = (0, 128, 0)
    src[4:, 4:] = (10, 20, 200)
    pal = Image.fromarray(src).quantize(colors=4)
    assert pal.mode == "P"
    pal.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert np.array_equal(pixels(open_image(tmp_path / "p.png")), src)


def test_palette_with_transparency_becomes_white(tmp_path):
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.info["transparency"] = 0  # index 0 (black) is transparent
    pal.save(tmp_path / "pt.png", transparency=0)
    a = pixels(open_image(tmp_path / "pt.png"))
    assert tuple(a[0, 0]) == (255, 255, 255)
    assert tuple(a[1, 1]) == (255, 0, 0)


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_becomes_rgb(tmp_path, suffix):
    im = Image.new("CMYK", (8, 8), (0, 0, 0, 0))  # no ink: white
    im.paste((255, 0, 0, 0), (0, 0, 4, 8))  # full cyan on the left half
    im.save(tmp_path / f"c{suffix}")
    assert Image.open(tmp_path / f"c{suffix}").mode == "CMYK"
    a = pixels(open_image(tmp_path / f"c{suffix}"))
    assert np.abs(a[4, 1] - (0, 255, 255)).max() <= 8
    assert np.abs(a[4, 6] - (255, 255, 255)).max() <= 8


def test_rgba_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (200, 0, 0)  # colour stored under the transparent pixels
    rgba[0, :] = (0, 0, 255, 255)  # opaque blue row
    rgba[1, :] = (0, 0, 0, 128)  # half-transparent black row
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    a = pixels(open_image(tmp_path / "a.png"))
    assert (a[0] == (0, 0, 255)).all()
    assert (np.abs(a[1] - 127) <= 1).all()
    assert (a[2:] == 255).all()


def test_la_becomes_grey_rgb_on_white(tmp_path):
    la = np.zeros((2, 2, 2), np.uint8)
    la[0] = (60, 255)  # opaque dark grey
    la[1] = (0, 0)  # transparent
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    a = pixels(open_image(tmp_path / "la.png"))
    assert (a[0] == 60).all() and (a[1] == 255).all()


def test_16_bit_grayscale_is_scaled_to_8_bits(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    a = pixels(open_image(tmp_path / "g16.png"))
    assert a.shape == (1, 4, 3)
    assert list(a[0, :, 0]) == [0, 4, 128, 255]
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def test_dark_16_bit_grayscale_stays_dark(tmp_path):
    # A 16-bit image whose values are all <= 255 is nearly black (255/65535 = 0.4 %),
    # not an 8-bit image: it must not be stretched to full brightness.
    values = np.array([[0, 100, 200, 255]], np.uint16)
    Image.fromarray(values).save(tmp_path / "dark16.png")
    a = pixels(open_image(tmp_path / "dark16.png"))
    assert a.max() <= 1


# --- tensors and sizes -------------------------------------------------------------------------------


def test_to_tensor_layout_and_range():
    t = to_tensor(Image.fromarray(noise(32, 48)))
    assert t.shape == (1, 3, 32, 48)
    assert t.dtype == torch.float32
    assert t.is_contiguous()
    assert 0.0 <= t.min().item() and t.max().item() <= 1.0


def test_to_tensor_channels_are_rgb():
    t = to_tensor(Image.new("RGB", (2, 2), (255, 0, 51)))
    assert torch.allclose(t[0, :, 0, 0], torch.tensor([1.0, 0.0, 0.2]))


def test_tensor_round_trip_is_exact_for_uint8():
    src = noise(17, 23, seed=3)
    back = to_pil(to_tensor(Image.fromarray(src)))
    assert back.mode == "RGB" and back.size == (23, 17)
    assert np.array_equal(np.asarray(back), src)
    assert np.array_equal(np.asarray(to_pil(to_tensor(Image.fromarray(src))[0])), src)  # (3, H, W) too


def test_to_pil_clamps_and_rejects_bad_shapes():
    t = torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1)
    assert tuple(np.asarray(to_pil(t))[0, 0]) == (0, 128, 255)
    with pytest.raises(ValueError):
        to_pil(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        to_pil(torch.zeros(1, 4, 4, 4))


@pytest.mark.parametrize(
    "h, w, long_side, expected",
    [
        (480, 640, 320, (240, 320)),  # landscape
        (640, 480, 320, (320, 240)),  # portrait
        (500, 500, 256, (256, 256)),  # square
        (32, 48, 32, (21, 32)),  # rounding
        (1000, 10, 64, (64, 1)),  # never zero
        (100, 150, 600, (400, 600)),  # enlarging
    ],
)
def test_fit_size_keeps_aspect_ratio(h, w, long_side, expected):
    out = fit_size(h, w, long_side)
    assert out == expected
    assert max(out) == long_side
    assert (out[0] >= out[1]) == (h >= w)  # orientation kept
    exact_short = min(h, w) * long_side / max(h, w)
    assert abs(min(out) - exact_short) <= 0.5 or min(out) == 1  # short side rounded, never 0


@pytest.mark.parametrize("h, w", [(60, 90), (90, 60), (50, 50)])
def test_resize_long_side(h, w):
    t = torch.rand(1, 3, h, w)
    out = resize_long_side(t, 30)
    assert max(out.shape[-2:]) == 30
    assert tuple(out.shape[-2:]) == fit_size(h, w, 30)
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0


# --- writing: atomic, never clobbering, normal permissions --------------------------------------------


def test_save_refuses_existing_file(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"precious")
    with pytest.raises(ImageError) as err:
        save_image(Image.fromarray(noise()), path)
    assert "overwrite" in assert_one_line_naming(err, path)
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []


def test_save_with_overwrite_replaces(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    src = noise()
    save_image(Image.fromarray(src), path, overwrite=True)
    assert np.array_equal(pixels(open_image(path)), src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_save_leaves_no_temporary_files(tmp_path):
    for suffix in FORMATS:
        save_image(Image.fromarray(noise()), tmp_path / f"out{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"out{s}" for s in FORMATS)


def _failing_save(self, fp, *args, **kwargs):
    Path(fp).write_bytes(b"half an image")  # a partial write, then the disk fills up
    raise OSError(28, "No space left on device")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    path = tmp_path / "out.png"
    with pytest.raises(ImageError) as err:
        save_image(Image.fromarray(noise()), path)
    assert "No space left" in assert_one_line_naming(err, path)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.png"
    path.write_bytes(b"old result")
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(ImageError):
        save_image(Image.fromarray(noise()), path, overwrite=True)
    assert path.read_bytes() == b"old result"
    assert leftovers(tmp_path) == []


def test_save_into_missing_folder_is_an_image_error(tmp_path):
    path = tmp_path / "nosuch" / "out.png"
    with pytest.raises(ImageError) as err:
        save_image(Image.fromarray(noise()), path)
    assert_one_line_naming(err, path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_written_files_have_normal_permissions(tmp_path, umask):
    old = os.umask(umask)
    try:
        png = save_image(Image.fromarray(noise()), tmp_path / "out.png")
    finally:
        os.umask(old)
    mode = png.stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, oct(mode)
    assert mode != 0o600


def test_write_atomic_bytes_permissions_and_no_leftovers(tmp_path):
    from stylist.image import write_atomic_bytes

    umask = os.umask(0o022)
    os.umask(umask)
    path = write_atomic_bytes(tmp_path / "h.csv", b"step,total\n1,2.0\n")
    assert path.read_bytes() == b"step,total\n1,2.0\n"
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["h.csv"]


# --- check_output_path -------------------------------------------------------------------------------


@pytest.fixture
def photo(tmp_path) -> Path:
    (tmp_path / "dir").mkdir()
    path = tmp_path / "dir" / "photo.png"
    Image.fromarray(noise()).save(path)
    return path


def test_output_path_fine(tmp_path, photo):
    assert check_output_path(tmp_path / "result.jpg", [photo], overwrite=False) == tmp_path / "result.jpg"


@pytest.mark.parametrize("overwrite", [False, True])
def test_output_may_not_be_an_input(tmp_path, photo, overwrite, monkeypatch):
    before = photo.read_bytes()
    monkeypatch.chdir(tmp_path)
    for spelling in [
        photo,
        Path("dir/photo.png"),
        Path("./dir/../dir/photo.png"),
        tmp_path / "dir" / "." / "photo.png",
    ]:
        with pytest.raises(ImageError) as err:
            check_output_path(spelling, [photo, tmp_path / "style.jpg"], overwrite=overwrite)
        assert "input" in assert_one_line_naming(err, spelling)
    # The input given in another spelling than the output.
    with pytest.raises(ImageError):
        check_output_path(photo, ["./dir/../dir/photo.png"], overwrite=overwrite)
    assert photo.read_bytes() == before


def test_output_may_not_be_a_hard_link_to_an_input(tmp_path, photo):
    link = tmp_path / "link.png"
    os.link(photo, link)
    with pytest.raises(ImageError, match="input"):
        check_output_path(link, [photo], overwrite=True)


def test_existing_output_needs_overwrite(tmp_path, photo):
    out = tmp_path / "out.png"
    out.write_bytes(b"x")
    with pytest.raises(ImageError) as err:
        check_output_path(out, [photo], overwrite=False)
    assert "--overwrite" in assert_one_line_naming(err, out)
    assert check_output_path(out, [photo], overwrite=True) == out


@pytest.mark.parametrize("name", ["out.xyz", "out", "out.gif", "out.png.txt"])
def test_unknown_output_suffix(tmp_path, photo, name):
    with pytest.raises(ImageError) as err:
        check_output_path(tmp_path / name, [photo], overwrite=False)
    assert ".png" in assert_one_line_naming(err, tmp_path / name)


def test_uppercase_suffix_is_accepted(tmp_path, photo):
    assert check_output_path(tmp_path / "OUT.JPG", [photo], overwrite=False)


def test_output_may_not_be_a_directory(tmp_path, photo):
    folder = tmp_path / "looks_like.png"
    folder.mkdir()
    for overwrite in (False, True):
        with pytest.raises(ImageError) as err:
            check_output_path(folder, [photo], overwrite=overwrite)
        assert "directory" in assert_one_line_naming(err, folder)


def test_output_folder_must_exist(tmp_path, photo):
    out = tmp_path / "nosuch" / "out.png"
    with pytest.raises(ImageError) as err:
        check_output_path(out, [photo], overwrite=False)
    assert "does not exist" in assert_one_line_naming(err, out)


# --- open_image errors -----------------------------------------------------------------------------------


def _write_truncated(path: Path, fmt: str) -> None:
    Image.fromarray(noise(64, 64, seed=1)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_INPUTS = {
    "missing": (lambda p: None, "not found"),
    "directory": (lambda p: p.mkdir(), "directory"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "text": (lambda p: p.write_text("this is not a picture\n" * 20), "not an image"),
    "truncated_jpeg": (lambda p: _write_truncated(p, "JPEG"), "truncated"),
    "truncated_png": (lambda p: _write_truncated(p, "PNG"), "truncated"),
    "random_bytes": (lambda p: p.write_bytes(os.urandom(2000)), "not an image"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_open_image_errors_are_one_line_and_name_the_file(tmp_path, case):
    make, words = BAD_INPUTS[case]
    path = tmp_path / "input.jpg"
    make(path)
    with pytest.raises(ImageError) as err:
        open_image(path, "content")
    msg = assert_one_line_naming(err, path)
    assert words in msg, msg
    assert err.value.__cause__ is None  # no chained traceback noise


def test_load_tensor_error_for_a_path(tmp_path):
    from stylist.image import load_tensor

    with pytest.raises(ImageError, match="style file not found"):
        load_tensor(tmp_path / "nope.png", "style")


# --- issue 19: tensors from the Python API, sizes a network can take, failed writes ------------------------


def test_check_tensor_accepts_rgb_in_range_and_clamps_rounding():
    from stylist.image import check_tensor

    t = torch.rand(3, 5, 7)
    t[0, 0, 0], t[1, 0, 0] = 1.0004, -0.0004  # bicubic overshoot: not a wrong range
    out = check_tensor(t, "content", batch=False)
    assert out.shape == (1, 3, 5, 7) and out.dtype == torch.float32
    assert float(out.max()) <= 1.0 and float(out.min()) >= 0.0
    assert check_tensor(torch.rand(4, 3, 2, 2, dtype=torch.float16)).shape == (4, 3, 2, 2)


@pytest.mark.parametrize(
    "tensor, fragment",
    [
        (torch.rand(1, 3, 4, 4) * 255, "divide a 0-255 image by 255"),
        ((torch.rand(1, 3, 4, 4) * 255).to(torch.uint8), "t.float() / 255"),
        (torch.ones(1, 3, 4, 4, dtype=torch.bool), "floating point"),
        (torch.full((1, 3, 4, 4), float("nan")), "NaN or infinite"),
        (torch.tensor([[[[float("-inf")]]] * 3]), "NaN or infinite"),
        (torch.rand(1, 3, 4, 4) - 2, "[0, 1]"),
        (torch.rand(1, 4, 4, 4), "(3, H, W) or (1, 3, H, W)"),
        (torch.rand(4, 4, 3), "(3, H, W) or (1, 3, H, W)"),
        (torch.rand(2, 3, 4, 4), "(3, H, W) or (1, 3, H, W)"),  # one image here, not a batch
        (torch.rand(1, 3, 0, 4), "empty"),
    ],
)
def test_check_tensor_refuses_with_what_was_expected(tensor, fragment):
    from stylist.image import TensorInputError, check_tensor

    with pytest.raises(ValueError, match=None) as caught:
        check_tensor(tensor, "content", batch=False)
    assert isinstance(caught.value, TensorInputError) and isinstance(caught.value, ImageError)
    assert fragment in str(caught.value) and str(caught.value).startswith("content")
    assert "\n" not in str(caught.value)


def test_read_picture_refuses_a_0_255_tensor_instead_of_whitening_it():
    from stylist.image import load_tensor

    with pytest.raises(ValueError, match="divide a 0-255 image by 255"):
        load_tensor(torch.rand(1, 3, 8, 8) * 255, "content")


@pytest.mark.parametrize("hw", [(1, 1), (1, 9), (4, 4), (5, 3), (16, 16), (17, 40)])
@pytest.mark.parametrize("min_side, multiple", [(8, 4), (16, 8), (32, 16), (1, 1)])
def test_pad_to_fit_reaches_the_size_and_crops_back(hw, min_side, multiple):
    from stylist.image import crop_to, pad_to_fit

    x = torch.rand(2, 3, *hw)
    padded = pad_to_fit(x, min_side, multiple)
    for side, got in zip(hw, padded.shape[-2:]):
        assert got >= max(side, min_side) and got % multiple == 0
        assert got - max(side, min_side) < multiple  # the smallest size that works
    assert torch.equal(crop_to(padded, hw), x)


def test_pad_to_fit_reflects_rather_than_repeats():
    from stylist.image import pad_to_fit

    x = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 1, 3, 3).contiguous()  # columns 0 1 2
    assert pad_to_fit(x, 5)[0, 0, 0].tolist() == [0.0, 1.0, 2.0, 1.0, 0.0]
    assert pad_to_fit(x, 8)[0, 0, 0].tolist() == [0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0]  # reflected again


def test_check_min_side_names_the_file_and_the_size():
    from stylist.image import check_min_side

    check_min_side((16, 300), 16, "a.png")
    with pytest.raises(ImageError, match=r"a.png: 300x15 px is too small .* at least 16 px\); raise --size$"):
        check_min_side((15, 300), 16, "a.png", "raise --size")


def test_fit_min_side_enlarges_thin_paintings_from_the_original(recwarn):
    from stylist.errors import StylistWarning
    from stylist.image import fit_min_side

    strip = torch.rand(1, 3, 8, 4000)
    out = fit_min_side(strip, 16, "strip.png", long_side=512)  # 512 would give 512x1: too thin
    assert out.shape[-2:] == (16, 8000)
    assert [str(w.message) for w in recwarn if w.category is StylistWarning] == [
        "strip.png: 4000x8 px is too thin for the network; used at 8000x16 px"
    ]
    recwarn.clear()
    assert fit_min_side(torch.rand(1, 3, 40, 60), 16, long_side=30).shape[-2:] == (20, 30)
    assert not [w for w in recwarn if w.category is StylistWarning]  # nothing to say


def test_write_atomic_turns_any_failed_write_into_one_line(tmp_path):
    from stylist.image import WriteError, write_atomic, write_atomic_bytes

    def safetensors_like(tmp: str) -> None:
        Path(tmp).write_bytes(b"half a model")
        raise Exception("Error while serializing: I/O error: No space left on device (os error 28)")

    with pytest.raises(WriteError, match=r"^.*m.safetensors: cannot write the model \(No space left on device\)$"):
        write_atomic(tmp_path / "m.safetensors", safetensors_like, "the model")
    with pytest.raises(WriteError, match=r"cannot write"):
        write_atomic_bytes(tmp_path / "missing" / "h.csv", b"x")  # a folder that is not there
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_keeps_bugs_as_bugs(tmp_path):
    from stylist.image import write_atomic

    def buggy(tmp: str) -> None:
        raise TypeError("a bug in Stylist, not a failed write")

    with pytest.raises(TypeError):
        write_atomic(tmp_path / "x.bin", buggy)
    assert list(tmp_path.iterdir()) == []
