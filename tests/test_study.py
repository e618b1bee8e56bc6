"""Studies: every study writes its files at a tiny size; a re-run loads finished cells instead of recomputing them."""

import csv
import re

import pytest
import torch

import stylist.study as study_module
from stylist.cli import main
from stylist.study import STUDIES, StudyConfig, high_frequency_share, make_plan, run_study, spectrum

TINY = ["--size", "32", "--iterations", "2", "--device", "cpu", "--precision", "fp32", "-q"]
# Two values are enough to make a row; the studies' own lists are longer.
VALUES = {
    "ratio": ["--values", "0.01", "10"],
    "style-weight": ["--values", "10", "100"],
    "tv": ["--values", "0", "100"],
}


def _read_metrics(folder):
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_writes_its_files(name, tmp_path, content_path, style_path, capsys):
    out = tmp_path / name
    args = [
        "study",
        name,
        "--content",
        str(content_path),
        "--style",
        str(style_path),
        "-o",
        str(out),
        *TINY,
        *VALUES.get(name, []),
    ]
    assert main(args) == 0
    assert "report.html" in capsys.readouterr().err
    for file in ("grid.png", "metrics.csv", "report.html"):
        assert (out / file).stat().st_size > 0, file
    rows = _read_metrics(out)
    values = tuple(float(v) for v in VALUES.get(name, [None])[1:]) or None
    plan = make_plan(name, StudyConfig(size=32, iterations=2, values=values), style_path)
    assert [r["key"] for r in rows] == [c.key for c in plan.cells]
    done = [r for r in rows if r["status"] == "done"]
    assert done, "at least one cell computed"
    for r in done:
        assert (out / r["image"]).is_file()
        assert float(r["seconds"]) > 0 and float(r["peak_rss_mb"]) > 0
        assert -1 <= float(r["ssim"]) <= 1 and float(r["style_gram"]) >= 0
    for r in rows:
        if r["status"] == "skipped":
            assert r["note"], "a skipped cell says why"
    if any(c.config is not None for c in plan.cells):
        assert (out / "losses.png").stat().st_size > 0
    if plan.spectra:
        assert (out / "spectra.png").stat().st_size > 0
    report = (out / "report.html").read_text()
    assert f"stylist study {name} --content" in report and "Device: cpu" in report
    for link in re.findall(r'(?:href|src)="([^"#:]+)"', report):
        assert (out / link).is_file(), f"report links to missing {link}"


def test_layers_study_reconstructs_each_layer_from_noise(style_path):
    plan = make_plan("layers", StudyConfig(size=64, iterations=5), style_path)
    content = [c.config for c in plan.cells if c.row == "content"]
    style = [c.config for c in plan.cells if c.row == "style"]
    assert [c.content_layers for c in content] == [(f"relu{i}_2",) for i in range(1, 6)]
    assert [len(c.style_layers) for c in style] == [1, 2, 3, 4, 5]
    assert all(c.init == "noise" and not c.multiscale for c in content + style)
    assert all(c.style_weight < 1e-6 for c in content) and all(c.content_weight < 1e-6 for c in style)


def test_ratio_study_sweeps_alpha_over_beta_by_decades(style_path):
    plan = make_plan("ratio", StudyConfig(), style_path)
    ratios = [c.config.content_weight / c.config.style_weight for c in plan.cells]
    assert ratios == pytest.approx([10.0**k for k in range(-4, 3)])


def test_rerun_loads_finished_cells(tmp_path, content_path, style_path, monkeypatch):
    calls = []
    real = study_module.stylize

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "stylize", counting)
    cfg = StudyConfig(size=32, iterations=2, device="cpu", precision="fp32")
    first = run_study("pooling", content_path, style_path, tmp_path, cfg)
    assert len(calls) == 2 and [c.status for c in first.cells] == ["done", "done"]
    pngs = sorted((tmp_path / "cells").glob("*.png"))
    mtimes = [p.stat().st_mtime_ns for p in pngs]

    events = []
    again = run_study("pooling", content_path, style_path, tmp_path, cfg, callback=lambda p: events.append(p.event))
    assert len(calls) == 2, "a finished cell was computed again"
    assert [c.status for c in again.cells] == ["cached", "cached"]
    assert events == ["cached", "cached"]
    assert [p.stat().st_mtime_ns for p in pngs] == mtimes
    for a, b in zip(first.cells, again.cells):
        assert torch.allclose(a.image, b.image, atol=1 / 255)
        assert a.record["style_gram"] == b.record["style_gram"]

    # Other settings: the cells are computed afresh.
    run_study(
        "pooling",
        content_path,
        style_path,
        tmp_path,
        StudyConfig(size=32, iterations=3, device="cpu", precision="fp32"),
    )
    assert len(calls) == 4


def test_a_cell_without_its_record_is_recomputed(tmp_path, content_path, style_path):
    cfg = StudyConfig(size=32, iterations=2, device="cpu", precision="fp32")
    run_study("pooling", content_path, style_path, tmp_path, cfg)
    (tmp_path / "cells" / "pool_avg.json").unlink()  # as if interrupted before the record was written
    again = run_study("pooling", content_path, style_path, tmp_path, cfg)
    assert [c.status for c in again.cells] == ["cached", "done"]


def test_spectrum_and_high_frequencies():
    flat = torch.full((1, 3, 32, 32), 0.5)
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32).view(1, -1)) % 2).float().expand(1, 3, 32, 32)
    assert spectrum(checker).shape == (32, 32)
    assert high_frequency_share(checker) == pytest.approx(1.0)
    smooth = torch.linspace(0, 1, 32).view(1, 1, 1, -1).expand(1, 3, 32, 32)
    assert high_frequency_share(smooth) < 0.1
    assert float(spectrum(flat).abs().max()) == pytest.approx(0.0, abs=1e-6)


IO = ["--content", "{content}", "--style", "{style}", "-o", "{out}"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["study", "nonsense", *IO], "unknown study"),
        (["study", "ratio", "--content", "{missing}", "--style", "{style}", "-o", "{out}"], "missing.jpg"),
        (["study", "ratio", *IO, "--set", "nonsense=1"], "--set"),
        (["study", "ratio", *IO, "--set", "tv_weight=abc"], "not a valid value"),
        (["study", "ratio", *IO, "--size", "8"], "--size"),
        (["study", "ratio", *IO, "--set", "iterations=5"], "--iterations"),
        (["study", "ratio", "--content", "{content}", "--style", "{style}", "-o", "{content}"], "not a folder"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, words, tmp_path, content_path, style_path, capsys):
    places = {
        "content": content_path,
        "style": style_path,
        "out": tmp_path / "out",
        "missing": tmp_path / "missing.jpg",
    }
    assert main([a.format(**places) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not (tmp_path / "out").exists()


def test_set_options_take_their_fields_types():
    from stylist.cli.study import parse_set

    given = parse_set(
        [
            "style_layers=relu1_1,relu2_1",
            "init=noise",
            "multiscale=false",
            "lr=none",
            "tv-weight=2.5",
            "min_level_size=64",
        ]
    )
    assert given == {
        "style_layers": ("relu1_1", "relu2_1"),
        "init": "noise",
        "multiscale": False,
        "lr": None,
        "tv_weight": 2.5,
        "min_level_size": 64,
    }


@pytest.mark.parametrize("option", ["--model", "--decoder"])
def test_a_named_model_or_decoder_that_is_wrong_is_an_error_not_a_skip(
    option, tmp_path, content_path, style_path, capsys
):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a model at all" * 10)
    argv = ["study", "methods", "--content", str(content_path), "--style", str(style_path), "-o", str(tmp_path / "out")]
    assert main([*argv, option, str(garbage), "--size", "32", "--iterations", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "garbage.safetensors" in err, err
    assert not (tmp_path / "out").exists()
