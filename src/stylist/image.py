"""The only place where pixels become tensors and back.

Convention everywhere else: RGB float32 in [0, 1], shaped (B, 3, H, W), in sRGB.
Reading honours EXIF orientation, converts an embedded ICC profile to sRGB, keeps 16-bit
PNG and TIFF samples at full precision, sets an alpha channel aside (:class:`Picture`),
takes the first frame of an animation (with a warning) and refuses images over a pixel
limit (a decompression-bomb guard). Writing embeds an sRGB profile, re-attaches the alpha
where the format can hold it, writes 16-bit PNG or TIFF on request, is atomic (temporary
file in the same folder, then rename) and never replaces an existing file unless asked.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import struct
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageCms, UnidentifiedImageError

from .errors import ConfigError, ImageError, StylistWarning, count, first_line

# Output formats by suffix (Pillow format names).
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")  # formats that can store the content's transparency
DEPTH16_FORMATS = ("PNG", "TIFF")  # formats that can store 16 bits per channel
ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")  # formats Pillow embeds an ICC profile in
EXIF_ORIENTATION = 0x0112


@dataclass
class Picture:
    """An input image as Stylist works on it: upright, sRGB, full precision, alpha set aside.

    ``rgb`` is the plain (not composited) colour: compositing onto white would be applied a
    second time when the alpha is re-attached, leaving light fringes on soft edges. Fully
    transparent pixels hold white instead of their stored colour, which is arbitrary (often
    black) and would otherwise bleed into the visible edges through VGG's receptive fields.
    """

    rgb: torch.Tensor  # (1, 3, H, W) float32 in [0, 1]
    alpha: torch.Tensor | None = None  # (1, 1, H, W) float32 in [0, 1]; None when opaque
    source: str | None = None  # the file it was read from, for messages

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return (self.rgb.shape[-2], self.rgb.shape[-1])

    def flat(self) -> torch.Tensor:
        """The image as a viewer shows it on a white page (alpha composited over white)."""
        return self.rgb if self.alpha is None else _over_white(self.rgb, self.alpha)

    def alpha_at(self, size: tuple[int, int]) -> torch.Tensor | None:
        """The alpha resized to ``size`` (H, W), to go with a result of that size."""
        return None if self.alpha is None else resize(self.alpha, size)


ImageLike = str | os.PathLike | Image.Image | torch.Tensor | Picture


def _over_white(rgb: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return rgb * alpha + (1.0 - alpha)


# --- reading ----------------------------------------------------------------------------------------


def read_picture(src: ImageLike, what: str = "image", max_pixels: int | None = None) -> Picture:
    """Read ``src`` (a path, PIL image, RGB tensor or Picture) as a :class:`Picture`.

    ``max_pixels`` (None = Pillow's ``Image.MAX_IMAGE_PIXELS``) refuses files with more
    pixels, before any of them is decoded.
    """
    if isinstance(src, Picture):
        return src
    if isinstance(src, torch.Tensor):
        return Picture(_check_tensor(src, what))
    if isinstance(src, Image.Image):
        return _picture(_samples(src), _orientation(src))
    path = _check_path(src, what)
    try:
        with _open_guarded(path, max_pixels) as im:
            _warn_if_animated(im, path)
            picture = _picture(_samples(im, path), _orientation(im))
            picture.source = str(path)
            return picture
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Stylist can read; give a JPEG, PNG, WebP, TIFF or BMP file") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImageError(f"{path}: damaged or truncated image ({msg}); re-export or choose another file") from None


def source_name(src: object, role: str = "image") -> str:
    """How messages name an input: its file (a path, or a Picture read from one), else "the ROLE"."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return getattr(src, "source", None) or f"the {role}"


def open_image(src: ImageLike, what: str = "image", max_pixels: int | None = None) -> Image.Image:
    """Read ``src`` as an upright 8-bit sRGB PIL image; transparent areas become white."""
    if isinstance(src, torch.Tensor):
        return to_pil(src)
    return to_pil(read_picture(src, what, max_pixels).flat())


def load_tensor(src: ImageLike, what: str = "image", max_pixels: int | None = None) -> torch.Tensor:
    """Any accepted input -> (1, 3, H, W) float32 in [0, 1]; transparent areas become white."""
    return read_picture(src, what, max_pixels).flat()


def _check_tensor(src: torch.Tensor, what: str) -> torch.Tensor:
    return check_tensor(src, what, batch=False)


# Values this far outside [0, 1] are rounding (bicubic overshoot, fp16), not a wrong range: clamped.
RANGE_SLACK = 1e-3


class TensorInputError(ImageError, ValueError):
    """A tensor handed to the Python API is not an RGB image in [0, 1]: a ValueError for Python
    callers, and a StylistError (one line) for the CLI and the web app."""


def check_tensor(src: torch.Tensor, what: str = "image", batch: bool = True, grey: bool = False) -> torch.Tensor:
    """``src`` as float32 (B, 3, H, W) in [0, 1]; TensorInputError (a ValueError) for anything else.

    Accepted: a floating-point tensor (3, H, W) or (B, 3, H, W) (B = 1 unless ``batch``), every
    value finite and within [0, 1] (up to ``RANGE_SLACK``, then clamped); with ``grey``, one channel
    is accepted as well as three (masks). Refused with a message
    saying what was expected: integer or bool dtypes (a 0-255 uint8 photo), values outside [0, 1]
    (a 0-255 float photo would otherwise clamp to white), NaN or inf (would give black), other
    shapes, empty images. The one check of every public entry point that takes tensors.
    """
    if not isinstance(src, torch.Tensor):
        raise TensorInputError(f"{what}: expected a torch.Tensor; got {type(src).__name__}")
    if not src.dtype.is_floating_point:
        hint = "; divide a 0-255 photo by 255: t.float() / 255" if src.dtype == torch.uint8 else ""
        raise TensorInputError(
            f"{what} tensor must be floating point (float32, float16, bfloat16){hint}; got {src.dtype}"
        )
    t = src.detach().float()
    if t.dim() == 3:
        t = t.unsqueeze(0)
    shape = "(B, 3, H, W) or (3, H, W)" if batch else "(3, H, W) or (1, 3, H, W)"
    channels = (1, 3) if grey else (3,)  # grey: a mask, whose (B, 1, H, W) is accepted too
    if t.dim() != 4 or t.shape[1] not in channels or (not batch and t.shape[0] != 1):
        raise TensorInputError(f"{what} tensor must be RGB shaped {shape}; got {tuple(src.shape)}")
    if t.numel() == 0:
        raise TensorInputError(f"{what} tensor is empty; got {tuple(src.shape)}")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        values = count(bad, "NaN or infinite value")
        raise TensorInputError(f"{what} tensor holds {values}; give finite values in [0, 1]")
    low, high = float(t.min()), float(t.max())
    if low < -RANGE_SLACK or high > 1 + RANGE_SLACK:
        hint = "; divide a 0-255 image by 255" if high > 1.5 else ""
        raise TensorInputError(f"{what} tensor values must lie in [0, 1]; got [{low:.4g}, {high:.4g}]{hint}")
    return t.clamp(0, 1)


def _check_path(src: str | os.PathLike, what: str) -> Path:
    path = Path(src)
    if not path.exists():
        raise ImageError(f"{path}: {what} file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory; give an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file; give a JPEG, PNG, WebP, TIFF or BMP image")
    return path


# Pillow's own guard is a module-wide setting; the lock keeps two readers from racing on it.
_OPEN_LOCK = threading.Lock()


def _open_guarded(path: Path, max_pixels: int | None) -> Image.Image:
    """``Image.open`` (header only) with one pixel limit and one clear message.

    Pillow warns between MAX_IMAGE_PIXELS and twice that, and raises above. Stylist
    replaces that pair by a single limit, Pillow's by default: no warning to ignore, and
    ``max_pixels`` can raise the limit for one read without touching Pillow's setting.
    """
    with _OPEN_LOCK:
        pillow_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
    limit = pillow_limit if max_pixels is None else max_pixels
    count = im.width * im.height
    if limit is not None and count > limit:
        im.close()
        raise ImageError(
            f"{path}: {im.width}x{im.height} is {count:,} pixels, over the limit of {limit:,} that guards against "
            f"decompression bombs; if you trust the file, pass --max-pixels {count} (max_pixels={count} in Python)"
        )
    return im


def _warn_if_animated(im: Image.Image, path: Path) -> None:
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        warnings.warn(
            f"{path}: has {frames} frames (an animation or a multi-page file); using the first",
            StylistWarning,
            stacklevel=4,
        )


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(EXIF_ORIENTATION, 1)
    return value if value in range(1, 9) else 1


# The turns of ImageOps.exif_transpose, on (H, W, C) arrays so that 16-bit samples keep their precision.
_ORIENT = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored upside down
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # turn clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),  # turn counter-clockwise
}


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn (H, W, C) samples stored with EXIF ``orientation`` (1..8) upright."""
    return _ORIENT[orientation](arr) if orientation in _ORIENT else arr


def _picture(samples: np.ndarray, orientation: int) -> Picture:
    """(H, W, 3 or 4) float samples in [0, 1] -> an upright Picture."""
    arr = np.ascontiguousarray(orient(samples, orientation), dtype=np.float32)
    t = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()
    rgb, alpha = t[:, :3].contiguous(), (t[:, 3:].contiguous() if t.shape[1] == 4 else None)
    if alpha is not None and bool((alpha >= 1.0).all()):
        alpha = None  # an opaque alpha channel is no alpha channel
    if alpha is not None:
        rgb = torch.where(alpha > 0, rgb, torch.ones_like(rgb))  # see Picture: no stray colours
    return Picture(rgb, alpha)


def _samples(im: Image.Image, path: Path | None = None) -> np.ndarray:
    """The pixels as (H, W, 3 or 4) float32 in [0, 1], sRGB, as stored (not yet upright)."""
    icc = im.info.get("icc_profile")
    colour: np.ndarray | Image.Image  # float samples on the deep path, a PIL image on the 8-bit one
    alpha: np.ndarray | Image.Image | None
    deep = _deep_samples(im, path)
    if deep is not None:
        colour, alpha = (deep[..., :-1], deep[..., -1:]) if deep.shape[-1] in (2, 4) else (deep, None)
        colour = _icc_to_srgb_float(colour, icc, path) if icc and not _is_srgb(icc) else colour
        colour = np.repeat(colour, 3, axis=-1) if colour.shape[-1] == 1 else colour
        return colour if alpha is None else np.concatenate([colour, alpha], -1)
    colour, alpha = _split_alpha(im)
    rgb = _cms(colour, icc, path) if icc and not _is_srgb(icc) else None
    rgb = rgb if rgb is not None else colour.convert("RGB")
    arr = np.asarray(rgb, dtype=np.float32) / 255.0
    return arr if alpha is None else np.concatenate([arr, np.asarray(alpha, dtype=np.float32)[..., None] / 255.0], -1)


def _split_alpha(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Colour (mode RGB, L, CMYK ...) and alpha (mode L) or None."""
    if im.mode == "LA":  # kept grey, so that a grey ICC profile still fits
        return im.getchannel("L"), im.getchannel("A")
    if im.mode in ("RGBA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")  # also un-premultiplies La / RGBa
        return rgba.convert("RGB"), rgba.getchannel("A")
    if im.mode in ("1", "P"):
        return im.convert("RGB"), None
    return im, None


# --- 16-bit samples ---------------------------------------------------------------------------------
# Pillow holds 16-bit grey but not 16-bit RGB (it keeps the high byte). Two small libraries read
# and write those at full precision, imported only when such a file turns up: pypng (pure
# Python) for PNG and tifffile (numpy only) for TIFF.


def _deep_samples(im: Image.Image, path: Path | None) -> np.ndarray | None:
    """(H, W, C) float32 in [0, 1] for a high-bit-depth image (C: 1 grey, 2 grey+alpha, 3, 4), else None."""
    if path is not None and im.format == "PNG" and _png_bit_depth(path) == 16:
        return _read_png16(path)
    # A TIFF is opened as a TiffImageFile, which has tag_v2; the stubs type ``im`` as the base class.
    if path is not None and im.format == "TIFF" and max(_as_tuple(im.tag_v2.get(258, 8))) == 16:  # type: ignore[attr-defined]
        return _read_tiff16(path)
    if im.mode.startswith("I;16") or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        # I;16 is 16-bit whatever its values (a dark one must stay dark); plain I may hold 8-bit values.
        full = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return (arr / full).clip(0, 1).astype(np.float32)[..., None]
    return None


def _as_tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(25)  # signature, IHDR length and type, width, height, bit depth
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 8


def _read_png16(path: Path) -> np.ndarray:
    import png  # pypng

    try:
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except png.Error as err:
        raise ValueError(str(err)) from None
    arr = arr.reshape(height, width, info["planes"])
    return arr.astype(np.float32) / float(2 ** info["bitdepth"] - 1)  # asDirect may narrow to sBIT bits


def _read_tiff16(path: Path) -> np.ndarray | None:
    """16-bit grey or RGB TIFF samples, or None (with a warning) where tifffile cannot decode them."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
                return None  # CMYK, palette ...: Pillow reads them (at 8 bits)
            arr = page.asarray()
            axes, extras = page.axes, tuple(page.extrasamples or ())
    except (KeyError, ValueError, NotImplementedError, tifffile.TiffFileError) as err:
        # LZW and others need the optional imagecodecs package.
        warnings.warn(
            f"{path}: read at 8 bits per channel ({err}); install imagecodecs for full precision",
            StylistWarning,
            stacklevel=6,
        )
        return None
    arr = np.moveaxis(arr, axes.index("S"), -1) if "S" in axes else arr[..., None]
    colours = 1 if page.photometric == tifffile.PHOTOMETRIC.MINISBLACK else 3
    arr = arr[..., : colours + (1 if extras else 0)].astype(np.float32) / 65535.0
    if extras and extras[0] == tifffile.EXTRASAMPLE.ASSOCALPHA:  # premultiplied: undo it
        alpha = arr[..., -1:]
        arr[..., :-1] = np.divide(arr[..., :-1], alpha, out=np.zeros_like(arr[..., :-1]), where=alpha > 0).clip(0, 1)
    return arr


# --- colour management -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def srgb_icc() -> bytes:
    """The sRGB profile embedded in every output."""
    return srgb_profile().tobytes()


@lru_cache(maxsize=16)
def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


@lru_cache(maxsize=16)
def _is_srgb(icc: bytes) -> bool:
    """True when converting from ``icc`` to sRGB changes no colour by more than one 8-bit step.

    Such a profile (sRGB IEC61966-2.1, our own output's) needs no conversion, and skipping it
    keeps 16-bit samples at full precision. Judged by what the profile does, not its name.
    """
    levels = np.arange(0, 256, 51, dtype=np.uint8)  # 6 per channel: 216 colours
    probe = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(36, 6, 3)
    try:
        out = ImageCms.profileToProfile(Image.fromarray(probe, "RGB"), _profile(icc), srgb_profile(), outputMode="RGB")
    except (OSError, ValueError, ImageCms.PyCMSError):
        return False  # not an RGB profile, or a broken one: _cms decides
    return int(np.abs(np.asarray(out, dtype=int) - probe).max()) <= 1


def _cms(im: Image.Image, icc: bytes, path: Path | None) -> Image.Image | None:
    """``im`` converted from the profile ``icc`` to sRGB (mode RGB); None, with a warning, if lcms refuses."""
    try:
        return ImageCms.profileToProfile(im, _profile(icc), srgb_profile(), outputMode="RGB")
    except (OSError, ValueError, ImageCms.PyCMSError) as err:
        warnings.warn(
            f"{path or 'image'}: ignoring its ICC profile ({err}); colours are taken as sRGB",
            StylistWarning,
            stacklevel=6,
        )
        return None


# Lookup-table nodes for 16-bit samples: 0, 5, ..., 255 (52 per axis, exact 8-bit values).
_LUT_NODES = np.arange(0, 256, 5, dtype=np.uint8)


def _icc_to_srgb_float(colour: np.ndarray, icc: bytes, path: Path | None) -> np.ndarray:
    """(H, W, 1 or 3) float samples -> sRGB (H, W, 3) through a table that lcms fills.

    Pillow's lcms binding converts 8-bit pixels only; interpolating in a table of converted
    nodes keeps 16-bit samples distinct and smooth (the nodes themselves are 8-bit accurate).
    """
    if colour.shape[-1] == 1:
        ramp = Image.fromarray(np.arange(256, dtype=np.uint8)[None], "L")
        table = _cms(ramp, icc, path)
        if table is None:
            return colour
        lut = np.asarray(table, dtype=np.float32)[0] / 255.0  # (256, 3)
        x = np.linspace(0.0, 1.0, 256)
        return np.stack([np.interp(colour[..., 0], x, lut[:, k]) for k in range(3)], -1).astype(np.float32)
    n = len(_LUT_NODES)
    r, g, b = np.meshgrid(_LUT_NODES, _LUT_NODES, _LUT_NODES, indexing="ij")
    cube = Image.fromarray(np.stack([r, g, b], -1).reshape(n * n, n, 3), "RGB")
    table = _cms(cube, icc, path)
    if table is None:
        return colour
    lut = torch.from_numpy(np.asarray(table, dtype=np.float32).reshape(n, n, n, 3) / 255.0)
    # grid_sample: the table is (1, 3, D=r, H=g, W=b) and the grid's last axis is (x=b, y=g, z=r).
    grid = torch.from_numpy(colour * 2.0 - 1.0).flip(-1)[None, None]
    out = F.grid_sample(lut.permute(3, 0, 1, 2)[None], grid, mode="bilinear", align_corners=True)
    return out[0, :, 0].permute(1, 2, 0).clamp(0, 1).numpy()


# --- tensors ---------------------------------------------------------------------------------------------


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(t: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> PIL RGB (values clamped, rounded);
    RGBA when ``alpha`` (1, 1, H, W) or (1, H, W) is given."""
    arr = _hwc(t, 3, 255.0).astype(np.uint8)
    if alpha is None:
        return Image.fromarray(arr, "RGB")
    return Image.fromarray(np.concatenate([arr, _hwc(alpha, 1, 255.0).astype(np.uint8)], -1), "RGBA")


def _hwc(t: torch.Tensor, channels: int, full: float) -> np.ndarray:
    """One image tensor -> rounded (H, W, C) samples in [0, full] (float64)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_pil takes one image; got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != channels:
        raise ValueError(f"expected a tensor ({channels}, H, W); got shape {tuple(t.shape)}")
    return (t.detach().double().clamp(0, 1) * full).round().permute(1, 2, 0).cpu().numpy()


def fit_size(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(H, W) with the longer side ``long_side`` and the aspect ratio kept."""
    if h >= w:
        return long_side, max(1, round(w * long_side / h))
    return max(1, round(h * long_side / w)), long_side


def resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize (B, 3, H, W) to ``size``; antialiased when shrinking."""
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def resize_long_side(t: torch.Tensor, long_side: int) -> torch.Tensor:
    return resize(t, fit_size(t.shape[-2], t.shape[-1], long_side))


# --- sizes a network can take ------------------------------------------------------------------------------
# A network's layers need a minimum side: each 2x2 pooling halves it, and a reflection pad needs
# more pixels than it adds. One policy for every method (docs/reliability.md): a one-pass network
# pads the photo and crops the result back; a painting (only its statistics are used) is enlarged
# to the smallest size that works, with a warning; an image that cannot be handled either way
# (a result to measure, an optimised image) is refused in one line before any work.


def _describe(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]} px"


class ImageTooSmallError(ImageError, ConfigError):
    """An image, at the size the options give it, is smaller than a network's layers can take."""


def check_min_side(hw: tuple[int, int], need: int, what: str, hint: str = "") -> None:
    """ImageError (one line) when the shorter side of ``hw`` (H, W) is under ``need`` pixels.

    ``what`` names the image (its file, or its role); ``hint`` says what the user can change.
    """
    if min(hw) < need:
        tail = f"; {hint}" if hint else ""
        raise ImageTooSmallError(
            f"{what}: {_describe(hw)} is too small for the layers in use "
            f"(its shorter side needs at least {need} px){tail}"
        )


def fit_min_side(t: torch.Tensor, need: int, what: str = "style image", long_side: int | None = None) -> torch.Tensor:
    """``t`` (B, C, H, W) resized to ``long_side`` (None: kept), aspect kept, but never with its shorter
    side under ``need``: a painting too thin for that is enlarged from the original to the smallest
    size that works instead, with a StylistWarning naming ``what``. For paintings, whose statistics
    alone are used: an enlarged painting has the same colours and strokes, only bigger."""
    h, w = t.shape[-2:]
    size = (h, w) if long_side is None else fit_size(h, w, long_side)
    if min(size) >= need:
        return resize(t, size)
    size = (need, max(need, round(w * need / h))) if h <= w else (max(need, round(h * need / w)), need)
    warnings.warn(
        f"{what}: {_describe((h, w))} is too thin for the network; used at {_describe(size)}",
        StylistWarning,
        stacklevel=2,
    )
    return resize(t, size)


def pad_to_fit(x: torch.Tensor, min_side: int = 1, multiple: int = 1) -> torch.Tensor:
    """``x`` (B, C, H, W) padded at the bottom and right so that each side is at least ``min_side``
    and a multiple of ``multiple``; :func:`crop_to` takes the result back to (H, W).

    Reflection, so that the network sees no hard edge; torch reflects at most side - 1 pixels at
    once, so a short side is reflected again until it is long enough (a 1-px side is repeated).
    """
    h, w = x.shape[-2:]
    want_h, want_w = _fit_side(h, min_side, multiple), _fit_side(w, min_side, multiple)
    while x.shape[-2] < want_h or x.shape[-1] < want_w:
        ch, cw = x.shape[-2:]
        ph, pw = min(want_h - ch, ch - 1), min(want_w - cw, cw - 1)
        if ph <= 0 and ch < want_h or pw <= 0 and cw < want_w:  # a 1-px side: repeat it once
            x = F.pad(x, (0, int(cw < want_w), 0, int(ch < want_h)), mode="replicate")
            continue
        x = F.pad(x, (0, max(pw, 0), 0, max(ph, 0)), mode="reflect")
    return x


def _fit_side(side: int, min_side: int, multiple: int) -> int:
    side = max(side, min_side)
    return side + (-side) % multiple


def crop_to(y: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """The top-left (H, W) of ``y``: undoes :func:`pad_to_fit`."""
    return y[..., : hw[0], : hw[1]]


# --- writing ---------------------------------------------------------------------------------------------


def output_format(path: str | os.PathLike, depth: int = 8) -> str:
    """The Pillow format name for ``path``; ImageError for an unknown suffix or a depth it cannot hold."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"{path}: unknown output format '{path.suffix}'; use one of {', '.join(sorted(WRITE_FORMATS))}"
        )
    if depth not in (8, 16):
        raise ImageError(f"{path}: --depth must be 8 or 16 bits per channel; got {depth}")
    if depth == 16 and fmt not in DEPTH16_FORMATS:
        raise ImageError(f"{path}: {fmt} cannot store 16 bits per channel; write a .png or .tif file, or use --depth 8")
    return fmt


def alpha_note(path: str | os.PathLike) -> str | None:
    """The warning for writing a transparent result to ``path``, or None if its format keeps alpha."""
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None or fmt in ALPHA_FORMATS:
        return None
    return (
        f"{fmt} cannot store transparency: the content's alpha channel is flattened onto white "
        "(write .png, .webp or .tif to keep it)"
    )


def same_file(a: str | os.PathLike, b: str | os.PathLike | None) -> bool:
    """Whether ``a`` and ``b`` name one file (through links, ``..`` and relative paths)."""
    if b is None:
        return False
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_path(out: str | os.PathLike, inputs: list, overwrite: bool, depth: int = 8) -> Path:
    """Refuse an output that would replace an input, or an existing file without ``overwrite``."""
    out = Path(out)
    output_format(out, depth)
    for src in inputs:
        if isinstance(src, (str, os.PathLike)) and same_file(out, src):
            raise ImageError(f"{out}: the output would replace an input image; choose another output path")
    return check_output_target(out, overwrite)


def check_output_target(out: Path, overwrite: bool, example: str = "result.png") -> Path:
    """The output policy every command shares, ImageError (one line) for an output file name that is a
    folder, exists without ``overwrite``, or lies in a folder that does not exist (a missing folder is
    never created)."""
    if out.is_dir():
        raise ImageError(f"{out}: is a directory; give an output file name such as {example}")
    if out.exists() and not overwrite:
        raise ImageError(f"{out}: already exists; pass --overwrite to replace it or choose another name")
    if not out.parent.exists():
        raise ImageError(f"{out}: folder {out.parent} does not exist; create it first")
    return out


def save_image(
    img: Image.Image | torch.Tensor | Picture,
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    depth: int = 8,
    alpha: torch.Tensor | None = None,
    **params,
) -> Path:
    """Write atomically (a temporary file in the same folder, then ``os.replace``), with an sRGB profile.

    ``alpha`` (1, 1, H, W) is re-attached to a tensor; a PIL image brings its own. Formats
    without alpha (JPEG, BMP) get the image flattened onto white, with a warning.
    ``depth=16`` writes 16 bits per channel (PNG and TIFF only). ``params`` go to Pillow's
    ``save``; at 16 bits ``pnginfo`` (its text chunks) and ``description`` are kept too.
    """
    path = Path(path)
    fmt = output_format(path, depth)
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: already exists; pass --overwrite to replace it or choose another name")
    picture = (
        img if isinstance(img, Picture) else Picture(img, alpha) if isinstance(img, torch.Tensor) else read_picture(img)
    )
    rgb, alpha = picture.rgb, picture.alpha
    if alpha is not None and fmt not in ALPHA_FORMATS:
        warnings.warn(cast(str, alpha_note(path)), StylistWarning, stacklevel=2)  # fmt lacks alpha: a note
        rgb, alpha = _over_white(rgb, alpha), None
    if depth == 16:
        samples = (
            _hwc(rgb, 3, 65535.0)
            if alpha is None
            else np.concatenate([_hwc(rgb, 3, 65535.0), _hwc(alpha, 1, 65535.0)], -1)
        )
        write_atomic(path, lambda tmp: _write_16bit(tmp, fmt, samples.astype(np.uint16), srgb_icc(), params))
        return path
    if fmt == "JPEG":
        params.setdefault("quality", 95)
    if fmt in ICC_FORMATS:
        params.setdefault("icc_profile", srgb_icc())
    image = to_pil(rgb, alpha)
    write_atomic(path, lambda tmp: image.save(tmp, format=fmt, **params))
    return path


def _write_16bit(target: str, fmt: str, samples: np.ndarray, icc: bytes, params: dict | None = None) -> None:
    params = params or {}
    if fmt == "PNG":
        info = params.get("pnginfo")  # a PngInfo: its text chunks, as Pillow would have written them
        with open(target, "wb") as f:
            f.write(png16_bytes(samples, icc, [(cid, body) for cid, body, *_ in (info.chunks if info else [])]))
        return
    import tifffile

    extras = [tifffile.EXTRASAMPLE.UNASSALPHA] if samples.shape[-1] == 4 else None
    tifffile.imwrite(
        target,
        samples,
        photometric="rgb",
        extrasamples=extras,
        compression="zlib",
        iccprofile=icc,
        metadata=None,
        description=params.get("description"),
    )


def png16_bytes(samples: np.ndarray, icc: bytes | None = None, chunks: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 samples (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), with ``icc``
    and the ancillary ``chunks`` ((type, body), such as text) embedded."""
    import png  # pypng

    h, w, c = samples.shape
    writer = png.Writer(w, h, greyscale=c < 3, alpha=c in (2, 4), bitdepth=16)
    rows = samples.astype(">u2").reshape(h, w * c).view(np.uint8)  # PNG stores 16-bit samples big-endian
    buf = io.BytesIO()
    writer.write_packed(buf, (row.tobytes() for row in rows))
    data = buf.getvalue()
    extra = list(chunks)
    if icc:
        # pypng writes no iCCP chunk: put one right after IHDR (8-byte signature + 25-byte IHDR chunk).
        name = b"sRGB" if _is_srgb(icc) else b"ICC profile"
        extra.insert(0, (b"iCCP", name + b"\0\0" + zlib.compress(icc)))  # name, NUL, compression method 0 (zlib)
    packed = b"".join(
        struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body)) for cid, body in extra
    )
    return data[:33] + packed + data[33:]


# --- atomic writes -------------------------------------------------------------------------------------
# Every file Stylist writes (images, checkpoints, models, decoders, CSV, plots, study cells, ONNX)
# goes through write_atomic: the bytes go to a temporary file beside the target, which is renamed
# over it only when complete. A write that fails (disk full, quota, no permission, a file-size
# limit) becomes one WriteError line naming the file and the reason, and leaves no temporary file.
# A process killed mid-write leaves its temporary file, named ".NAME.XXXXXXXX.tmp"; the next write
# of NAME removes such files once they are older than STALE_TEMP_SECONDS (a live writer of the
# same name would be younger).

TEMP_SUFFIX = ".tmp"
STALE_TEMP_SECONDS = 15 * 60
# Exceptions that are bugs in Stylist, not failed writes: they keep their traceback.
_BUGS = (TypeError, AttributeError, NameError, KeyError, IndexError, AssertionError, NotImplementedError)


class WriteError(ImageError):
    """An output file cannot be written (disk full, quota, permission, file-size limit ...)."""


def temp_name_pattern(name: str) -> re.Pattern:
    """The names of temporary files that writes of ``name`` make (mkstemp's 8 random characters),
    and of those that older Stylist versions made for images (``.STEM.XXXXXXXX.SUFFIX.tmp``)."""
    stem, suffix = os.path.splitext(name)
    return re.compile(
        rf"^\.(?:{re.escape(name)}\.[A-Za-z0-9_]{{8}}|{re.escape(stem)}\.[A-Za-z0-9_]{{8}}{re.escape(suffix)})"
        rf"{re.escape(TEMP_SUFFIX)}$"
    )


def remove_stale_temps(path: str | os.PathLike, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the temporary files of ``path`` left by killed writers (older than ``older_than`` s)."""
    path = Path(path)
    pattern, now = temp_name_pattern(path.name), time.time()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed  # an unreadable folder: the write itself will say why
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass  # gone already, or not ours to remove: harmless either way
    return removed


def write_failure_reason(err: BaseException, folder: Path | None = None) -> str:
    """The cause of a failed write in a few words ("No space left on device", "File too large" ...).

    OSError carries it; torch (RuntimeError "file write failed") and safetensors (SafetensorError
    "IoError(Os { code: 28, ... message: "No space left on device" })") bury or lose it, so the
    errno text is dug out of the message, and a full disk is recognised from the free space.
    """
    if isinstance(err, OSError) and (err.strerror or err.errno):
        return err.strerror or os.strerror(cast(int, err.errno))  # no strerror: errno is set
    text = str(err)
    found = re.search(r"(?:os error|code:|errno) ?(\d+)", text, re.IGNORECASE)
    if found:
        return os.strerror(int(found.group(1)))
    cause = err.__cause__ or err.__context__
    if isinstance(cause, OSError) and cause is not err:
        return write_failure_reason(cause)
    try:
        if folder is not None and shutil.disk_usage(folder).free < 1 << 20:
            return os.strerror(errno.ENOSPC)
    except OSError:
        pass
    return first_line(err)


def write_atomic(path: str | os.PathLike, write: Callable[[str], None], what: str = "") -> Path:
    """Run ``write(temporary path)`` in ``path``'s folder, then rename the file to ``path``.

    Any failure of the write (OSError, torch's RuntimeError, safetensors' SafetensorError, Pillow's
    errors) raises WriteError: "PATH: cannot write [WHAT] (REASON)"; the temporary file is removed
    and an existing ``path`` is left as it was. ``what`` ("the checkpoint", "the model") goes in
    the message. KeyboardInterrupt passes through, the temporary file removed all the same.
    """
    path = Path(path)
    remove_stale_temps(path)
    tmp = None
    try:  # creating the temporary file fails too for a missing or read-only folder
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        os.close(fd)
        _plain_permissions(tmp)
        write(tmp)
        _plain_permissions(tmp)  # a writer that replaces the file (safetensors does) brings back 0600
        os.replace(tmp, path)
        tmp = None
    except _BUGS:
        raise
    except Exception as err:  # noqa: BLE001 - every library reports a failed write its own way
        label = f" {what}" if what else ""
        raise WriteError(f"{path}: cannot write{label} ({write_failure_reason(err, path.parent)})") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def write_atomic_bytes(path: str | os.PathLike, data: bytes | memoryview, what: str = "") -> Path:
    """Write ``data`` (a CSV, JSON, PNG figure ...) to ``path`` atomically; WriteError if it fails."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a full disk may only say so when the data reach it

    return write_atomic(path, write, what)


def _plain_permissions(path: str) -> None:
    """mkstemp makes 0600 files; a result should get the usual 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
