"""Resumable runs: a run stopped at any step carries on from its checkpoint to the same end.

The core tests stop a two-scale run (32 px for 8 iterations, then 64 px for 4) inside the
first scale, at its end and inside the second, and compare the resumed result with an
unbroken run pixel for pixel. The command tests send the process a real SIGTERM from
inside the run, which the command turns into a stop after the iteration under way.
"""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

import stylist.cli as cli
from stylist.checkpoint import load_checkpoint, save_checkpoint
from stylist.errors import ConfigError, StylistError
from stylist.films import FPS, HOLD_LAST_MS
from stylist.image import load_tensor, resize_long_side, save_image
from stylist.manifest import read_manifest
from stylist.optimize import Interrupted, TransferConfig, stylize

# Two scales (32 px: 8 iterations, 64 px: 4), no early stop, so every run has 12 steps.
CFG = TransferConfig(size=64, iterations=12, min_level_size=32, early_stop_patience=0, precision="fp32")


@pytest.fixture(scope="module")
def unbroken(content64, style64):
    return stylize(content64, style64, CFG)


def stop_at(step: int):
    def callback(p):
        if p.step == step:
            raise KeyboardInterrupt  # what Ctrl-C does between iterations

    return callback


def interrupted_state(
    content, style, step: int, tmp_path: Path, cfg: TransferConfig = CFG, **options
) -> tuple[dict, float]:
    """Run until ``step``, keep the checkpoint in a file and read it back: (state, loss at the stop)."""
    with pytest.raises(Interrupted) as stop:
        stylize(content, style, cfg, stop_at(step))
    result = stop.value.result
    assert len(result.history) == step
    save_checkpoint(tmp_path / "run.ckpt", {"run": result.checkpoint(**options)})
    return load_checkpoint(tmp_path / "run.ckpt")["run"], result.history[-1]["total"]


@pytest.mark.parametrize("step", [3, 8, 10])  # inside the first scale, at its end, inside the second
def test_a_resumed_run_ends_where_an_unbroken_one_does(content64, style64, unbroken, tmp_path, step):
    state, loss_at_stop = interrupted_state(content64, style64, step, tmp_path)
    resumed = stylize(content64, style64, CFG, resume=state)
    assert [r["step"] for r in resumed.history] == list(range(1, 13))
    assert [r["level"] for r in resumed.history] == [r["level"] for r in unbroken.history] == [0] * 8 + [1] * 4
    assert resumed.history[-1]["total"] < loss_at_stop
    # The whole state (image, L-BFGS memory, loop bookkeeping) came back: the same pixels.
    assert torch.equal(resumed.image, unbroken.image)


def test_a_light_checkpoint_resumes_without_the_optimiser_memory(content64, style64, tmp_path):
    state, loss_at_stop = interrupted_state(content64, style64, 10, tmp_path, optimizer=False)
    assert state["optimizer"] is None
    resumed = stylize(content64, style64, CFG, resume=state)
    # Without its memory L-BFGS starts afresh and may climb for a step or two (at 32-64 px its first
    # steps are rough): the run ends, finite and far below where the run began.
    assert len(resumed.history) == 12 and math.isfinite(resumed.history[-1]["total"])
    assert resumed.history[-1]["total"] < 0.5 * state["history"][0]["total"], (loss_at_stop, resumed.history[-1])


def test_an_interrupt_inside_an_iteration_goes_back_to_its_start(content64, style64, tmp_path, monkeypatch):
    import stylist.optimize as optimize

    at_five, _ = interrupted_state(content64, style64, 5, tmp_path)
    real, calls = optimize._iterate, []

    def iterate_then_ctrl_c(optimizer, objective, x):
        calls.append(1)
        terms = real(optimizer, objective, x)  # the image and the optimiser's memory have moved on ...
        if len(calls) == 6:
            raise KeyboardInterrupt  # ... when Ctrl-C arrives, before the iteration is logged
        return terms

    monkeypatch.setattr(optimize, "_iterate", iterate_then_ctrl_c)
    with pytest.raises(Interrupted) as stop:
        stylize(content64, style64, CFG)
    monkeypatch.undo()
    state = stop.value.result.checkpoint()
    assert state["step"] == 5 and len(state["history"]) == 5 and state["optimizer"] is None
    assert torch.equal(state["image"], at_five["image"])
    resumed = stylize(content64, style64, CFG, resume=state)
    assert len(resumed.history) == 12 and resumed.history[-1]["total"] < at_five["history"][-1]["total"]


def test_more_iterations_carry_a_finished_run_on_at_the_final_scale(content64, style64, unbroken):
    more = stylize(
        content64, style64, TransferConfig(**{**CFG.to_dict(), "iterations": 16}), resume=unbroken.checkpoint()
    )
    assert [r["level"] for r in more.history] == [0] * 8 + [1] * 8
    assert more.history[-1]["total"] < unbroken.history[-1]["total"]


def test_a_resumed_run_must_keep_the_options_that_shaped_it(content64, style64, unbroken):
    with pytest.raises(ConfigError, match="--style-weight 30.0 but this run has 99.0"):
        stylize(
            content64, style64, TransferConfig(**{**CFG.to_dict(), "style_weight": 99.0}), resume=unbroken.checkpoint()
        )
    with pytest.raises(ConfigError, match="content photo"):
        stylize(resize_long_side(content64, 48)[..., :20, :], style64, CFG, resume=unbroken.checkpoint())


# --- the command ------------------------------------------------------------------------------------

ARGS = [
    "--size",
    "64",
    "--min-scale-size",
    "32",
    "--iterations",
    "12",
    "--early-stop-patience",
    "0",
    "--precision",
    "fp32",
    "-q",
]


@pytest.fixture
def folder(tmp_path: Path, content_path: Path, style_path: Path) -> Path:
    save_image(resize_long_side(load_tensor(content_path), 64), tmp_path / "photo.png")
    save_image(resize_long_side(load_tensor(style_path), 64), tmp_path / "painting.png")
    return tmp_path


def run(capsys, monkeypatch, *args: object, signal_at: int | None = None) -> tuple[int, list[str]]:
    """``stylist transfer ARGS`` in this process; ``signal_at``: SIGTERM to ourselves at that step."""
    real = cli.transfer.stylize

    def stylize_signalled(content, styles, cfg, callback, **kw):
        def on_step(p):
            if p.step == signal_at:
                os.kill(os.getpid(), signal.SIGTERM)  # handled by the command: stop after this iteration
            return callback(p)

        return real(content, styles, cfg, on_step, **kw)

    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(cli.transfer, "stylize", stylize_signalled)
        code = cli.main(["transfer", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_sigterm_leaves_a_checkpoint_and_resume_finishes_the_run(folder, capsys, monkeypatch):
    out = folder / "out.png"
    handler = signal.getsignal(signal.SIGTERM)
    film = folder / "film.gif"
    code, err = run(
        capsys,
        monkeypatch,
        folder / "photo.png",
        folder / "painting.png",
        "-o",
        out,
        *ARGS,
        "--animation",
        film,
        "--animation-every",
        "2",
        signal_at=5,
    )
    assert code == 128 + signal.SIGTERM and signal.getsignal(signal.SIGTERM) is handler
    # The film so far: steps 1, 2, 4 and the image at the stop. Pillow merges identical neighbours into
    # one longer frame (the blow-up guard can bring an image back), so count the time, not the frames.
    durations = [frame.info["duration"] for frame in ImageSequence.Iterator(Image.open(film))]
    assert sum(durations) == 3 * round(1000 / FPS) + HOLD_LAST_MS, durations
    assert "interrupted at iteration 5" in err[-1] and f"--resume {out}.ckpt" in err[-1]
    assert read_manifest(out)["stopped"] == "interrupted" and load_checkpoint(f"{out}.ckpt")["run"]["step"] == 5

    code, err = run(capsys, monkeypatch, "--resume", f"{out}.ckpt", "-o", out, "--overwrite")
    assert code == 0
    manifest = read_manifest(out)
    assert manifest["iterations"] == 12 and manifest["stopped"] == "done"
    assert manifest["inputs"]["content"]["path"] == str((folder / "photo.png").resolve())
    # The same picture as a run never interrupted.
    assert (
        cli.main(
            [
                "transfer",
                str(folder / "photo.png"),
                str(folder / "painting.png"),
                "-o",
                str(folder / "whole.png"),
                *ARGS,
            ]
        )
        == 0
    )
    assert np.array_equal(pixels(out), pixels(folder / "whole.png"))


def test_checkpoint_every_keeps_the_latest_state(folder, capsys, monkeypatch):
    out, ckpt = folder / "out.png", folder / "state.ckpt"
    code, _ = run(
        capsys,
        monkeypatch,
        folder / "photo.png",
        folder / "painting.png",
        "-o",
        out,
        *ARGS,
        "--checkpoint-every",
        "5",
        "--checkpoint",
        ckpt,
        signal_at=7,
    )
    assert code == 128 + signal.SIGTERM
    assert load_checkpoint(ckpt)["run"]["step"] == 7  # the one the stop left, after the one at step 5
    # A finished run leaves its final state, to carry on with more iterations later.
    code, _ = run(
        capsys, monkeypatch, "--resume", ckpt, "-o", out, "--overwrite", "--checkpoint-every", "5", "--checkpoint", ckpt
    )
    assert code == 0 and load_checkpoint(ckpt)["run"]["step"] == 12
    code, _ = run(capsys, monkeypatch, "--resume", ckpt, "-o", out, "--overwrite", "--iterations", "14")
    assert code == 0 and read_manifest(out)["iterations"] == 14


def test_checkpoint_problems_are_one_line_errors(folder, capsys, monkeypatch):
    (folder / "junk.ckpt").write_bytes(b"not a checkpoint")
    (folder / "out.png.ckpt").write_bytes(b"someone's file")
    cases = [
        (["--resume", folder / "gone.ckpt"], ["gone.ckpt", "not found"]),
        (["--resume", folder / "junk.ckpt"], ["junk.ckpt", "not a Stylist checkpoint"]),
        ([folder / "photo.png", folder / "painting.png", "--checkpoint-every", "2"], ["out.png.ckpt", "--overwrite"]),
        ([folder / "photo.png", folder / "painting.png", "--checkpoint-every", "-1"], ["--checkpoint-every", "-1"]),
        (
            [folder / "photo.png", folder / "painting.png", "--checkpoint", folder / "photo.png"],
            ["photo.png", "two files"],
        ),
    ]
    for args, words in cases:
        code, err = run(capsys, monkeypatch, *args, "-o", folder / "out.png", *ARGS)
        assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), (args, err)
    assert (folder / "out.png.ckpt").read_bytes() == b"someone's file" and not (folder / "out.png").exists()


def test_resuming_with_another_size_is_refused(folder, capsys, monkeypatch, unbroken):
    save_checkpoint(
        folder / "run.ckpt", {"manifest": {"config": CFG.to_dict(), "inputs": {}}, "run": unbroken.checkpoint()}
    )
    code, err = run(
        capsys,
        monkeypatch,
        "--resume",
        folder / "run.ckpt",
        folder / "photo.png",
        folder / "painting.png",
        "-o",
        folder / "o.png",
        "--size",
        "48",
    )
    assert code == 2 and len(err) == 1 and "--size 64 but this run has 48" in err[0]
    with pytest.raises(StylistError):
        load_checkpoint(folder / "photo.png")
