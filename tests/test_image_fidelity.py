"""Faithful images: ICC to sRGB, alpha carried through, 16-bit in and out, EXIF orientation,
first frame of animations, and the pixel-limit guard, in stylist.image and ``stylist transfer``.

Every image is made here, tiny, with writers other than Stylist's own (Pillow, pypng,
tifffile), and read back the same way, so a mistake in Stylist cannot cancel itself out.
The command runs in-process through ``stylist.cli.main`` on shallow layers (relu1_1 only)
for two iterations: a run takes well under a second, and these tests are about the files.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image, ImageCms, ImageOps

from stylist.cli import main
from stylist.errors import ImageError, StylistWarning
from stylist.image import open_image, read_picture, save_image

# --- helpers -------------------------------------------------------------------------------------------


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))  # ICC s15Fixed16Number


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def linear_icc() -> bytes:
    """An ICC v2 RGB matrix/TRC profile: sRGB primaries with gamma 1.0 (linear light).

    Pillow can build no RGB profile other than sRGB, so this one is written by hand. Its
    conversion to sRGB is the sRGB transfer curve applied to each channel: far from the
    identity (linear 128 is sRGB 188) and known in closed form (see :func:`srgb_encode`).
    """
    text = b"linear sRGB\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8) + bytes(3) + bytes(67)
    identity_curve = b"curv" + bytes(4) + struct.pack(">I", 0)  # no entries: gamma 1.0
    tags = [
        (b"desc", desc),
        (b"wtpt", _xyz(0.9642, 1.0, 0.8249)),  # D50, the PCS white
        (b"rXYZ", _xyz(0.4360747, 0.2225045, 0.0139322)),  # sRGB primaries adapted to D50
        (b"gXYZ", _xyz(0.3850649, 0.7168786, 0.0971045)),
        (b"bXYZ", _xyz(0.1430804, 0.0606169, 0.7141733)),
        (b"rTRC", identity_curve),
        (b"gTRC", identity_curve),
        (b"bTRC", identity_curve),
        (b"cprt", b"text" + bytes(4) + b"none\0"),
    ]
    start = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    header = (
        struct.pack(">I", start + len(data)) + bytes(4) + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ " + bytes(12) + b"acsp"
        + bytes(28) + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + bytes(48)
    )  # fmt: skip
    return header + struct.pack(">I", len(tags)) + table + data


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve, linear light in [0, 1] -> sRGB in [0, 1]."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def lcms_to_srgb(arr: np.ndarray, icc: bytes) -> np.ndarray:
    """8-bit RGB samples converted by lcms from ``icc`` to sRGB: the reference for 8-bit input."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    out = ImageCms.profileToProfile(Image.fromarray(arr, "RGB"), src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    return np.asarray(out)


def assert_srgb_profile(icc: bytes | None) -> None:
    """``icc`` is an sRGB profile: named so, and lcms converts through it to sRGB without change."""
    assert icc, "no ICC profile embedded"
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    probe = np.random.default_rng(5).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.abs(lcms_to_srgb(probe, icc).astype(int) - probe).max() <= 1


def with_iccp(png_data: bytes, icc: bytes) -> bytes:
    """A PNG with an iCCP chunk put after IHDR (pypng writes none)."""
    body = b"foreign\0\0" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return png_data[:33] + chunk + png_data[33:]


def png16(samples: np.ndarray) -> bytes:
    """(H, W, C) uint16 -> 16-bit PNG bytes written by pypng (C: 1, 2, 3 or 4)."""
    h, w, c = samples.shape
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16).write(buf, samples.reshape(h, w * c).tolist())
    return buf.getvalue()


def read_png16(path: Path) -> np.ndarray:
    """(H, W, C) uint16 samples of a PNG, as pypng reads them; fails unless 16-bit."""
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    assert info["bitdepth"] == 16, info
    return np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, info["planes"])


def deep_ramp(h: int = 16, w: int = 24) -> np.ndarray:
    """(H, W, 3) uint16 where neighbours differ only in the low byte: 8 bits would merge them."""
    base = np.array([0x2000, 0x8000, 0xC000], np.uint16)
    steps = np.arange(h * w, dtype=np.uint16).reshape(h, w, 1) % 200
    return base + steps


def rgb_of(picture) -> np.ndarray:
    """A Picture's colour as (H, W, 3) float64."""
    return picture.rgb[0].permute(1, 2, 0).double().numpy()


def smooth(h: int = 16, w: int = 24) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def alpha_ramp(h: int = 16, w: int = 24) -> np.ndarray:
    """Fully transparent, soft and opaque pixels."""
    a = np.linspace(0, 255, w).round().astype(np.uint8)[None].repeat(h, 0)
    a[:, :3] = 0
    a[:, -3:] = 255
    return a


# --- ICC profiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, params", [("PNG", {}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("JPEG", {"quality": 100})]
)
def test_icc_profile_is_converted_to_srgb(tmp_path, fmt, params):
    raw = smooth()
    path = tmp_path / f"linear.{fmt.lower()}"
    Image.fromarray(raw).save(path, format=fmt, icc_profile=linear_icc(), **params)
    with Image.open(path) as im:
        stored = np.asarray(im.convert("RGB"))  # what the file holds, lossy or not
        assert im.info["icc_profile"] == linear_icc()
    got = np.asarray(open_image(path)).astype(int)
    assert np.abs(got - lcms_to_srgb(stored, linear_icc())).max() <= 1
    assert np.abs(got - srgb_encode(stored / 255.0) * 255).max() <= 2  # the closed form agrees
    assert np.abs(got - stored).max() > 40  # and it is far from taking the samples as sRGB


def test_icc_profile_of_a_16_bit_tiff_is_converted_at_full_precision(tmp_path):
    raw = deep_ramp()
    tifffile.imwrite(tmp_path / "linear16.tif", raw, photometric="rgb", iccprofile=linear_icc(), metadata=None)
    got = rgb_of(read_picture(tmp_path / "linear16.tif"))
    assert np.abs(got - srgb_encode(raw / 65535.0)).max() < 1.5 / 255  # table nodes are 8-bit accurate
    # Interpolated, not rounded to 8 bits: samples one low-byte step apart stay apart.
    assert len(np.unique(got[..., 1])) == len(np.unique(raw[..., 1]))


def test_icc_profile_of_a_16_bit_png_is_converted(tmp_path):
    raw = deep_ramp()
    (tmp_path / "linear16.png").write_bytes(with_iccp(png16(raw), linear_icc()))
    with Image.open(tmp_path / "linear16.png") as im:
        assert im.info["icc_profile"] == linear_icc()  # the chunk is well formed
    got = rgb_of(read_picture(tmp_path / "linear16.png"))
    assert np.abs(got - srgb_encode(raw / 65535.0)).max() < 1.5 / 255
    assert len(np.unique(got[..., 1])) == len(np.unique(raw[..., 1]))


def test_a_broken_icc_profile_is_ignored_with_a_warning(tmp_path):
    raw = smooth()
    Image.fromarray(raw).save(tmp_path / "broken.png", icc_profile=b"not a profile" * 20)
    with pytest.warns(StylistWarning, match="ICC profile"):
        got = np.asarray(open_image(tmp_path / "broken.png"))
    assert np.array_equal(got, raw)  # taken as sRGB


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_outputs_embed_srgb(tmp_path, suffix):
    path = save_image(torch.rand(1, 3, 16, 24), tmp_path / f"out{suffix}")
    with Image.open(path) as im:
        assert_srgb_profile(im.info.get("icc_profile"))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_outputs_embed_srgb(tmp_path, suffix):
    path = save_image(torch.rand(1, 3, 16, 24), tmp_path / f"out{suffix}", depth=16)
    with Image.open(path) as im:
        assert_srgb_profile(im.info.get("icc_profile"))
    if suffix == ".tif":
        with tifffile.TiffFile(path) as tif:
            assert_srgb_profile(tif.pages[0].iccprofile)


def test_converted_input_is_written_as_srgb_and_reads_back_unchanged(tmp_path):
    # The output holds converted colours and says sRGB, so reading it converts nothing again.
    Image.fromarray(smooth()).save(tmp_path / "linear.png", icc_profile=linear_icc())
    converted = read_picture(tmp_path / "linear.png").rgb
    save_image(converted, tmp_path / "out.png")
    assert torch.equal(read_picture(tmp_path / "out.png").rgb, converted)


# --- alpha -------------------------------------------------------------------------------------------


def rgba_png(path: Path) -> np.ndarray:
    rgba = np.dstack([smooth(), alpha_ramp()])
    rgba[:, :3, :3] = (0, 0, 0)  # the arbitrary colour files store under full transparency
    Image.fromarray(rgba, "RGBA").save(path)
    return rgba


def test_alpha_is_set_aside_and_the_colour_kept_plain(tmp_path):
    rgba = rgba_png(tmp_path / "a.png")
    pic = read_picture(tmp_path / "a.png")
    assert pic.alpha is not None and pic.alpha.shape == (1, 1, 16, 24)
    assert np.array_equal((pic.alpha[0, 0].numpy() * 255).round(), rgba[..., 3])
    rgb, visible = rgb_of(pic) * 255, rgba[..., 3] > 0
    assert np.abs(rgb[visible] - rgba[..., :3][visible]).max() < 1e-3  # not composited onto white
    assert (rgb[~visible] == 255).all()  # stray colour under full transparency replaced by white


def test_opaque_alpha_channel_counts_as_none(tmp_path):
    Image.fromarray(np.dstack([smooth(), np.full((16, 24), 255, np.uint8)]), "RGBA").save(tmp_path / "o.png")
    assert read_picture(tmp_path / "o.png").alpha is None


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_alpha_round_trip(tmp_path, suffix):
    rgba = rgba_png(tmp_path / "in.png")
    pic = read_picture(tmp_path / "in.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these formats keep alpha: no warning
        path = save_image(pic, tmp_path / f"out{suffix}")
    with Image.open(path) as im:
        assert im.mode == "RGBA"
        assert np.array_equal(np.asarray(im.getchannel("A")), rgba[..., 3])
        back = np.asarray(im.convert("RGB")).astype(int)
    diff = np.abs(back - rgba[..., :3])[rgba[..., 3] > 0]
    if suffix == ".webp":  # lossy colour (alpha is lossless)
        assert diff.mean() < 4
    else:
        assert diff.max() == 0


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_alpha_is_flattened_onto_white_with_a_warning(tmp_path, suffix):
    rgba = rgba_png(tmp_path / "in.png")
    with pytest.warns(StylistWarning, match="transparency") as record:
        path = save_image(read_picture(tmp_path / "in.png"), tmp_path / f"out{suffix}")
    assert len(record) == 1 and "\n" not in str(record[0].message)
    with Image.open(path) as im:
        assert im.mode == "RGB"
        back = np.asarray(im).astype(int)
    a = rgba[..., 3:] / 255.0
    expected = np.where(a > 0, rgba[..., :3], 255) * a + 255 * (1 - a)
    assert np.abs(back - expected).max() <= (0.5 if suffix == ".bmp" else 12)  # rounding only, or JPEG's loss


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_alpha_round_trip(tmp_path, suffix):
    rgb, alpha = torch.rand(1, 3, 16, 24), torch.rand(1, 1, 16, 24)
    path = save_image(rgb, tmp_path / f"out{suffix}", depth=16, alpha=alpha)
    samples = read_png16(path) if suffix == ".png" else tifffile.imread(path)
    assert samples.dtype == np.uint16 and samples.shape == (16, 24, 4)
    assert np.array_equal(samples[..., 3], (alpha[0, 0].double().numpy() * 65535).round())
    pic = read_picture(path)  # and Stylist reads its own file back whole
    assert torch.allclose(pic.alpha, alpha, atol=0.6 / 65535)
    assert torch.allclose(pic.rgb, rgb, atol=0.6 / 65535)


# --- 16-bit input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("planes", [1, 2, 3, 4])
def test_16_bit_png_is_read_at_full_precision(tmp_path, planes):
    colour = deep_ramp()[..., : 1 if planes < 3 else 3]
    samples = colour if planes in (1, 3) else np.dstack([colour, np.full((16, 24), 65535, np.uint16)])
    (tmp_path / "deep.png").write_bytes(png16(samples))
    got = rgb_of(read_picture(tmp_path / "deep.png")) * 65535
    expected = np.repeat(colour, 3, -1) if planes < 3 else colour
    assert np.abs(got - expected).max() < 0.05


@pytest.mark.parametrize("compression", [None, "zlib"])
@pytest.mark.parametrize("alpha", [False, True])
def test_16_bit_tiff_is_read_at_full_precision(tmp_path, compression, alpha):
    colour = deep_ramp()
    a = (alpha_ramp().astype(np.uint32) * 257).astype(np.uint16)
    a[:, 3:-3] |= 0x8000  # keep most of it visible
    samples = np.dstack([colour, a]) if alpha else colour
    extras = ["unassalpha"] if alpha else None
    tifffile.imwrite(
        tmp_path / "deep.tif", samples, photometric="rgb", extrasamples=extras, compression=compression, metadata=None
    )
    pic = read_picture(tmp_path / "deep.tif")
    got = rgb_of(pic) * 65535
    visible = a > 0 if alpha else np.ones(a.shape, bool)
    assert np.abs(got[visible] - colour[visible]).max() < 0.05
    if alpha:
        assert np.abs(pic.alpha[0, 0].double().numpy() * 65535 - a).max() < 0.05
    else:
        assert pic.alpha is None


def test_premultiplied_16_bit_tiff_alpha_is_undone(tmp_path):
    colour = deep_ramp().astype(np.float64)
    a = np.full((16, 24, 1), 0.5)
    stored = np.dstack([colour * a, a * 65535]).round().astype(np.uint16)  # associated alpha: colour x alpha
    tifffile.imwrite(tmp_path / "pre.tif", stored, photometric="rgb", extrasamples=["assocalpha"], metadata=None)
    got = rgb_of(read_picture(tmp_path / "pre.tif")) * 65535
    assert np.abs(got - colour).max() < 2.5  # plain colour again, to the rounding of the stored halves


# --- 16-bit output -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_depth_16_writes_every_16_bit_value(tmp_path, suffix):
    values = torch.from_numpy(deep_ramp().astype(np.float64) / 65535).permute(2, 0, 1)[None].float()
    path = save_image(values, tmp_path / f"out{suffix}", depth=16)
    samples = read_png16(path) if suffix == ".png" else tifffile.imread(path)
    assert samples.dtype == np.uint16 and samples.shape == (16, 24, 3)
    assert np.array_equal(samples, deep_ramp())


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".bmp"])
def test_depth_16_needs_png_or_tiff(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    with pytest.raises(ImageError) as err:
        save_image(torch.rand(1, 3, 8, 8), path, depth=16)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "16" in msg and ".png" in msg
    assert not path.exists()


# --- EXIF orientation --------------------------------------------------------------------------------


def marked(h: int = 16, w: int = 24) -> np.ndarray:
    """No two pixels alike, so any wrong turn or mirror shows."""
    return np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_made_upright(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(marked()).save(tmp_path / "o.png", exif=exif.tobytes())
    with Image.open(tmp_path / "o.png") as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(np.asarray(open_image(tmp_path / "o.png")), expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_of_a_tiff_is_applied_once(tmp_path, dtype, orientation):
    # Pillow turns some TIFFs itself as it loads them; turning them again would be wrong.
    stored = marked().astype(dtype) * (257 if dtype == np.uint16 else 1)
    tifffile.imwrite(
        tmp_path / "o.tif", stored, photometric="rgb", extratags=[(274, "H", 1, orientation, False)], metadata=None
    )
    turns = {3: 2, 6: -1, 8: 1}[orientation]
    expected = np.rot90(stored, turns).astype(np.float64) / np.iinfo(dtype).max
    got = rgb_of(read_picture(tmp_path / "o.tif"))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-6


# --- animations --------------------------------------------------------------------------------------


def animation(path: Path, fmt: str) -> np.ndarray:
    """Three flat frames (red, green, blue); returns the first."""
    frames = [Image.new("RGB", (16, 12), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, **extra)
    with Image.open(path) as im:
        assert im.n_frames == 3
    return np.asarray(frames[0])


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_animation_gives_its_first_frame_with_one_warning(tmp_path, fmt):
    path = tmp_path / f"anim.{fmt.lower()}"
    first = animation(path, fmt)
    with pytest.warns(StylistWarning) as record:
        got = np.asarray(open_image(path))
    messages = [str(r.message) for r in record if issubclass(r.category, StylistWarning)]
    assert len(messages) == 1 and str(path) in messages[0] and "3 frames" in messages[0]
    assert np.array_equal(got, first)


def test_still_image_gives_no_warning(tmp_path):
    Image.fromarray(smooth()).save(tmp_path / "still.gif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_image(tmp_path / "still.gif")


# --- the pixel limit ---------------------------------------------------------------------------------


def test_pixel_limit_refuses_with_one_clear_line(tmp_path):
    Image.fromarray(smooth(32, 48)).save(tmp_path / "big.png")  # 1,536 pixels
    with pytest.raises(ImageError) as err:
        read_picture(tmp_path / "big.png", "content", max_pixels=1000)
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "big.png") in msg and "--max-pixels" in msg and "1,536" in msg
    assert err.value.__cause__ is None
    assert read_picture(tmp_path / "big.png", "content", max_pixels=1536).size == (32, 48)  # the limit is inclusive


def test_pixel_limit_defaults_to_pillows_and_leaves_it_alone(tmp_path, monkeypatch):
    Image.fromarray(smooth(32, 48)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        # Between Pillow's limit and twice it Pillow only warns; Stylist refuses instead.
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match="--max-pixels"):
            read_picture(tmp_path / "big.png")
        assert read_picture(tmp_path / "big.png", max_pixels=2000).size == (32, 48)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    # A header that promises 10^10 pixels over a few bytes of data: refused by its size, not
    # found truncated after decoding started.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    with pytest.raises(ImageError, match=r"10,000,000,000 pixels.*--max-pixels"):
        read_picture(tmp_path / "bomb.png")


# --- the command, end to end -------------------------------------------------------------------------

# Shallow layers and two iterations: the run is real but short.
FAST = ["--iterations", "2", "--content-layers", "relu1_1", "--style-layers", "relu1_1", "--device", "cpu", "-q"]


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stylist-cache")


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, weights_cache):
    """Run ``stylist transfer`` in tmp_path (holding style.png): returns (exit code, stderr lines)."""
    monkeypatch.setenv("STYLIST_CACHE", str(weights_cache))  # never the user's cache
    monkeypatch.chdir(tmp_path)
    Image.fromarray(marked(24, 24)).save(tmp_path / "style.png")

    def run(content: str, out: str, *extra: str, size: int = 24) -> tuple[int, list[str]]:
        capsys.readouterr()
        code = main(["transfer", content, "style.png", "-o", out, "--size", str(size), *FAST, *extra])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and captured.out == ""
        return code, captured.err.splitlines()

    return run


def one_error(code: int, lines: list[str], *words: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("stylist: error:"), lines
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_cli_converts_icc_and_writes_srgb(tmp_path, cli):
    Image.fromarray(smooth()).save(tmp_path / "linear.png", icc_profile=linear_icc())
    code, lines = cli("linear.png", "out.png")
    assert code == 0 and lines[-1].startswith("wrote out.png"), lines
    with Image.open(tmp_path / "out.png") as im:
        assert_srgb_profile(im.info.get("icc_profile"))


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_cli_carries_alpha_through(tmp_path, cli, suffix):
    rgba = rgba_png(tmp_path / "cut.png")  # 24 wide: --size 24 keeps its size, so alpha is exact
    code, lines = cli("cut.png", f"out{suffix}")
    assert code == 0 and len(lines) == 1, lines  # no warning
    with Image.open(tmp_path / f"out{suffix}") as im:
        assert im.mode == "RGBA" and im.size == (24, 16)
        assert np.array_equal(np.asarray(im.getchannel("A")), rgba[..., 3])


def test_cli_flattens_alpha_for_jpeg_with_one_warning(tmp_path, cli):
    rgba_png(tmp_path / "cut.png")
    code, lines = cli("cut.png", "out.jpg")
    assert code == 0, lines
    warned = [line for line in lines if line.startswith("stylist: warning:")]
    assert len(warned) == 1 and "transparency" in warned[0], lines
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.mode == "RGB"
        assert np.asarray(im)[:, :3].min() >= 240  # fully transparent columns became white


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_cli_depth_16(tmp_path, cli, suffix):
    (tmp_path / "deep.png").write_bytes(png16(deep_ramp()))
    code, lines = cli("deep.png", f"out{suffix}", "--depth", "16")
    assert code == 0, lines
    samples = read_png16(tmp_path / f"out{suffix}") if suffix == ".png" else tifffile.imread(tmp_path / f"out{suffix}")
    assert samples.dtype == np.uint16 and samples.shape == (16, 24, 3)
    # An 8-bit result widened to 16 bits would hold only multiples of 257.
    assert (samples % 257 != 0).mean() > 0.5


def test_cli_depth_16_with_jpeg_is_one_error(tmp_path, cli):
    Image.fromarray(smooth()).save(tmp_path / "photo.png")
    code, lines = cli("photo.png", "out.jpg", "--depth", "16")
    one_error(code, lines, "out.jpg", "16", ".png")
    assert not (tmp_path / "out.jpg").exists()


def test_cli_result_is_upright(tmp_path, cli):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    Image.fromarray(marked()).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    code, lines = cli("phone.jpg", "out.png")
    assert code == 0, lines
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (16, 24)  # upright, and not marked to be turned again by a viewer
        assert im.getexif().get(0x0112, 1) == 1


def test_cli_animation_gives_one_warning_line(tmp_path, cli):
    animation(tmp_path / "anim.gif", "GIF")
    code, lines = cli("anim.gif", "out.png")
    assert code == 0, lines
    warned = [line for line in lines if line.startswith("stylist: warning:")]
    assert len(warned) == 1 and "anim.gif" in warned[0] and "first" in warned[0], lines
    assert len(lines) == 2 and lines[-1].startswith("wrote out.png"), lines


@pytest.mark.parametrize("which", ["content", "style"])
def test_cli_pixel_limit(tmp_path, cli, which):
    Image.fromarray(smooth(32, 48)).save(tmp_path / "big.png")  # 1,536 pixels; style.png has 576
    Image.fromarray(smooth(16, 16)).save(tmp_path / "small.png")
    content = "big.png" if which == "content" else "small.png"
    if which == "style":
        (tmp_path / "style.png").unlink()
        (tmp_path / "big.png").rename(tmp_path / "style.png")
    culprit = "big.png" if which == "content" else "style.png"
    code, lines = cli(content, "out.png", "--max-pixels", "1000")
    one_error(code, lines, culprit, "--max-pixels")
    assert not (tmp_path / "out.png").exists()
    code, lines = cli(content, "out.png", "--max-pixels", "2000")
    assert code == 0 and (tmp_path / "out.png").exists(), lines


def test_cli_max_pixels_must_be_positive(tmp_path, cli):
    Image.fromarray(smooth()).save(tmp_path / "photo.png")
    one_error(*cli("photo.png", "out.png", "--max-pixels", "0"), "--max-pixels")
