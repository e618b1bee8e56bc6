"""Feed-forward networks as ONNX files, and running them with onnxruntime.

The exported graph is the network's core, which needs sides divisible by 4; batch, height
and width are dynamic. The reflection padding to a multiple of 4 and the crop back happen
in NumPy around the ONNX session (:class:`OnnxStyleModel`), so inference makes no PyTorch
call. Export needs ``onnx`` and ``onnxscript``, inference ``onnxruntime``:
``pip install "stylist-nst[onnx]"``, or ``pip install -e ".[onnx]"`` in a clone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from .errors import StylistError, first_line
from .feedforward import MIN_SIDE, MULTIPLE, StyleModel, TransformerNet
from .image import pad_to_fit, write_atomic

if TYPE_CHECKING:
    import onnx  # optional at run time: imported where used

ONNX_FORMAT = "stylist-feedforward-onnx"


def need(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise StylistError(
            f"this needs {', '.join(missing)}, which is not installed: "
            'pip install "stylist-nst[onnx]" (from a clone: pip install -e ".[onnx]")'
        )


class _Core(torch.nn.Module):
    def __init__(self, net: TransformerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.core(image)


def export_onnx(
    model: StyleModel, path: str | os.PathLike, check_sizes: tuple[tuple[int, int], ...] = ((256, 256), (180, 320))
) -> float:
    """Write ``model`` as ONNX to ``path`` (atomically); return the largest absolute difference
    between onnxruntime and PyTorch (float32, CPU) over test images of ``check_sizes``."""
    need("onnx", "onnxscript", "onnxruntime")
    path = Path(path)
    net = TransformerNet(model.net.norm, model.net.width)
    net.load_state_dict({k: v.float().cpu() for k, v in model.net.state_dict().items()})
    net.eval()
    h4, w4 = torch.export.Dim("h4", min=2, max=4096), torch.export.Dim("w4", min=2, max=4096)
    shapes = {"image": {0: torch.export.Dim("batch", min=1, max=256), 2: MULTIPLE * h4, 3: MULTIPLE * w4}}
    example = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))

    def write(tmp: str) -> None:
        with _quiet():
            program = torch.onnx.export(
                _Core(net),
                (example,),
                dynamic_shapes=shapes,
                input_names=["image"],
                output_names=["stylised"],
                dynamo=True,
                verbose=False,
            )
        import onnx

        # dynamo=True always gives a program (None is only for the old exporter writing to a file)
        proto = cast("torch.onnx.ONNXProgram", program).model_proto  # a new protobuf at each access: keep one
        _add_metadata(proto, model.metadata)
        onnx.save(proto, tmp)

    write_atomic(path, write)
    onnx_model = OnnxStyleModel(path)
    worst = 0.0
    for i, (h, w) in enumerate(check_sizes):
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i + 1))
        with torch.no_grad():
            ref = net(x).numpy()
        worst = max(worst, float(np.abs(onnx_model.run(x.numpy()) - ref).max()))
    return worst


@contextlib.contextmanager
def _quiet():
    """The exporter reports its stages on stdout, and warnings through logging: the core stays silent."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _add_metadata(proto: onnx.ModelProto, metadata: dict[str, str]) -> None:
    keep = {k: v for k, v in metadata.items() if k != "path"}
    keep["format"] = ONNX_FORMAT
    for key, value in keep.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


class OnnxStyleModel:
    """An exported network run by onnxruntime: ``run`` takes and returns NumPy (B, 3, H, W) in [0, 1]."""

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        need("onnxruntime")
        import onnxruntime as ort

        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers or ["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own kinds for a foreign or damaged file
            raise StylistError(f"{self.path}: not an ONNX model onnxruntime can load ({first_line(err)})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get("format") != ONNX_FORMAT:
            raise StylistError(f"{self.path}: not an ONNX file exported by stylist export")
        self.input = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return Path(self.metadata.get("style_name", self.path.stem)).stem

    def run(self, images: np.ndarray) -> np.ndarray:
        h, w = images.shape[-2:]
        x = pad_to_fit(torch.from_numpy(images.astype(np.float32, copy=False)), MIN_SIDE, MULTIPLE).numpy()
        return self.session.run(None, {self.input: np.ascontiguousarray(x)})[0][..., :h, :w]

    def stylize(self, images: torch.Tensor, preserve_color: str = "none") -> torch.Tensor:
        """The same interface as :meth:`StyleModel.stylize` (tensors at the edges only)."""
        from .color import luminance, with_chroma

        y = torch.from_numpy(self.run(images.numpy()))
        if preserve_color == "luminance":
            y = with_chroma(luminance(y), images)
        return y.clamp(0, 1)


def model_info(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a model file (.safetensors or .onnx) as strings, JSON fields pretty-printed."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        meta = OnnxStyleModel(path).metadata
    else:
        from .feedforward import read_metadata

        meta = read_metadata(path)
    out = {}
    for key, value in meta.items():
        try:
            parsed = json.loads(value)
            out[key] = json.dumps(parsed) if isinstance(parsed, (dict, list)) else value
        except (json.JSONDecodeError, TypeError):
            out[key] = value
    return out
