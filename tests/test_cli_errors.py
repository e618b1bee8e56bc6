"""Every bad input of ``stylist transfer`` gives one line on stderr, exit 2, and no files.

Each case runs the real command as a subprocess in its own folder holding a tiny
content.png and style.jpg. Starting Python and torch takes about a second, so the
cases are launched together (a few at a time) by one fixture and each test then
checks its own outcome. ``--size 32 --iterations 2`` keeps any run that wrongly gets
going short.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylist


def make_inputs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(folder / "content.png")
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(folder / "style.jpg", quality=90)


def transfer(content: str = "content.png", style: str = "style.jpg", out: str = "out.png", *extra: str) -> list[str]:
    # Options given again in ``extra`` (such as --size 0) win: argparse keeps the last.
    return ["transfer", content, style, "-o", out, "--size", "32", "--iterations", "2", *extra]


def options(*extra: str) -> list[str]:
    return transfer("content.png", "style.jpg", "out.png", *extra)


def run_cli(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stylist", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


# --- setups -------------------------------------------------------------------------------------------


def mkdir(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).mkdir()


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def truncated_jpeg(d: Path) -> None:
    big = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(d / "cut.jpg", quality=95)
    data = (d / "cut.jpg").read_bytes()
    (d / "cut.jpg").write_bytes(data[: len(data) // 2])


def content_in_subfolder(d: Path) -> None:
    (d / "in").mkdir()
    (d / "content.png").rename(d / "in" / "content.png")


@dataclass
class Case:
    id: str
    args: list[str]
    says: list[str]  # words the error line must contain (the file or option, and what is wrong)
    setup: Callable[[Path], None] = lambda d: None
    kept: list[str] = field(default_factory=list)  # files that exist before and must keep their bytes


CASES = [
    # input files
    Case("missing_content", transfer("nope.png"), ["nope.png", "not found"]),
    Case("missing_style", transfer("content.png", "nope.jpg"), ["nope.jpg", "not found"]),
    Case("content_is_directory", transfer("photos"), ["photos", "directory"], mkdir("photos")),
    Case("empty_file", transfer("empty.png"), ["empty.png", "empty"], write("empty.png", b"")),
    Case(
        "not_an_image",
        transfer("content.png", "notes.jpg"),
        ["notes.jpg", "not an image"],
        write("notes.jpg", b"shopping list\n" * 50),
    ),
    Case("truncated_image", transfer("content.png", "cut.jpg"), ["cut.jpg", "truncated"], truncated_jpeg),
    Case("missing_init_image", options("--init", "nope.png"), ["--init", "nope.png"]),
    # network and optimiser
    Case("unknown_style_layer", options("--style-layers", "relu9_9"), ["relu9_9", "relu4_2"]),
    Case("unknown_optimizer", options("--optimizer", "foo"), ["--optimizer", "foo", "lbfgs"]),
    Case("unknown_weights_source", options("--weights", "nosuch"), ["nosuch", "weights", "vgg19-caffe"]),
    Case(
        "garbage_weights_file",
        options("--weights", "w.pth"),
        ["w.pth", "weights"],
        write("w.pth", np.random.default_rng(2).bytes(4096)),
    ),
    Case("missing_weights_file", options("--weights", "gone.pth"), ["gone.pth", "not found"]),
    Case("unknown_device", options("--device", "tpu"), ["tpu", "device"]),
    Case(
        "wrong_style_layer_weights_count",
        options("--style-layer-weights", "1", "2"),
        ["--style-layer-weights", "2 values", "5"],
    ),
    # numbers
    Case("size_zero", options("--size", "0"), ["--size", "got 0"]),
    Case("size_negative", options("--size", "-64"), ["--size", "got -64"]),
    Case("size_not_a_number", options("--size", "abc"), ["--size", "abc"]),
    Case("iterations_zero", options("--iterations", "0"), ["--iterations", "got 0"]),
    Case("iterations_negative", options("--iterations", "-5"), ["--iterations", "got -5"]),
    Case("content_weight_zero", options("--content-weight", "0"), ["--content-weight", "positive"]),
    Case("content_weight_negative", options("--content-weight", "-1"), ["--content-weight", "-1"]),
    Case("content_weight_nan", options("--content-weight", "nan"), ["--content-weight", "nan"]),
    Case("style_weight_zero", options("--style-weight", "0"), ["--style-weight", "positive"]),
    Case("style_weight_negative", options("--style-weight", "-30"), ["--style-weight", "-30"]),
    Case("tv_weight_negative", options("--tv-weight", "-0.5"), ["--tv-weight", "-0.5"]),
    Case("save_every_negative", options("--save-every", "-1"), ["--save-every", "-1"]),
    # outputs
    Case(
        "output_is_content",
        transfer("content.png", "style.jpg", "content.png"),
        ["content.png", "input"],
        kept=["content.png"],
    ),
    Case(
        "output_is_content_other_spelling",
        transfer("in/content.png", "style.jpg", "./in/../in/content.png"),
        ["in/content.png", "input"],
        content_in_subfolder,
        kept=["in/content.png"],
    ),
    Case(
        "output_exists", options(), ["out.png", "--overwrite"], write("out.png", b"an earlier result"), kept=["out.png"]
    ),
    Case("output_unknown_suffix", transfer("content.png", "style.jpg", "out.xyz"), ["out.xyz", "format", ".png"]),
    Case("output_folder_missing", transfer("content.png", "style.jpg", "nosuch/out.png"), ["nosuch", "does not exist"]),
    Case(
        "output_is_directory",
        transfer("content.png", "style.jpg", "result.png"),
        ["result.png", "directory"],
        mkdir("result.png"),
    ),
    Case("history_not_csv", options("--history", "h.txt"), ["h.txt", ".csv"]),
    Case(
        "history_exists",
        options("--history", "h.csv"),
        ["h.csv", "--overwrite"],
        write("h.csv", b"step\n"),
        kept=["h.csv"],
    ),
]


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory) -> dict:
    # A private weights cache, so the tests never touch the user's.
    return {**os.environ, "STYLIST_CACHE": str(tmp_path_factory.mktemp("stylist-cache"))}


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, cli_env) -> dict[str, tuple[Path, dict, subprocess.CompletedProcess]]:
    """Run the selected cases concurrently: {id: (folder, snapshot before, process)}."""
    params = [getattr(getattr(item, "callspec", None), "params", {}) for item in request.session.items]
    selected = {p["case"].id for p in params if isinstance(p.get("case"), Case)}
    folders = {}
    for case in CASES:
        if case.id in selected:
            folder = tmp_path_factory.mktemp(case.id)
            make_inputs(folder)
            case.setup(folder)
            folders[case.id] = (folder, snapshot(folder), case)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        procs = dict(zip(folders, pool.map(lambda v: run_cli(v[2].args, v[0], cli_env), folders.values())))
    return {cid: (folder, before, procs[cid]) for cid, (folder, before, _) in folders.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes) -> None:
    folder, before, proc = outcomes[case.id]
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("stylist"), line
    for word in case.says:
        assert word in line, f"{word!r} missing from: {line}"
    assert proc.returncode == 2, (proc.returncode, line)
    assert proc.stdout == ""
    # Nothing written, replaced or left behind.
    if "out.png" not in before:
        assert not (folder / "out.png").exists()
    assert [p.name for p in folder.rglob(".*")] == []
    for name in case.kept:
        assert (folder / name).read_bytes() == before[name]
    assert snapshot(folder) == before


def test_real_tiny_run_writes_result_intermediates_and_history(tmp_path, cli_env):
    make_inputs(tmp_path)
    proc = run_cli(options("--iterations", "3", "--save-every", "1", "--history", "h.csv"), tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("wrote out.png"), proc.stderr

    with Image.open(tmp_path / "out.png") as out:
        assert out.format == "PNG" and out.size == (32, 21)  # 48x32 content, long side 32
    for step in (1, 2, 3):
        with Image.open(tmp_path / f"out_step{step:04d}.png") as im:
            assert im.format == "PNG" and im.size == (32, 21)
    assert not (tmp_path / "out_step0004.png").exists()

    with open(tmp_path / "h.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"step", "content", "style", "tv", "total"} <= set(rows[0])
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["total"]) >= 0 for r in rows)
    with Image.open(tmp_path / "h.png") as plot:
        assert plot.format == "PNG"
        plot.verify()

    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        ["content.png", "style.jpg", "out.png", "h.csv", "h.png", *(f"out_step000{i}.png" for i in (1, 2, 3))]
    )


def test_version(cli_env, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "stylist", "--version"],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"stylist {stylist.__version__}"
