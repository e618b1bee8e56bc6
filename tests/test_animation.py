"""The optimisation as a film: ``--animation FILM.gif|FILM.mp4`` with ``--animation-every N``.

A two-scale run (32 px for 5 iterations, then 64 px for 3) with a frame every 3 steps
records steps 1, 3, 6 and the result (step 8): four frames, all at the final size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylist.cli import main
from stylist.films import check_film_path, default_every
from stylist.image import load_tensor, resize_long_side, save_image

ARGS = [
    "--size",
    "64",
    "--min-scale-size",
    "32",
    "--iterations",
    "8",
    "--early-stop-patience",
    "0",
    "--init",
    "noise",
    "--precision",
    "fp32",
    "-q",
]


@pytest.fixture
def folder(tmp_path: Path, content_path: Path, style_path: Path) -> Path:
    save_image(resize_long_side(load_tensor(content_path), 64), tmp_path / "photo.png")
    save_image(resize_long_side(load_tensor(style_path), 64), tmp_path / "painting.png")
    return tmp_path


def run(folder: Path, capsys, *extra: object) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(
        [
            "transfer",
            str(folder / "photo.png"),
            str(folder / "painting.png"),
            "-o",
            str(folder / "out.png"),
            *ARGS,
            *map(str, extra),
        ]
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def test_gif_has_a_frame_every_n_steps_at_the_final_size(folder, capsys):
    assert run(folder, capsys, "--animation", folder / "film.gif", "--animation-every", "3")[0] == 0
    result = np.asarray(Image.open(folder / "out.png").convert("RGB"), dtype=float)
    with Image.open(folder / "film.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (64, 43)  # steps 1, 3 (at 32 px, upsampled), 6 and the result
        distances = []
        for i in range(gif.n_frames):
            gif.seek(i)
            distances.append(np.abs(np.asarray(gif.convert("RGB"), dtype=float) - result).mean())
    # The film runs from near the noise it began with to the result (up to GIF's 256 colours).
    assert distances[-1] == min(distances) and distances[-1] < 0.6 * distances[0], distances
    assert sorted(p.name for p in folder.iterdir()) == [
        "film.gif",
        "out.png",
        "painting.png",
        "photo.png",
    ]  # no temporary left


def test_mp4_has_the_same_frames(folder, capsys):
    av = pytest.importorskip("av")
    assert run(folder, capsys, "--animation", folder / "film.mp4", "--animation-every", "3")[0] == 0
    with av.open(str(folder / "film.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24").astype(float) for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (44, 64, 3)  # yuv420p wants even sides: one row padded
    result = np.asarray(Image.open(folder / "out.png").convert("RGB"), dtype=float)
    # In order, towards the result (the distance left is H.264 with 4:2:0 chroma on a noisy 64 px image).
    distances = [np.abs(f[:43] - result).mean() for f in frames]
    assert distances == sorted(distances, reverse=True) and distances[-1] < 0.8 * distances[0], distances


def test_default_spacing_aims_at_about_a_hundred_frames():
    assert default_every(300) == 3 and default_every(1000) == 10 and default_every(40) == 1


def test_film_problems_are_one_line_errors(folder, capsys, monkeypatch):
    (folder / "old.gif").write_bytes(b"an earlier film")
    for extra, words in (
        (["--animation", folder / "film.avi"], ["film.avi", ".gif or .mp4"]),
        (["--animation", folder / "old.gif"], ["old.gif", "--overwrite"]),
        (["--animation", folder / "nosuch" / "f.gif"], ["nosuch", "does not exist"]),
        (["--animation-every", "2"], ["--animation-every", "--animation"]),
        (["--animation", folder / "f.gif", "--animation-every", "0"], ["--animation-every", "got 0"]),
    ):
        code, err = run(folder, capsys, *extra)
        assert code == 2 and len(err) == 1 and all(w in err[0] for w in words), (extra, err)
    assert (folder / "old.gif").read_bytes() == b"an earlier film" and not (folder / "out.png").exists()

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    code, err = run(folder, capsys, "--animation", folder / "f.mp4")
    assert code == 2 and "stylist-nst[video]" in err[0]
    check_film_path(folder / "f.gif", overwrite=False)  # GIF needs no PyAV
