"""The only place where pixels become tensors and back.

Convention everywhere else: RGB float32 in [0, 1], shaped (B, 3, H, W).
Reading honours EXIF orientation and converts grey, palette, CMYK and alpha images to
RGB; writing is atomic (temporary file in the same folder, then rename) and never
replaces an existing file unless asked.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

ImageLike = Union[str, os.PathLike, Image.Image, torch.Tensor]

# Output formats by suffix (Pillow format names).
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}


def open_image(src: ImageLike, what: str = "image") -> Image.Image:
    """Read ``src`` (a path, PIL image or tensor) as an upright RGB PIL image."""
    if isinstance(src, torch.Tensor):
        return to_pil(src)
    if isinstance(src, Image.Image):
        return _to_rgb(ImageOps.exif_transpose(src))
    path = Path(src)
    if not path.exists():
        raise ImageError(f"{path}: {what} file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory; give an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file; give a JPEG, PNG, WebP, TIFF or BMP image")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Stylist can read; give a JPEG, PNG, WebP, TIFF or BMP file") from None
    except (OSError, SyntaxError, ValueError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImageError(f"{path}: damaged or truncated image ({msg}); re-export or choose another file") from None
    except Image.DecompressionBombError as err:  # pragma: no cover - needs a huge file
        raise ImageError(f"{path}: {err}") from None


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent pixels become white rather than whatever colour they stored.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        # I;16 is 16-bit whatever its values (a dark one must stay dark); plain I may hold 8-bit values.
        full = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = (arr / full * 255.0).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    return im.convert("RGB")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(t: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> PIL RGB (values clamped, rounded)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_pil takes one image; got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor (3, H, W); got shape {tuple(t.shape)}")
    arr = (t.detach().float().clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def load_tensor(src: ImageLike, what: str = "image") -> torch.Tensor:
    """Any accepted input -> (1, 3, H, W) float32 in [0, 1]."""
    if isinstance(src, torch.Tensor):
        t = src.detach().float()
        if t.dim() == 3:
            t = t.unsqueeze(0)
        if t.dim() != 4 or t.shape[:2] != (1, 3):
            raise ImageError(f"{what} tensor must be (3, H, W) or (1, 3, H, W); got {tuple(src.shape)}")
        return t.clamp(0, 1)
    return to_tensor(open_image(src, what))


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


def check_output_path(out: str | os.PathLike, inputs: list, overwrite: bool) -> Path:
    """Refuse an output that would replace an input, or an existing file without ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() not in WRITE_FORMATS:
        raise ImageError(f"{out}: unknown output format '{out.suffix}'; use one of {', '.join(sorted(WRITE_FORMATS))}")
    for src in inputs:
        if isinstance(src, (str, os.PathLike)) and Path(src).exists() and out.exists() and os.path.samefile(src, out):
            raise ImageError(f"{out}: the output would replace an input image; choose another output path")
        if isinstance(src, (str, os.PathLike)) and Path(src).resolve() == out.resolve():
            raise ImageError(f"{out}: the output would replace an input image; choose another output path")
    if out.is_dir():
        raise ImageError(f"{out}: is a directory; give an output file name such as result.png")
    if out.exists() and not overwrite:
        raise ImageError(f"{out}: already exists; pass --overwrite to replace it or choose another name")
    if not out.parent.exists():
        raise ImageError(f"{out}: folder {out.parent} does not exist")
    return out


def save_image(img: Image.Image | torch.Tensor, path: str | os.PathLike, overwrite: bool = False, **params) -> Path:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    if isinstance(img, torch.Tensor):
        img = to_pil(img)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown output format '{path.suffix}'; use one of {', '.join(sorted(WRITE_FORMATS))}")
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: already exists; pass --overwrite to replace it or choose another name")
    if fmt == "JPEG":
        params.setdefault("quality", 95)
    tmp = None
    try:  # creating the temporary file fails too for a missing or read-only folder
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".tmp")
        os.close(fd)
        _plain_permissions(tmp)
        img.save(tmp, format=fmt, **params)
        os.replace(tmp, path)
    except OSError as err:
        raise ImageError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_atomic_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write any small file (CSV, JSON) atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    _plain_permissions(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _plain_permissions(path: str) -> None:
    """mkstemp makes 0600 files; a result should get the usual 0666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
