"""Reproducible runs: every result carries a manifest, and ``--from-manifest`` makes it again.

The command runs in-process (``stylist.cli.main``) at 32 px for a few iterations with the
real weights, from noise so that the seed matters.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylist.cli import main
from stylist.errors import StylistError
from stylist.image import load_tensor, output_format, read_picture, resize_long_side, save_image
from stylist.manifest import differences, embed_params, read_manifest, sidecar_path, versions
from stylist.weights import SOURCES, sha256_file

FAST = [
    "--size",
    "32",
    "--iterations",
    "4",
    "--no-multiscale",
    "--init",
    "noise",
    "--seed",
    "5",
    "--precision",
    "fp32",
    "-q",
]


def run(capsys, *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["transfer", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture
def inputs(tmp_path: Path, content_path: Path, style_path: Path) -> Path:
    """A folder with small copies of the example photo and painting."""
    save_image(resize_long_side(load_tensor(content_path), 48), tmp_path / "photo.png")
    save_image(resize_long_side(load_tensor(style_path), 48), tmp_path / "painting.png")
    return tmp_path


def test_the_manifest_records_the_run_and_reruns_to_the_same_pixels(inputs: Path, capsys) -> None:
    first, again, other = inputs / "first.png", inputs / "again.png", inputs / "other.png"
    code, _ = run(capsys, inputs / "photo.png", inputs / "painting.png", "-o", first, *FAST, "--manifest-json")
    assert code == 0
    manifest = read_manifest(first)
    assert json.loads(sidecar_path(first).read_text()) == manifest  # the sidecar holds the same
    assert manifest["config"]["seed"] == manifest["seed"] == 5 and manifest["config"]["init"] == "noise"
    assert manifest["inputs"]["content"] == {
        "path": str((inputs / "photo.png").resolve()),
        "sha256": sha256_file(inputs / "photo.png"),
    }
    assert [s["sha256"] for s in manifest["inputs"]["styles"]] == [sha256_file(inputs / "painting.png")]
    assert manifest["weights"] == {"source": "vgg19-caffe", "sha256": SOURCES["vgg19-caffe"].sha256}
    assert {"stylist", "torch", "numpy", "pillow"} <= set(manifest["versions"])
    assert manifest["device"] == "cpu" and manifest["precision"] == "fp32" and manifest["elapsed"] > 0
    assert manifest["iterations"] == 4 and manifest["losses"]["total"] > 0
    assert manifest["output"]["depth"] == 8

    assert run(capsys, "--from-manifest", first, "-o", again)[0] == 0
    assert np.array_equal(pixels(first), pixels(again))
    # An option given alongside the manifest overrides it, and the new result records it.
    assert run(capsys, "--from-manifest", sidecar_path(first), "-o", other, "--seed", "6")[0] == 0
    assert not np.array_equal(pixels(first), pixels(other))
    assert read_manifest(other)["seed"] == 6


def test_a_missing_or_changed_input_is_refused_in_one_line(inputs: Path, capsys) -> None:
    result = inputs / "result.png"
    assert run(capsys, inputs / "photo.png", inputs / "painting.png", "-o", result, *FAST, "--iterations", "1")[0] == 0
    painting = inputs / "painting.png"
    shutil.move(painting, inputs / "moved.png")
    code, err = run(capsys, "--from-manifest", result, "-o", inputs / "x.png")
    assert code == 2 and len(err) == 1 and "painting.png" in err[0] and "missing" in err[0]
    Image.open(inputs / "moved.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(painting)
    code, err = run(capsys, "--from-manifest", result, "-o", inputs / "x.png")
    assert code == 2 and len(err) == 1 and "painting.png" in err[0] and "changed" in err[0]
    assert not (inputs / "x.png").exists()
    # Given on the command line, the changed painting is used as it is now.
    code, _ = run(capsys, "--from-manifest", result, "-o", inputs / "x.png", inputs / "photo.png", painting)
    assert code == 0 and read_manifest(inputs / "x.png")["inputs"]["styles"][0]["sha256"] == sha256_file(painting)


def test_bad_manifest_sources_are_one_line_errors(inputs: Path, capsys) -> None:
    Image.new("RGB", (8, 8)).save(inputs / "plain.png")
    (inputs / "broken.json").write_text("{not json")
    for source, words in (("nope.png", "not found"), ("plain.png", "no Stylist manifest"), ("broken.json", "damaged")):
        code, err = run(capsys, "--from-manifest", inputs / source, "-o", inputs / "x.png")
        assert code == 2 and len(err) == 1 and source in err[0] and words in err[0], err
    code, err = run(
        capsys, "--from-manifest", inputs / "plain.png", "--resume", inputs / "plain.png", "-o", inputs / "x.png"
    )
    assert code == 2 and "do not go together" in err[0]
    code, err = run(capsys, "-o", inputs / "x.png")
    assert code == 2 and "CONTENT and STYLE" in err[0]


@pytest.mark.parametrize(
    ("suffix", "depth"), [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16), (".jpg", 8), (".webp", 8)]
)
def test_the_manifest_survives_every_format_that_has_room(tmp_path: Path, suffix: str, depth: int) -> None:
    manifest = {"format": "stylist-manifest", "version": 1, "config": {"seed": 3, "note": "x" * 3000}}
    ramp = torch.linspace(0, 1, 16)
    image = torch.stack([ramp[None, :].expand(16, 16), ramp[:, None].expand(16, 16), 1 - ramp[None, :].expand(16, 16)])[
        None
    ]
    path = tmp_path / f"out{suffix}"
    save_image(image, path, depth=depth, **embed_params(output_format(path, depth), manifest))
    assert read_manifest(path) == manifest
    # The image itself reads back as before (16-bit: at full precision).
    error = (read_picture(path).rgb - image).abs()
    if suffix in (".jpg", ".webp"):
        assert error.mean() < 0.03
    else:
        assert error.max() <= (1 / 65535 if depth == 16 else 1 / 255) / 2 + 1e-6


def test_bmp_keeps_its_manifest_in_the_sidecar(inputs: Path, capsys) -> None:
    out = inputs / "out.bmp"
    code, err = run(capsys, inputs / "photo.png", inputs / "painting.png", "-o", out, *FAST, "--iterations", "2")
    assert code == 0 and any("BMP has no room" in line and "--manifest-json" in line for line in err)
    with pytest.raises(StylistError, match="sidecar"):
        read_manifest(out)
    code, err = run(
        capsys,
        inputs / "photo.png",
        inputs / "painting.png",
        "-o",
        out,
        *FAST,
        "--iterations",
        "2",
        "--manifest-json",
        "--overwrite",
    )
    assert code == 0 and not any("BMP" in line for line in err)
    assert run(capsys, "--from-manifest", sidecar_path(out), "-o", inputs / "again.bmp")[0] == 0
    assert np.array_equal(pixels(out), pixels(inputs / "again.bmp"))


def test_a_rerun_says_what_may_make_its_pixels_differ() -> None:
    manifest = {
        "versions": {"torch": "0.0.1", "numpy": versions()["numpy"]},
        "weights": {"source": "vgg19-caffe", "sha256": "0" * 64},
    }
    lines = differences(manifest)
    assert len(lines) == 2 and "torch 0.0.1" in lines[0] and "vgg19-caffe" in lines[1]
    assert (
        differences(
            {"versions": versions(), "weights": {"source": "vgg19-caffe", "sha256": SOURCES["vgg19-caffe"].sha256}}
        )
        == []
    )


def test_one_pass_manifest_has_the_transfer_layout() -> None:
    from stylist.manifest import FORMAT, VERSION, one_pass_manifest, to_json

    m = one_pass_manifest(
        "arbitrary",
        {"method": "adain", "alpha": 0.5},
        {"content": {"file": "a.jpg"}},
        "cpu",
        0.12345,
        {"file": "r.png"},
        app="x",
    )
    assert (m["format"], m["version"], m["kind"], m["device"], m["elapsed"], m["app"]) == (
        FORMAT,
        VERSION,
        "arbitrary",
        "cpu",
        0.123,
        "x",
    )
    assert m["config"]["alpha"] == 0.5 and m["output"] == {"file": "r.png"} and "torch" in str(m["versions"])
    assert json.loads(to_json(m)) == m
