"""Device and precision choice, for every method (the one place that knows the hardware).

``auto`` picks a CUDA GPU, then Apple's MPS (Apple silicon), then the CPU. Precision ``auto`` is
bfloat16 where the hardware is fast at it (CUDA GPUs that have it; CPUs with AMX or AVX512-BF16)
and float32 elsewhere. Training has its own auto rule (:func:`train_dtype`): mixed precision on
CUDA only, with fp16 (and a gradient scaler, see :func:`stylist.training.fit`) on GPUs without bf16.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

# Inference and optimisation precisions, and training's (training adds fp16, which needs a GradScaler).
PRECISIONS = ("auto", "fp32", "bf16")
TRAIN_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def mps_available() -> bool:
    """True on Apple silicon with a PyTorch built with MPS."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """``auto`` (cuda, then mps, then cpu) or an explicit device name -> a torch device.

    ConfigError (one line) for a name torch does not know or a device this machine lacks.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for, but no CUDA GPU is available here: use --device cpu or auto")
    if device.type == "mps" and not mps_available():
        raise ConfigError(f"device '{name}' asked for, but MPS is not available here: use --device cpu or auto")
    return device


def cpu_has_fast_bf16() -> bool:
    """True on CPUs whose bfloat16 convolutions beat float32 (AMX tiles or AVX512-BF16).

    oneDNN runs bf16 convolutions on AMX tiles (recent Xeons) about 4x faster than fp32, and
    with AVX512-BF16 (recent EPYCs) about 1.6x faster; elsewhere bf16 is emulated and slower.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(probe and probe()) for probe in probes)


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where it is fast on ``device``, else ``fp32``; other names unchanged."""
    if name != "auto":
        return name
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def working_dtype(precision: str) -> torch.dtype:
    """The dtype a network is cast to for a resolved inference precision (``bf16`` or ``fp32``)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def train_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for mixed-precision training, or None for float32 throughout.

    ``auto`` is bf16 on CUDA GPUs that have it (fp16 on older ones) and float32 elsewhere:
    training on a CPU is slow either way and bf16 there is emulated on many CPUs.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def dtype_name(dtype: torch.dtype | None) -> str:
    """fp32, bf16 or fp16 for an autocast dtype from :func:`train_dtype`."""
    return {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def memory_format(device: torch.device) -> torch.memory_format:
    """NHWC on CUDA (cuDNN's fastest layout for bf16/fp16 convolutions); CPUs keep the default layout."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format
