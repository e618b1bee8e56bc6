"""Manifests: what it takes to make a result again, stored with the result.

A manifest is a JSON object: every option of the run, the weights (source and sha256), the
versions of Stylist, PyTorch, NumPy and Pillow, the device and precision, the seed, the time
taken, the final losses, and the input files (content, styles, masks, an --init image), each
with its path and sha256. It lives inside the result where the format has room for text:

| format | where |
|---|---|
| PNG (8 and 16 bit) | a compressed iTXt chunk with the keyword ``stylist`` |
| TIFF (8 and 16 bit) | the ImageDescription tag |
| JPEG, WebP | the EXIF UserComment tag (ASCII) |
| BMP | nowhere: use the JSON sidecar |

and, on request, in a sidecar ``OUT.json``. Everything here is pure (dicts in, dicts
out) apart from reading files; writing is the caller's business.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import StylistError
from .optimize import TransferConfig, TransferResult
from .weights import SOURCES, sha256_file

KEY = "stylist"  # PNG text keyword
FORMAT = "stylist-manifest"
VERSION = 1
EXIF_IFD, USER_COMMENT = 0x8769, 0x9286
ASCII_PREFIX = b"ASCII\0\0\0"  # UserComment's character-code header
# Distributions whose versions decide the pixels, and the names they go by in a manifest.
# Distribution names; Stylist's own version is the one imported (its PyPI name is stylist-nst, and an
# unrelated "stylist" distribution may be installed beside it).
PACKAGES = {"torch": "torch", "numpy": "numpy", "pillow": "pillow"}


def sidecar_path(output: str | os.PathLike) -> Path:
    """Where the JSON sidecar of ``output`` goes: ``OUT.json`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def file_record(src: object) -> dict:
    """{"path", "sha256"} for a file; path and sha256 None for an in-memory image (tensor, PIL)."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        return {"path": str(path.resolve()), "sha256": sha256_file(path)}
    return {"path": None, "sha256": None}


def input_records(content: object, styles: list, masks: list | None = None, init: str | None = None) -> dict:
    """The input files of a run; ``init`` is recorded when it names an image file."""
    return {
        "content": file_record(content),
        "styles": [file_record(s) for s in styles],
        "masks": [file_record(m) for m in masks or []],
        "init": file_record(init) if init is not None and Path(init).is_file() else None,
    }


def weights_record(source: str, sha256: str) -> dict:
    """The weights: a source name from stylist.weights.SOURCES, or a file (its absolute path kept too)."""
    record = {"source": source, "sha256": sha256}
    if source not in SOURCES and Path(source).is_file():
        record["path"] = str(Path(source).resolve())
    return record


def versions() -> dict[str, str]:
    from . import __version__

    found = {"python": platform.python_version(), "stylist": __version__}
    for name, dist in PACKAGES.items():
        try:
            found[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            module = sys.modules.get(name)
            found[name] = getattr(module, "__version__", "unknown")
    return found


def build_manifest(
    cfg: TransferConfig, result: TransferResult, inputs: dict, output: dict | None = None, **extra: object
) -> dict:
    """The manifest of ``result``: ``inputs`` from :func:`input_records`, ``output`` what the
    writer chose (depth, ...), ``extra`` anything else worth keeping (the preset's name ...)."""
    last = result.history[-1] if result.history else {}
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": "transfer",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": asdict(cfg),
        "inputs": inputs,
        "output": output or {},
        "weights": weights_record(cfg.weights, result.weights_sha256),
        "versions": versions(),
        "device": result.device,
        "precision": result.precision,
        "seed": cfg.seed,
        "elapsed": round(result.elapsed, 3),
        "iterations": len(result.history),
        "stopped": result.stopped,
        "losses": {k: last[k] for k in ("content", "style", "tv", "total") if k in last},
        **extra,
    }


def one_pass_manifest(
    kind: str, config: dict, inputs: dict, device: str, elapsed: float, output: dict | None = None, **extra: object
) -> dict:
    """The manifest of a one-pass result (``kind``: feedforward or arbitrary), in the layout of
    :func:`build_manifest`: ``config`` holds the options the pass ran with."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "inputs": inputs,
        "output": output or {},
        "versions": versions(),
        "device": device,
        "elapsed": round(elapsed, 3),
        **extra,
    }


def to_json(manifest: dict, indent: int | None = None) -> str:
    # ASCII only: TIFF's ImageDescription and EXIF's ASCII UserComment hold nothing else.
    return json.dumps(manifest, indent=indent, ensure_ascii=True, allow_nan=False)


def embed_params(fmt: str, manifest: dict) -> dict:
    """Save parameters for :func:`stylist.image.save_image` that put ``manifest`` into a ``fmt`` file ({} for BMP)."""
    text = to_json(manifest)
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(KEY, text, zip=True)
        return {"pnginfo": info}
    if fmt == "TIFF":
        return {"description": text}
    if fmt in ("JPEG", "WEBP"):
        exif = Image.Exif()
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = ASCII_PREFIX + text.encode("ascii")
        return {"exif": exif.tobytes()}
    return {}


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest in a result file (PNG, TIFF, JPEG, WebP) or a JSON sidecar; StylistError (one line) if none."""
    path = Path(path)
    if not path.is_file():
        raise StylistError(f"{path}: manifest file not found" if not path.exists() else f"{path}: is not a file")
    text = path.read_text(encoding="utf-8", errors="replace") if path.suffix.lower() == ".json" else _embedded(path)
    if text is None:
        raise StylistError(
            f"{path}: holds no Stylist manifest "
            "(not made by Stylist, or a format without room for one: use its .json sidecar)"
        )
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        raise StylistError(f"{path}: damaged manifest ({err.msg} at character {err.pos})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StylistError(f"{path}: not a Stylist manifest")
    if manifest.get("version") != VERSION or not isinstance(manifest.get("config"), dict):
        raise StylistError(
            f"{path}: manifest version {manifest.get('version')} is not one this Stylist reads ({VERSION})"
        )
    return manifest


def _embedded(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            # PIL opens these as PngImageFile (text) and TiffImageFile (tag_v2); its stubs say ImageFile.
            if im.format == "PNG":
                return im.text.get(KEY)  # type: ignore[attr-defined]
            if im.format == "TIFF":
                value = im.tag_v2.get(270)  # type: ignore[attr-defined]
                return value if isinstance(value, str) else None
            comment = im.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise StylistError(f"{path}: cannot read it for a manifest ({err})") from None
    if isinstance(comment, bytes) and comment.startswith(ASCII_PREFIX):
        return comment[len(ASCII_PREFIX) :].decode("ascii", errors="replace")
    return None


def checked_file(record: dict | None, what: str) -> Path:
    """The recorded input file, refused (StylistError) when missing or changed since the run.

    Refused rather than warned about: a rerun from a manifest is asked for to get the same
    picture, and a changed input would give another one that passes for it. Giving the file
    on the command line uses it as it is now.
    """
    record = record or {}
    path = record.get("path")
    if not path:
        raise StylistError(
            f"the manifest records no file for the {what} (it was an image passed from Python): "
            "give it on the command line"
        )
    p = Path(path)
    if not p.is_file():
        raise StylistError(
            f"{p}: {what} recorded in the manifest is missing; give the {what} on the command line to use another file"
        )
    digest = sha256_file(p)
    if digest != record.get("sha256"):
        raise StylistError(
            f"{p}: {what} has changed since the recorded run "
            f"(sha256 {digest[:12]}..., recorded {str(record.get('sha256'))[:12]}...); "
            f"give it on the command line to use it as it is now"
        )
    return p


def check_weights(manifest: dict) -> None:
    """Refuse (StylistError) a weights file that changed since the run, as :func:`checked_file` does an input."""
    weights = manifest.get("weights") or {}
    if weights.get("path"):
        checked_file(weights, "weights file")


def differences(manifest: dict, current_versions: dict[str, str] | None = None) -> list[str]:
    """Why a rerun of ``manifest`` here may give other pixels (package versions, weights), one line each."""
    now = current_versions or versions()
    then = manifest.get("versions", {})
    lines = [
        f"the run was made with {name} {then[name]}, this is {name} {now.get(name)}: pixels may differ slightly"
        for name in PACKAGES
        if name in then and then[name] != now.get(name)
    ]
    weights = manifest.get("weights") or {}
    source = SOURCES.get(weights.get("source", ""))
    if source is not None and weights.get("sha256") and not str(weights["sha256"]).startswith(source.sha256):
        lines.append(
            f"the run used other {source.name} weights "
            f"(sha256 {str(weights['sha256'])[:12]}..., this Stylist's: {source.sha256[:12]}...)"
        )
    return lines
