"""The one training loop (stylist.training.fit) on a tiny network, and the one resume rule.

The loop's behaviour does not depend on VGG: a two-convolution network learns to copy random
images, which keeps these tests to a second or two. What the methods feed into it (their losses,
bit-exact resume over real crops) is tested in test_feedforward.py and test_arbitrary.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from stylist.errors import ConfigError, StylistError
from stylist.feedforward import FeedForwardConfig
from stylist.feedforward import resume_config as feedforward_resume_config
from stylist.train_decoders import DecoderTrainConfig
from stylist.train_decoders import resume_config as decoder_resume_config
from stylist.training import (
    CHECKPOINT_LAYOUT,
    Batch,
    FitConfig,
    Interrupted,
    check_checkpoint,
    fit,
    resume_options,
)

ROOT = Path(__file__).resolve().parent.parent
STYLE = ROOT / "examples" / "style" / "starry_night.jpg"


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))


def batches(start: int):
    """Batches that depend only on their step (as the real ones do on seed, epoch and index)."""
    step = start
    while True:
        images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(step))
        yield step // 5, Batch(images, bad=1 if step == 0 else 0)
        step += 1


def loss_fn(net: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    # torch.rand draws from the global RNG: a resumed run matches only if fit restores it.
    noise = 0.01 * torch.rand(())
    terms = {"copy": (net(images).float() - images).pow(2).mean() + noise}
    terms["total"] = terms["copy"]
    return terms


def config(steps: int = 6, **options) -> FitConfig:
    return FitConfig(steps=steps, lr=1e-2, device=torch.device("cpu"), kind="test", config={"a": (1, 2)}, **options)


def test_fit_trains_records_and_checkpoints_in_one_layout() -> None:
    seen = []
    result = fit(tiny_net(), loss_fn, batches, config(6, skipped=3), lambda p: seen.append(p) and None)
    assert result.step == 6 and result.stopped == "done" and [p.step for p in seen] == [1, 2, 3, 4, 5, 6]
    assert [row["step"] for row in result.history] == [1, 2, 3, 4, 5, 6]
    assert result.history[-1]["copy"] < result.history[0]["copy"]
    assert seen[-1].skipped == 4 and seen[-1].bad_files == 4  # 3 at the scan, 1 in the first batch
    state = result.state
    assert set(state) >= {"kind", "layout", "config", "model", "optimizer", "scaler", "step", "rng", "history"}
    assert state["layout"] == CHECKPOINT_LAYOUT and state["config"] == {"a": [1, 2]}  # tuples stored as lists
    assert not result.model.training


def test_interrupted_fit_resumes_bit_exactly() -> None:
    unbroken = fit(tiny_net(), loss_fn, batches, config(6))

    def interrupt_at_3(p):
        if p.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as caught:
        fit(tiny_net(), loss_fn, batches, config(6), interrupt_at_3)
    state = caught.value.state
    assert state["step"] == 3 and len(state["history"]) == 3
    torch.manual_seed(123)  # whatever happened in between: fit restores the RNG
    resumed = fit(tiny_net(), loss_fn, batches, config(6), resume=state)
    assert resumed.step == 6 and resumed.history == unbroken.history
    for a, b in zip(unbroken.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_logging_cadence_callback_stop_and_time_limit() -> None:
    seen = []
    result = fit(tiny_net(), loss_fn, batches, config(7, log_every=3), lambda p: seen.append(p.losses) and None)
    assert [s is not None for s in seen] == [False, False, True, False, False, True, True]  # and the last step
    stopped = fit(tiny_net(), loss_fn, batches, config(7), lambda p: p.step == 2)
    assert (stopped.step, stopped.stopped) == (2, "callback")
    timed = fit(tiny_net(), loss_fn, batches, config(7, time_limit=1e-9))
    assert (timed.step, timed.stopped) == (1, "time")
    assert result.step == 7


def test_fp16_goes_through_a_grad_scaler_and_resumes_it() -> None:
    """Float16 autocast gets a GradScaler (the old feed-forward loop had none); fp32 and bf16 need none."""
    fp16 = fit(tiny_net(), loss_fn, batches, config(3, dtype=torch.float16))
    assert fp16.precision == "fp16" and fp16.state["scaler"].get("scale", 0) > 0
    assert fit(tiny_net(), loss_fn, batches, config(1)).state["scaler"] == {}  # disabled: nothing to carry
    resumed = fit(tiny_net(), loss_fn, batches, config(4, dtype=torch.float16), resume=fp16.state)
    assert resumed.step == 4 and resumed.state["scaler"]["scale"] > 0


def test_a_non_finite_loss_is_one_line() -> None:
    def bad(net, images):
        total = net(images).mean() * float("nan")
        return {"total": total}

    with pytest.raises(StylistError, match="became nan at step 1"):
        fit(tiny_net(), bad, batches, config(2))


def test_checkpoints_of_another_kind_or_layout_are_refused() -> None:
    state = fit(tiny_net(), loss_fn, batches, config(1)).state
    assert check_checkpoint(state, "test", "a test") is state
    with pytest.raises(ConfigError, match="not a checkpoint of stylist train"):
        check_checkpoint(state, "stylist.train", "stylist train")
    old = {k: v for k, v in state.items() if k != "layout"}  # written before fit: layout 1
    with pytest.raises(ConfigError, match="layout 1.*start afresh"):
        check_checkpoint(old, "test", "a test")


def test_resume_rules_are_the_cores_for_every_method() -> None:
    saved = {"steps": 10, "style_weight": 10.0, "layers": ["a", "b"]}
    assert resume_options(saved, {"steps": 20, "layers": ("a", "b")}, ("steps",))["steps"] == 20
    with pytest.raises(ConfigError, match="--style-weight cannot change on resume.*10.0 but this run has 5.0"):
        resume_options(saved, {"style_weight": 5.0}, ("steps",))
    # Feed-forward (rules that lived in the CLI before) and decoder training use it alike.
    ff = {"kind": "stylist.train", "layout": CHECKPOINT_LAYOUT, "config": vars(FeedForwardConfig(style="s", data="d"))}
    assert feedforward_resume_config(ff, {"steps": 9}).steps == 9
    with pytest.raises(ConfigError, match="--image-size cannot change on resume"):
        feedforward_resume_config(ff, {"image_size": 128})
    dec = {
        "kind": "stylist.train-decoder",
        "layout": CHECKPOINT_LAYOUT,
        "config": vars(DecoderTrainConfig(content="c")),
    }
    assert decoder_resume_config(dec, {"steps": 5}).steps == 5
    with pytest.raises(ConfigError, match="--lr cannot change on resume"):
        decoder_resume_config(dec, {"lr": 1.0})
    with pytest.raises(ConfigError, match="not a checkpoint of stylist train-decoder"):
        decoder_resume_config(ff, {})


# --- what the methods take: several folders, a model to start from -----------------------------------------


@pytest.fixture(scope="module")
def two_folders(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from stylist.image import load_tensor, resize_long_side, to_pil

    root = tmp_path_factory.mktemp("ff")
    folders = [root / "a", root / "b"]
    for i, photo in enumerate(sorted((ROOT / "examples/content").glob("*.jpg")) * 2):
        folders[i % 2].mkdir(exist_ok=True)
        to_pil(resize_long_side(load_tensor(photo), 48)).save(folders[i % 2] / f"p{i}.jpg")
    return folders


def test_feedforward_training_takes_several_folders_and_starts_from_a_model(two_folders, tmp_path) -> None:
    from stylist.feedforward import save_model, train

    tiny = dict(steps=2, batch_size=2, image_size=32, width=8, workers=0, lr=5e-3, device="cpu", precision="fp32")
    first = train(FeedForwardConfig(style=str(STYLE), data=tuple(map(str, two_folders)), **tiny))
    assert first.metadata["images"] == "6"  # three photos in each folder
    save_model(first, tmp_path / "first.safetensors")
    seen: list[dict] = []

    def at_start(p) -> bool:
        seen.append({k: v.clone() for k, v in p.checkpoint()["model"].items()} if p.step == 1 else {})
        return True  # stop after the first step

    # The first step starts from the given model: after one step the weights are near it, not near random ones.
    cfg = FeedForwardConfig(style=str(STYLE), data=str(two_folders[0]), init=str(tmp_path / "first.safetensors"))
    cfg = FeedForwardConfig(**{**vars(cfg), **tiny, "lr": 1e-6})
    assert cfg.data == (str(two_folders[0]),)  # one folder as a string still works
    train(cfg, at_start)
    start = first.model.state_dict()
    assert all(torch.allclose(seen[0][k], start[k], atol=1e-4) for k in start)
    with pytest.raises(ConfigError, match="--init has norm instance and width 8, this run instance and 16"):
        train(FeedForwardConfig(**{**vars(cfg), "width": 16}))


# --- what training delivers: the shipped AdaIN decoder at --alpha 0 -------------------------------------------

# PSNR of the bundled lighthouse photo (in no training set) stylised at alpha 0 through the public path
# at 256 px, against the photo. The shipped decoder, retrained with an identity term (issue 16,
# docs/models/adain.md), scores 20.7 dB (its predecessor, trained on stylised targets only, 14.9: below a
# flat image of the photo's mean colour, 15.6); issue 16 asks 20 dB, and the floor holds it with 0.5 dB
# for arithmetic differences between machines.
ALPHA_ZERO_FLOOR_DB = 20.2


def test_shipped_adain_decoder_at_alpha_zero_reconstructs_the_photo_to_its_floor() -> None:
    from stylist.arbitrary import ArbitraryConfig, stylize_arbitrary
    from stylist.image import load_tensor, resize_long_side

    photo_path = ROOT / "examples" / "content" / "kodak_lighthouse_coast.jpg"
    cfg = ArbitraryConfig(alpha=0.0, size=256, device="cpu", precision="fp32")
    out = stylize_arbitrary(photo_path, STYLE, cfg)
    photo = resize_long_side(load_tensor(photo_path), 256)
    psnr = float(10 * torch.log10(1.0 / (out - photo).pow(2).mean()))
    assert psnr > ALPHA_ZERO_FLOOR_DB, f"alpha 0: {psnr:.2f} dB against the photo, floor {ALPHA_ZERO_FLOOR_DB} dB"
    # At alpha 0 the painting plays no part: another painting gives the same pixels.
    other = stylize_arbitrary(photo_path, ROOT / "examples" / "style" / "the_scream.jpg", cfg)
    assert torch.allclose(out, other, atol=1e-6)
