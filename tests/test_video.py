"""stylist video: films stylised without flicker, their sound kept (issue 17).

Every clip is made here, tiny: a photo panned across the frame, shapes crossing then a cut to
another photo, a sine-wave AAC track. The built-in feed-forward network and the shipped AdaIN
decoder run for real at 32-48 px.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")

import stylist  # noqa: E402
from stylist import flow  # noqa: E402
from stylist.cli import main  # noqa: E402
from stylist.films import (  # noqa: E402
    FilmReader,
    VideoConfig,
    VideoResult,
    read_frames,
    stylize_frames,
    stylize_video,
)
from stylist.image import load_tensor, resize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "src" / "stylist" / "examples" / "content" / "cat_chelsea.jpg"
OTHER = ROOT / "src" / "stylist" / "examples" / "content" / "astronaut_eileen_collins.jpg"
PAINTING = ROOT / "src" / "stylist" / "examples" / "style" / "the_scream.jpg"
FPS = 12


def write_film(path: Path, frames, fps: int = FPS, audio: bool = True, rotation: int = 0, full_range=False) -> Path:
    """An H.264 MP4 of ``frames`` (H x W x 3 uint8) with, unless ``audio`` is off, a 440 Hz AAC track as long."""
    c = av.open(str(path), "w")
    v = None
    n = 0
    for arr in frames:
        if v is None:
            v = c.add_stream("libx264", rate=fps)
            odd = arr.shape[0] % 2 or arr.shape[1] % 2  # 4:2:0 needs even sides; a phone's odd crop is 4:4:4
            v.height, v.width, v.pix_fmt = arr.shape[0], arr.shape[1], "yuv444p" if odd else "yuv420p"
            v.codec_context.color_range = 2 if full_range else 1
            if rotation:
                v.set_display_rotation(rotation)
            a = c.add_stream("aac", rate=16000) if audio else None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
        frame = frame.reformat(format=v.pix_fmt, dst_color_range=2 if full_range else 1)
        c.mux(v.encode(frame))
        n += 1
    c.mux(v.encode(None))
    if audio:
        t = np.arange(int(16000 * n / fps)) / 16000
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(wave), 1024):
            f = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, k
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    c.close()
    return path


def uint8(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()


def panned(n: int = 12, h: int = 40, w: int = 48, step: int = 2):
    """A photo panned right to left by ``step`` px a frame."""
    photo = resize(load_tensor(PHOTO), (h + 20, w + step * n + 20))
    return [uint8(photo[..., 10 : 10 + h, 10 + step * i : 10 + step * i + w]) for i in range(n)]


def crossing_then_cut(n: int = 8, h: int = 40, w: int = 48):
    """Two squares crossing on a grey ground for ``n`` frames, then a cut to a photo for 4."""
    frames = []
    for i in range(n):
        a = np.full((h, w, 3), 110, np.uint8)
        a[8:20, 2 + 4 * i : 14 + 4 * i] = (220, 40, 40)
        a[22:34, w - 14 - 4 * i : w - 2 - 4 * i] = (40, 40, 220)
        frames.append(a)
    other = uint8(resize(load_tensor(OTHER), (h, w)))
    return frames + [other] * 4


def audio_packets(path: Path) -> tuple[int, str]:
    c = av.open(str(path))
    digest, n = hashlib.sha1(), 0
    for packet in c.demux(c.streams.audio[0]):
        if packet.size:
            digest.update(bytes(packet))
            n += 1
    c.close()
    return n, digest.hexdigest()


def film_facts(path: Path) -> dict:
    c = av.open(str(path))
    v = c.streams.video[0]
    frames = list(c.decode(v))
    facts = {
        "frames": len(frames),
        "rate": v.average_rate,
        "duration": c.duration / 1e6,
        "size": (frames[0].height, frames[0].width),
        "rotation": frames[0].rotation,
        "color_range": int(frames[0].color_range),
        "codec": v.codec_context.name,
        "pix_fmt": v.format.name,
        "audio": len(c.streams.audio),
    }
    c.close()
    return facts


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "pan": write_film(d / "pan.mp4", panned()),
        "cut": write_film(d / "cut.mp4", crossing_then_cut(), audio=False),
    }


def run(args: list[str], capsys) -> tuple[int, str]:
    code = main(["video", *(str(a) for a in args)])
    return code, capsys.readouterr().err


# --- the file as users expect ---------------------------------------------------------------------------


def test_film_keeps_frames_rate_duration_and_audio(clips, tmp_path, capsys) -> None:
    out = tmp_path / "out.mp4"
    code, err = run([clips["pan"], "--model", "starry-night", "-o", out, "-q"], capsys)
    assert code == 0, err
    assert err.strip().startswith(f"wrote {out} (12 frames 48x40") and "warping error" in err
    src, res = film_facts(clips["pan"]), film_facts(out)
    assert res["frames"] == src["frames"] == 12
    assert res["rate"] == src["rate"] == FPS
    assert abs(res["duration"] - src["duration"]) < 1 / FPS
    assert (res["codec"], res["pix_fmt"]) == ("h264", "yuv420p")
    assert audio_packets(out) == audio_packets(clips["pan"])  # copied packet for packet, not re-encoded
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_start_duration_odd_size_rotation_and_full_range(tmp_path, capsys) -> None:
    odd = write_film(tmp_path / "odd.mp4", panned(10, 33, 45), audio=True)
    out = tmp_path / "piece.mp4"
    code, err = run([odd, "--model", "starry-night", "--start", "0.25", "--duration", "0.5", "-o", out, "-q"], capsys)
    assert code == 0, err
    facts = film_facts(out)
    assert facts["frames"] == 6 and facts["size"] == (34, 46)  # yuv420p: padded to even sides by the edge pixel
    assert 0 < audio_packets(out)[0] < audio_packets(odd)[0]

    # A phone film: stored 48x32 with a 90-degree display rotation, full-range colour.
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:10, :10] = 255  # white at the stored top left: shown at the bottom left
    rotated = write_film(tmp_path / "phone.mp4", [stored] * 3, audio=False, rotation=90, full_range=True)
    up = tmp_path / "upright"
    code, err = run([rotated, "--model", "starry-night", "--temporal", "0", "-o", up, "-q"], capsys)
    frames = sorted(up.iterdir())
    assert code == 0 and len(frames) == 3, err
    first = load_tensor(frames[0])
    assert first.shape[-2:] == (48, 32)
    facts = film_facts(
        write_film(tmp_path / "grey.mp4", [np.full((32, 48, 3), 250, np.uint8)] * 2, audio=False, full_range=True)
    )
    assert facts["color_range"] == 2
    reader = FilmReader(tmp_path / "grey.mp4")
    frame = next(reader.frames())[0]
    reader.close()
    assert abs(float(frame.mean()) * 255 - 250) < 3  # full range read as full range (not stretched)
    out_full = tmp_path / "full.mp4"
    code, err = run([tmp_path / "grey.mp4", "--model", "starry-night", "-o", out_full, "-q"], capsys)
    assert code == 0 and film_facts(out_full)["color_range"] == 2, err


def test_folder_of_frames_in_and_out(clips, tmp_path, capsys) -> None:
    frames = tmp_path / "frames"
    code, err = run([clips["pan"], "--style", PAINTING, "--size", "32", "-o", frames, "-q"], capsys)
    assert code == 0, err
    files = sorted(frames.iterdir())
    assert [f.name for f in files[:2]] == ["frame_000001.png", "frame_000002.png"] and len(files) == 12
    film = tmp_path / "again.mp4"
    code, err = run([frames, "--model", "starry-night", "--fps", "6", "-o", film, "-q"], capsys)
    assert code == 0, err
    facts = film_facts(film)
    assert facts["frames"] == 12 and facts["rate"] == 6 and abs(facts["duration"] - 2.0) < 0.2


def test_help_lists_every_option(capsys) -> None:
    assert main(["video", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--style", "--method", "--temporal", "--crf", "--codec", "--start", "--resume"):
        assert flag in text


@pytest.mark.parametrize(
    "case",
    [
        "no-video",
        "damaged",
        "truncated",
        "codec",
        "not-found",
        "exists",
        "model-and-style",
        "temporal",
        "image",
        "folder-is-a-file",
        "start-past-the-end",
        "broken-frame",
    ],
)
def test_bad_inputs_are_refused_in_one_line(case, clips, tmp_path, capsys) -> None:
    src, extra = clips["pan"], ["--model", "starry-night"]
    out = tmp_path / "out.mp4"
    if case == "no-video":
        src = tmp_path / "sound.m4a"
        c = av.open(str(src), "w", format="mp4")
        a = c.add_stream("aac", rate=16000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 16000, 0
        c.mux(a.encode(f))
        c.mux(a.encode(None))
        c.close()
    elif case == "damaged":
        src = tmp_path / "noise.mp4"
        src.write_bytes(os.urandom(5000))
    elif case == "truncated":
        src = tmp_path / "cut_short.mp4"
        src.write_bytes(clips["pan"].read_bytes()[:300])
    elif case == "codec":
        extra += ["--codec", "prores"]
    elif case == "not-found":
        src = tmp_path / "missing.mp4"
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "model-and-style":
        extra += ["--style", PAINTING]
    elif case == "temporal":
        extra += ["--temporal", "1.5"]
    elif case == "image":
        src = ROOT / "examples" / "content" / "cat_chelsea.jpg"
    elif case == "start-past-the-end":
        extra += ["--start", "60"]
    elif case == "broken-frame":  # a folder of frames, the third one broken: refused before any work
        src = tmp_path / "frames_in"
        src.mkdir()
        for i in range(4):
            Image.new("RGB", (24, 16), (60 * i, 90, 120)).save(src / f"f{i}.png")
        (src / "f2.png").write_bytes(b"not a png")
        out = tmp_path / "frames_out"
    target: object = out
    if case == "folder-is-a-file":
        out = tmp_path / "frames"
        out.write_bytes(b"keep me")
        target = f"{out}/"  # meant as a folder of frames, but it is a file
    code, err = run([src, *extra, "-o", target, "-q"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err
    says = {
        "image": "holds no video frames",
        "folder-is-a-file": "is a file, not a folder",
        "start-past": "lasts",
        "broken-frame": "f2.png: frame 3 of the folder",
        "damaged": "damaged or not a film (FFmpeg: ",
    }
    assert all(text in lines[0] for key, text in says.items() if case.startswith(key)), lines[0]
    assert (out.read_bytes() == b"keep me") if case in ("exists", "folder-is-a-file") else not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_ctrl_c_writes_a_playable_film_of_the_frames_so_far(clips, tmp_path, capsys, monkeypatch) -> None:
    import stylist.cli.video as cli_video

    real = cli_video.stylize_video

    def interrupted(*args, callback, **kwargs):
        def on_frame(p):
            if p.frame == 4:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the terminal
            return callback(p)

        return real(*args, callback=on_frame, **kwargs)

    monkeypatch.setattr(cli_video, "stylize_video", interrupted)
    out = tmp_path / "stopped.mp4"
    code, err = run([clips["pan"], "--model", "starry-night", "-o", out, "-q"], capsys)
    assert code == 130, err
    assert "interrupted" in err and film_facts(out)["frames"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --- flicker ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["model", "adain"])
def test_consistent_output_flickers_less_than_frame_by_frame(method, clips) -> None:
    inputs = list(read_frames(clips["pan"]))
    kwargs = {"model": "starry-night"} if method == "model" else {"style": PAINTING}
    errors = {}
    for temporal in (0.0, 0.7):
        outs = list(stylize_frames(inputs, VideoConfig(temporal=temporal, precision="fp32"), **kwargs))
        errors[temporal] = flow.film_warping_error(outs, inputs)
    assert errors[0.7] < 0.5 * errors[0.0], errors


def test_optimize_with_the_temporal_loss_flickers_less(clips) -> None:
    inputs = list(read_frames(clips["pan"]))[:4]
    inputs = [resize(f, (24, 28)) for f in inputs]
    errors = {}
    for temporal in (0.0, 1.0):
        cfg = VideoConfig(method="optimize", temporal=temporal, iterations=6, precision="fp32")
        outs = list(stylize_frames(inputs, cfg, style=PAINTING))
        errors[temporal] = flow.film_warping_error(outs, inputs)
    assert errors[1.0] < 0.5 * errors[0.0], errors


def test_a_scene_cut_restarts_consistency(clips) -> None:
    cuts = []
    result = VideoResult()
    frames = read_frames(clips["cut"])
    for _ in stylize_frames(
        frames, VideoConfig(), model="starry-night", callback=lambda p: cuts.append(p.cut), result=result
    ):
        pass
    assert cuts == [False] * 8 + [True] + [False] * 3
    assert result.cuts == 1 and result.frames == 12


def test_temporal_loss_is_ruder_et_al_eq7() -> None:
    from stylist.losses import temporal_loss

    x = torch.zeros(1, 3, 2, 2)
    w = torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert float(temporal_loss(x, w, mask)) == pytest.approx(3 / 12)  # one pixel of four, three channels


def test_warp_moves_pixels_by_the_flow() -> None:
    image = torch.rand(1, 3, 8, 10)
    shift = torch.zeros(1, 2, 8, 10)
    shift[:, 0] = 2.0  # read two pixels to the right
    assert torch.allclose(flow.warp(image, shift)[..., :, :8], image[..., :, 2:], atol=1e-5)


# --- streaming and the API ---------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc to read the memory in use")
def test_memory_does_not_grow_with_the_film(tmp_path) -> None:
    n = 2000
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (16, 60, 3), dtype=np.uint8)
    film = write_film(tmp_path / "long.mp4", (base[:, i % 40 : i % 40 + 16] for i in range(n)), fps=50, audio=True)
    seen = {}

    def on_frame(p) -> None:
        if p.frame in (300, n):
            seen[p.frame] = rss_mb()

    result = stylize_video(film, tmp_path / "long_out.mp4", VideoConfig(), model="starry-night", callback=on_frame)
    assert result.frames == n
    # Every frame kept would be 2000 x 16 x 16 x 3 x 4 bytes (6 MB) of tensors and 1.5 MB of pixels
    # (more with the flows and masks): the growth from frame 300 to 2000 stays within allocator noise.
    assert seen[n] - seen[300] < 2, seen  # measured: 0.3 MB; keeping only the results: 3.3 MB


def test_api_frames_in_frames_out(clips, tmp_path) -> None:
    inputs = list(read_frames(clips["pan"]))[:3]
    outs = list(stylist.video(iter(inputs), model="starry-night", temporal=0.5))
    assert len(outs) == 3 and outs[0].shape == (1, 3, 40, 48) and 0 <= float(outs[0].min()) <= float(outs[0].max()) <= 1
    result = stylist.video(clips["pan"], tmp_path / "api.mp4", style=PAINTING, size=32, duration=0.5)
    assert result.frames == 6 and (tmp_path / "api.mp4").exists() and result.warping_error is not None
    assert Fraction(film_facts(tmp_path / "api.mp4")["rate"]) == FPS
    assert stylist.films.Film is not None and stylist.video is stylist.api.video


def test_resume_carries_on_a_stopped_film(clips, tmp_path) -> None:
    out = tmp_path / "long.mp4"
    cfg = VideoConfig(temporal=0.7)
    stopped = stylize_video(clips["pan"], out, cfg, model="starry-night", callback=lambda p: p.frame >= 5)
    assert stopped.stopped and stopped.frames == 5 and film_facts(out)["frames"] == 5
    assert (tmp_path / "long.mp4.partial.json").exists()
    with pytest.raises(stylist.errors.ConfigError, match="other options"):
        stylize_video(clips["pan"], out, VideoConfig(temporal=0.2), model="starry-night", resume=True)
    done = stylize_video(clips["pan"], out, cfg, model="starry-night", resume=True)
    assert done.frames == 12 and not done.stopped and not (tmp_path / "long.mp4.partial.json").exists()
    facts, whole = film_facts(out), film_facts(clips["pan"])
    assert facts["frames"] == 12 and abs(facts["duration"] - whole["duration"]) < 1 / FPS
    assert audio_packets(out) == audio_packets(clips["pan"])
    # The frames after the stop match a run that was never stopped (the first ones went through the
    # encoder twice, so the consistency carries on from a slightly different frame: close, not equal).
    straight = list(stylize_frames(read_frames(clips["pan"]), cfg, model="starry-night"))
    resumed = list(read_frames(out))
    assert float((resumed[-1][..., :40, :48] - straight[-1]).abs().mean()) < 0.03


# --- the web app's video tab, in a real browser (as tests/test_web.py) -------------------------------------


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    pytest.importorskip("gradio", reason='the web app needs gradio (pip install -e ".[web]")')
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium")
    import socket

    from stylist.web import start, stop_server
    from stylist.web_limits import WebLimits

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    saved = os.environ.get("GRADIO_TEMP_DIR")
    demo, url, root = start("127.0.0.1", port, WebLimits(max_video_seconds=1.0))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield url, browser
        browser.close()
    stop_server(demo, root)
    if saved is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved


def test_web_video_tab_stylises_a_clip_with_progress_and_download(web, clips, tmp_path) -> None:
    url, browser = web
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#run")  # the page is up (the image tab shows first)
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-upload input[type=file]").set_input_files(str(clips["pan"]))
    page.get_by_label("AdaIN (any painting)").check()
    page.locator("#video-style-upload input[type=file]").set_input_files(str(PAINTING))
    page.wait_for_selector("#video-style-view img")
    page.click("#video-run")
    page.get_by_text("Done").wait_for()
    page.screenshot(path=str(tmp_path / "video_tab.png"), full_page=True)
    text = page.locator("#video-status").inner_text()
    assert "12 frames" in text and "warping error" in text  # the first 1 s of the clip, at 12 frames/s
    assert page.locator("#video-frame img").count() == 1  # the latest frame was shown as it went
    link = page.locator("#video-download a").first
    with page.expect_download() as wait:
        link.click()
    film = tmp_path / "downloaded.mp4"
    wait.value.save_as(film)
    assert film_facts(film)["frames"] == 12 and audio_packets(film)[0] > 0

    context.close()

    # A file that is not a film is refused in one line in the page (a new tab: the upload box holds the film).
    bad = tmp_path / "not_a_film.mp4"
    bad.write_bytes(b"\x00" * 2000)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector("#run")
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-upload input[type=file]").set_input_files(str(bad))
    page.click("#video-run")
    page.get_by_text("not a readable video").wait_for()
    assert "Traceback" not in page.content()
    context.close()


def test_a_film_that_cannot_be_written_is_one_line_and_leaves_nothing(clips, tmp_path) -> None:
    """A full disk, simulated without root: a child process's file-size limit makes writes over 20 kB
    fail with EFBIG ("File too large"), as a full disk fails with ENOSPC."""

    old = tmp_path / "film.mp4"
    old.write_bytes(b"the user's older film")
    child = (
        "import resource, signal, sys\n"
        "from stylist.cli import main\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        f"sys.exit(main(['video', {str(clips['pan'])!r}, '--model', 'starry-night', '--crf', '0', "
        f"'-o', {str(old)!r}, '--overwrite', '-q']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "film.mp4: cannot write the film (File too large)" in lines[0]
    assert old.read_bytes() == b"the user's older film"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_coarse_motion_averages_the_flow_and_trusts_only_whole_cells() -> None:
    backward = torch.zeros(1, 2, 6, 10)
    backward[:, 0, :, :4] = 8.0  # 8 px to the right in the first cell column: 2 cells of 4 px
    mask = torch.ones(1, 1, 6, 10)
    mask[..., 0, 5] = 0.0  # one untrusted pixel in the second cell column
    coarse, trusted = flow.coarse_motion(flow.Motion(backward, mask, False), (2, 3), 4)
    assert coarse.shape == (1, 2, 2, 3) and trusted.shape == (1, 1, 2, 3)
    assert torch.allclose(coarse[0, 0, :, 0], torch.tensor([2.0, 2.0])) and float(coarse[0, 1].abs().max()) == 0
    # The frame padded to 8 x 12 at the bottom and right: the last row and column of cells hold padding.
    assert trusted[0, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    # 4 px added at the top and left (AdaIN's edge margin): the frame starts one cell in.
    coarse, trusted = flow.coarse_motion(flow.Motion(backward, mask, False), (3, 4), 4, before=4)
    assert float(coarse[0, 0, 1, 1]) == 2.0 and float(coarse[0, 0, 1, 0]) == 2.0  # the edge's flow repeated
    assert trusted[0, 0, 0].tolist() == [0.0] * 4 and trusted[0, 0, :, 0].tolist() == [0.0] * 3
    assert float(trusted[0, 0, 1, 1]) == 1.0


def test_feed_forward_features_blended_along_the_motion_flicker_less(clips) -> None:
    from stylist import films

    inputs = list(read_frames(clips["pan"]))
    cfg = VideoConfig(temporal=0.7, precision="fp32")
    net = films._load_model("starry-night", cfg)
    errors = {}
    for name, stylizer in (
        ("output blend", films._OnePass(lambda f: net.stylize(f), 0.7)),
        ("features too", films._BlendedFeatures(lambda f, b: net.stylize(f, on_features=b), 4, lambda h, w: 0, 0.7)),
    ):
        tracker = flow.MotionTracker()
        outs = [stylizer(f, tracker(f)) for f in inputs]
        errors[name] = flow.film_warping_error(outs, inputs)
    assert errors["features too"] < 0.9 * errors["output blend"], errors
