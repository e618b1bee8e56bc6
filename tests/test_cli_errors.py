"""Every bad input of ``stylist transfer`` gives one line on stderr, exit 2, and no files.

Each case runs the real command in-process (``stylist.cli.main``) in its own folder holding a
tiny content.png and style.jpg; one fixture runs the cases and each test then checks its own
outcome. ``--size 32 --iterations 2`` keeps any run that wrongly gets going short. A real run
and ``--version`` still start a process of their own.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
from collections.abc import Callable
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
        ["--style-layer-weights", "2 values", "4 style layers"],
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
    procs = {cid: run_in_process(case.args, folder, cli_env) for cid, (folder, _, case) in folders.items()}
    return {cid: (folder, before, procs[cid]) for cid, (folder, before, _) in folders.items()}


def run_in_process(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """``stylist ARGS`` through ``stylist.cli.main`` in this process (a subprocess per case would
    spend a second or more starting Python and torch), as a CompletedProcess."""
    from stylist.cli import main

    out, err, here, saved = io.StringIO(), io.StringIO(), os.getcwd(), os.environ.get("STYLIST_CACHE")
    os.environ["STYLIST_CACHE"] = env["STYLIST_CACHE"]
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(here)
        if saved is None:
            os.environ.pop("STYLIST_CACHE", None)
        else:
            os.environ["STYLIST_CACHE"] = saved
    return subprocess.CompletedProcess(["stylist", *args], code, out.getvalue(), err.getvalue())


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


# --- the shared command-line language (in this process: no interpreter start per case) ----------------------

from stylist.checkpoint import load_checkpoint  # noqa: E402
from stylist.cli import _common as common  # noqa: E402
from stylist.cli import build_parser, main  # noqa: E402
from stylist.errors import NonFiniteLossError  # noqa: E402
from stylist.manifest import read_manifest  # noqa: E402


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``stylist ARGV`` in this process: (exit status, stderr)."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = int(stop.code)
    return code, capsys.readouterr().err


def one_error_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def pictures(tmp_path: Path, monkeypatch) -> Path:
    """A folder with two small photos, a painting, and a truncated JPEG under photos/."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"p{i}.png")
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "photos" / "cut.jpg", quality=95)
    data = (tmp_path / "photos" / "cut.jpg").read_bytes()
    (tmp_path / "photos" / "cut.jpg").write_bytes(data[: len(data) // 2])
    return tmp_path


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["transfer", "c.png", "s.png", "-o", "o.png", "--early-stop-tol", "nan"], "--early-stop-tol"),
        (["transfer", "c.png", "s.png", "-o", "o.png", "--style-weight", "inf"], "--style-weight"),
        (["transfer", "c.png", "s.png", "-o", "o.png", "--style-layer-weights", "1", "inf"], "--style-layer-weights"),
        (["arbitrary", "c.png", "--style", "s.png", "-o", "o.png", "--style-strength", "nan"], "--style-strength"),
        (["train", "--style", "s.png", "--content", "d", "-o", "m.safetensors", "--lr", "nan"], "--lr"),
        (["train-decoder", "--content", "d", "-o", "d.safetensors", "--style-zoom", "1", "inf"], "--style-zoom"),
        (["study", "ratio", "--content", "c", "--style", "s", "-o", "o", "--values", "nan"], "--values"),
    ],
)
def test_float_options_refuse_nan_and_inf_when_read(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(argv, capsys)
    one_error_line(code, err, flag, "finite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, field, value",
    [
        (["transfer", "c", "s", "-o", "o.png", "--alpha", "2"], "content_weight", 2.0),
        (["transfer", "c", "s", "-o", "o.png", "--beta", "3"], "style_weight", 3.0),
        (["transfer", "c", "s", "-o", "o.png", "--style-scale", "2"], "style_size_ratio", 2.0),
        (["transfer", "c", "s", "-o", "o.png", "--style-size-ratio", "0.5"], "style_size_ratio", 0.5),
        (["transfer", "c", "s", "-o", "o.png", "--preserve-colour", "histogram"], "preserve_color", "mean-covariance"),
        (["arbitrary", "c", "--style", "s", "-o", "o.png", "--alpha", "0.5"], "alpha", 0.5),
        (["arbitrary", "c", "--style", "s", "-o", "o.png", "--style-strength", "0.25"], "alpha", 0.25),
        (
            ["arbitrary", "c", "--style", "s", "-o", "o.png", "--preserve-colour", "histogram"],
            "preserve_color",
            "mean-covariance",
        ),
        (["apply", "m", "c", "-o", "o.png", "--preserve-color", "histogram"], "preserve_color", "mean-covariance"),
        (["train", "--style", "s", "--data", "d", "-o", "m.safetensors"], "data", ["d"]),
        (["train", "--style", "s", "--content", "d", "e", "-o", "m.safetensors"], "data", ["d", "e"]),
        (
            ["train-decoder", "--content", "d", "-o", "d.safetensors", "--style-scale", "1", "2"],
            "style_zoom",
            [1.0, 2.0],
        ),
        (
            ["train-decoder", "--content", "d", "-o", "d.safetensors", "--content-zoom", "1", "2"],
            "content_zoom",
            [1.0, 2.0],
        ),
        (["metrics", "r.png", "--content", "c", "--style", "s"], "device", "auto"),
        (["apply", "m", "c", "-o", "o.png"], "device", "auto"),
    ],
)
def test_old_spellings_are_aliases_and_options_mean_one_thing(argv, field, value):
    assert getattr(build_parser().parse_args(argv), field) == value


def test_an_output_that_is_a_folder_is_named_as_one(pictures, capsys):
    # A folder's name has no suffix: it is said to be a folder, not an unknown image format.
    (pictures / "results").mkdir()
    argv = ["transfer", "photos/p0.png", "style.png", "-o", "results", "--size", "32"]
    assert main(argv) == 2
    assert "results: is a directory; give an output file name such as result.png" in capsys.readouterr().err


def test_hidden_aliases_stay_out_of_the_help(capsys):
    helps = {}
    for command in ("transfer", "arbitrary", "train", "train-decoder"):
        assert main([command, "--help"]) == 0  # main returns argparse's exit status, in-process too
        helps[command] = capsys.readouterr().out
    assert "--alpha" not in helps["transfer"] and "--style-scale" not in helps["transfer"]
    assert "--style-size-ratio" in helps["transfer"] and "--style-strength" in helps["arbitrary"]
    assert "--data" not in helps["train"] and "--style-zoom" in helps["train-decoder"]
    assert helps["arbitrary"].count("histogram") == 1  # only where it says that it is the old name
    for text in helps.values():
        assert "None" not in text and "True]" not in text and "stylist." not in text
        assert "exit status" in text


def test_transfer_takes_its_inputs_as_options_too(capsys, pictures):
    code, err = run_main(
        [
            "transfer",
            "--content",
            "photos/p0.png",
            "--style",
            "style.png",
            "-o",
            "o.png",
            "--size",
            "32",
            "--iterations",
            "1",
            "-q",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, err
    assert err.strip().splitlines()[-1].startswith("wrote o.png")
    code, err = run_main(
        ["transfer", "photos/p0.png", "--content", "photos/p1.png", "--style", "style.png", "-o", "x.png"], capsys
    )
    one_error_line(code, err, "--content", "not both")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["apply", "starry-night", "photos/p0.png", "-o", "out.jgp"], ["out.jgp", ".jgp", "image format"]),
        (["apply", "starry-night", "photos", "-o", "out.jgp"], ["out.jgp", "image format"]),
        (["arbitrary", "photos/p0.png", "--style", "style.png", "-o", "out.jgp"], ["out.jgp", "image format"]),
        (["arbitrary", "photos", "--style", "style.png", "-o", "res.jgp"], ["res.jgp", "image format"]),
        (["transfer", "photos/p0.png", "style.png", "-o", "out.jgp"], ["out.jgp", "image format"]),
        (["train", "--style", "style.png", "--content", "photos", "-o", "m.pt"], ["m.pt", ".safetensors"]),
        (["train-decoder", "--method", "wct", "--content", "photos", "-o", "d.pt"], ["d.pt", ".safetensors"]),
        (["export", "starry-night", "-o", "m.onx"], ["m.onx", ".onnx"]),
        (["apply", "starry-night", "photos", "-o", "nosuch/out"], ["nosuch", "does not exist"]),
        (["arbitrary", "photos", "--style", "style.png", "-o", "nosuch/out"], ["nosuch", "does not exist"]),
    ],
)
def test_every_command_refuses_an_output_it_cannot_write(argv, words, capsys, pictures):
    before = snapshot(pictures)
    code, err = run_main([*argv, "--device", "cpu"] if argv[0] not in ("export",) else argv, capsys)
    one_error_line(code, err, *words)
    assert snapshot(pictures) == before


def test_apply_skips_a_damaged_file_in_a_folder_counts_it_and_records_manifests(capsys, pictures):
    code, err = run_main(["apply", "starry-night", "photos", "-o", "out", "--device", "cpu", "-q"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert any("warning" in line and "cut.jpg" in line for line in lines), err
    assert "2 image(s)" in lines[-1] and "1 unreadable file skipped" in lines[-1], lines[-1]
    assert sorted(p.name for p in (pictures / "out").iterdir()) == ["p0.png", "p1.png"]
    manifest = read_manifest(pictures / "out" / "p0.png")
    assert manifest["kind"] == "feedforward" and manifest["inputs"]["content"]["path"].endswith("p0.png")


def test_a_damaged_file_named_on_the_command_line_is_an_error(capsys, pictures):
    for argv in (
        ["apply", "starry-night", "photos/cut.jpg", "photos/p0.png", "-o", "out"],
        ["arbitrary", "photos/cut.jpg", "photos/p0.png", "--style", "style.png", "-o", "out"],
    ):
        before = snapshot(pictures)
        code, err = run_main([*argv, "--device", "cpu"], capsys)
        one_error_line(code, err, "cut.jpg")
        assert snapshot(pictures) == before


def test_arbitrary_skips_a_damaged_file_in_a_folder_and_records_manifests(capsys, pictures):
    code, err = run_main(
        [
            "arbitrary",
            "photos",
            "--style",
            "style.png",
            "-o",
            "out",
            "--device",
            "cpu",
            "--size",
            "32",
            "--preserve-color",
            "histogram",
        ],
        capsys,
    )
    assert code == 0, err
    assert "cut.jpg" in err and "1 unreadable file skipped" in err.strip().splitlines()[-1], err
    manifest = read_manifest(pictures / "out" / "p1.png")
    assert manifest["kind"] == "arbitrary" and manifest["config"]["preserve_color"] == "mean-covariance"
    assert [Path(r["path"]).name for r in manifest["inputs"]["styles"]] == ["style.png"]


def test_apply_mean_covariance_keeps_the_photos_colour_statistics(capsys, pictures):
    code, err = run_main(
        [
            "apply",
            "starry-night",
            "photos/p0.png",
            "-o",
            "o.png",
            "--device",
            "cpu",
            "--preserve-color",
            "mean-covariance",
        ],
        capsys,
    )
    assert code == 0, err
    # One file: no progress bar (it would jump from 0 to 100 %), and the closing line names the style.
    assert err.strip().splitlines() == [err.strip()] and "with starry-night (" in err, err
    photo = np.asarray(Image.open(pictures / "photos" / "p0.png"), dtype=np.float64).reshape(-1, 3)
    out = np.asarray(Image.open(pictures / "o.png").convert("RGB"), dtype=np.float64).reshape(-1, 3)
    assert np.abs(photo.mean(0) - out.mean(0)).max() < 4  # 8-bit rounding and clamping aside


def test_apply_has_max_pixels(capsys, pictures):
    code, err = run_main(["apply", "starry-night", "photos/p0.png", "-o", "o.png", "--max-pixels", "100"], capsys)
    one_error_line(code, err, "p0.png")
    assert not (pictures / "o.png").exists()


def test_a_resumed_transfer_checkpoints_as_the_original_run(capsys, pictures, monkeypatch):
    base = [
        "transfer",
        "photos/p0.png",
        "style.png",
        "-o",
        "o.png",
        "--size",
        "32",
        "--device",
        "cpu",
        "-q",
        "--no-multiscale",
        "--early-stop-patience",
        "0",
    ]
    code, err = run_main([*base, "--iterations", "2", "--checkpoint-every", "1"], capsys)
    assert code == 0, err
    assert load_checkpoint("o.png.ckpt")["cli"]["checkpoint_every"] == 1
    import stylist.cli.transfer as transfer

    saved_at = []
    real = transfer.save_checkpoint
    monkeypatch.setattr(
        transfer, "save_checkpoint", lambda path, state: (saved_at.append(state["run"]["step"]), real(path, state))
    )
    code, err = run_main([*base, "--iterations", "4", "--resume", "o.png.ckpt", "--overwrite"], capsys)
    assert code == 0, err
    assert saved_at[:2] == [3, 4], saved_at  # every iteration, as the original run, without --checkpoint-every


def test_cadence_is_the_given_else_the_recorded_else_the_default():
    args = build_parser().parse_args(["train", "--style", "s", "--content", "d", "-o", "m.safetensors"])
    defaults = {"checkpoint_every": 500, "preview_every": 500}
    assert common.cadence(args, None, defaults) == defaults
    assert common.cadence(args, {"checkpoint_every": 7, "preview_every": 0}, defaults) == {
        "checkpoint_every": 7,
        "preview_every": 0,
    }
    args = build_parser().parse_args(
        ["train", "--style", "s", "--content", "d", "-o", "m.safetensors", "--preview-every", "3"]
    )
    assert common.cadence(args, {"checkpoint_every": 7, "preview_every": 0}, defaults)["preview_every"] == 3


def test_every_stylist_error_kind_exits_2_in_one_line(capsys):
    def fails(args):
        raise NonFiniteLossError("the loss became NaN at iteration 3; lower --lr")

    assert common.run_command(fails, None) == 2
    err = capsys.readouterr().err
    assert err == "stylist: error: the loss became NaN at iteration 3; lower --lr\n"


def test_a_failed_write_of_the_history_is_one_error_and_no_file(tmp_path):
    target = tmp_path / "gone" / "h.csv"
    with pytest.raises(stylist.errors.StylistError, match="h.csv: cannot write"):
        common.write_history([{"step": 1, "total": 1.0}], target)
    assert not (tmp_path / "gone").exists()
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        if os.access(tmp_path / "ro", os.W_OK):  # root writes anywhere: nothing to test this way
            return
        with pytest.raises(stylist.errors.StylistError, match="cannot write"):
            common.write_history([{"step": 1, "total": 1.0}], tmp_path / "ro" / "h.csv")
        assert list((tmp_path / "ro").iterdir()) == []
    finally:
        os.chmod(tmp_path / "ro", 0o700)


def test_install_hints_name_the_published_distribution():
    assert common.install_hint("web").startswith('pip install "stylist-nst[web]"')


def test_another_librarys_error_is_never_cut_mid_word():
    from stylist.errors import first_line

    long = ValueError("unpickling failed because the archive " * 20 + "\nsecond line")
    line = first_line(long)
    assert line.endswith(" ...") and len(line) <= 164
    assert long.args[0].startswith(line[: -len(" ...")] + " ")  # whole words, then the ellipsis
    assert first_line(ValueError("short\nmore")) == "short"
    assert first_line(KeyError()) == "KeyError"


def test_apply_refuses_an_image_name_for_several_results(capsys, pictures):
    code, err = run_main(["apply", "starry-night", "photos", "-o", "out.png", "--device", "cpu"], capsys)
    one_error_line(code, err, "out.png", "folder")
    assert not (pictures / "out.png").exists()


def test_a_file_the_system_refuses_is_one_line_exit_2(capsys, tmp_path):
    def writes_nowhere(args):
        (tmp_path / "no" / "such" / "folder.csv").write_text("x")

    assert common.run_command(writes_nowhere, None) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stylist: error: ") and "folder.csv" in err[0], err
