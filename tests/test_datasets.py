"""The data side of training (stylist.datasets): several folders, per-artist and per-file sampling
from a CSV, exclusion lists, CSV errors, and bit-exact resume of a run that samples by artist.

Draw frequencies are checked against their analytic expectation: with per-artist weights every
artist has probability 1/A per draw, so over n seeded draws its share lies within a few binomial
standard deviations sqrt(p (1 - p) / n) of 1/A.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from stylist.checkpoint import load_checkpoint, save_checkpoint
from stylist.datasets import (
    Batches,
    CropDataset,
    excluded_names,
    gather_images,
    sampling_weights,
)
from stylist.errors import ConfigError
from stylist.image import load_tensor, resize_long_side, to_pil
from stylist.train_decoders import DecoderTrainConfig, train_decoder
from stylist.training import TrainProgress

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = sorted((ROOT / "examples/content").glob("*.jpg"))
PAINTINGS = sorted((ROOT / "examples/style").glob("*.jpg"))


def solid(path: Path, value: int, size: tuple[int, int] = (20, 16)) -> Path:
    """A flat image whose red channel tells which file a crop came from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 0, 0)).save(path)
    return path


@pytest.fixture
def paintings(tmp_path: Path) -> dict[str, Path]:
    """Two folders of flat 'paintings': artist A has three, B one, and one file the CSV does not list."""
    a = tmp_path / "set1"
    b = tmp_path / "set2"
    files = {
        "a1": solid(a / "a1.png", 10),
        "a2": solid(a / "a2.png", 20),
        "a3": solid(a / "sub" / "a3.png", 30),
        "b1": solid(b / "b1.png", 40),
        "c1": solid(b / "c1.png", 50),  # not in the CSV: an artist of its own
    }
    (b / "broken.jpg").write_bytes(b"not a jpeg")  # skipped and counted
    csv = tmp_path / "paintings.csv"
    csv.write_text(
        "file,artist,title\nset1/a1.png,A,x\nset1/a2.png,A,y\nset1/sub/a3.png,A,z\nb1.png,B,w\nmissing.png,D,gone\n"
    )
    return {"root": tmp_path, "set1": a, "set2": b, "csv": csv, **files}


# --- folders ------------------------------------------------------------------------------------------


def test_several_folders_are_gathered_once_each_and_damaged_files_counted(paintings) -> None:
    files, skipped = gather_images([paintings["set1"], paintings["set2"]], "--style")
    assert [f.name for f in files] == ["a1.png", "a2.png", "a3.png", "b1.png", "c1.png"] and skipped == 1
    # A folder inside another one, or named twice: each file still once.
    again, _ = gather_images([paintings["set1"], paintings["set1"] / "sub", str(paintings["set1"])])
    assert [f.name for f in again] == ["a1.png", "a2.png", "a3.png"]
    assert gather_images(str(paintings["set1"]))[0] == again  # one folder as a string
    with pytest.raises(ConfigError, match="nowhere: --style folder not found"):
        gather_images([paintings["set1"], paintings["root"] / "nowhere"], "--style")
    with pytest.raises(ConfigError, match="give --content FOLDER"):
        gather_images([], "--content")


# --- sampling weights ------------------------------------------------------------------------------------


def test_artist_weights_give_every_artist_the_same_share(paintings) -> None:
    files, _ = gather_images([paintings["set1"], paintings["set2"]])
    weights = sampling_weights(files, paintings["csv"])
    # A: three files of 1/3; B: one of 1; c1 is unlisted (its own artist): 1.
    assert weights == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0])
    dataset = CropDataset(files, 8, seed=3, repeat=400, weights=weights)  # 2000 draws an epoch
    artist = {10: "A", 20: "A", 30: "A", 40: "B", 50: "C"}
    counts: Counter[str] = Counter()
    for epoch in range(2):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            counts[artist[round(float(dataset[i][0][0, 0, 0]) * 255)]] += 1
    n = sum(counts.values())
    sd = math.sqrt((1 / 3) * (2 / 3) / n)
    for name in "ABC":
        assert abs(counts[name] / n - 1 / 3) < 4 * sd, (counts, sd)
    # Uniform draws would give A 3/5 of them; per-artist sampling gives it 1/3.
    assert counts["A"] / n < 0.4


def test_weight_column_draws_in_proportion_and_zero_never(paintings, tmp_path) -> None:
    files, _ = gather_images([paintings["set1"]])
    table = tmp_path / "w.csv"
    table.write_text("file,weight,artist\na1.png,0,A\na2.png,1,A\na3.png,3,A\n")  # weight wins over artist
    weights = sampling_weights(files, table)
    assert weights == [0.0, 1.0, 3.0]
    dataset = CropDataset(files, 8, seed=0, repeat=1000, weights=weights)
    drawn = Counter(int(i) for i in dataset.drawn.tolist())  # type: ignore[union-attr]
    n = len(dataset)
    assert drawn[0] == 0
    sd = math.sqrt(0.25 * 0.75 / n)
    assert abs(drawn[1] / n - 0.25) < 4 * sd and abs(drawn[2] / n - 0.75) < 4 * sd


def test_draws_depend_on_seed_and_epoch_only(paintings) -> None:
    files, _ = gather_images([paintings["set1"], paintings["set2"]])
    weights = sampling_weights(files, paintings["csv"])
    one = CropDataset(files, 8, seed=5, repeat=20, weights=weights)
    two = CropDataset(files, 8, seed=5, repeat=20, weights=weights)
    assert torch.equal(one.drawn, two.drawn) and torch.equal(one[7][0], two[7][0])
    first = one.drawn.clone()  # type: ignore[union-attr]
    one.set_epoch(1)
    assert not torch.equal(first, one.drawn)
    one.set_epoch(0)
    assert torch.equal(first, one.drawn)
    other_seed = CropDataset(files, 8, seed=6, repeat=20, weights=weights)
    assert not torch.equal(first, other_seed.drawn)
    # Without weights item i is file i mod n, as before weights existed.
    plain = CropDataset(files, 8, seed=5, repeat=2)
    assert [plain.file_index(i) for i in range(len(plain))] == list(range(5)) * 2


def test_excluded_names_take_names_and_csv_lists(paintings, tmp_path) -> None:
    held = tmp_path / "held.csv"
    held.write_text("file,artist\npaintings/a2.png,A\nb1.png,B\n")
    assert excluded_names(["a1.png", str(held)]) == {"a1", "a2", "b1"}  # a1.webp is a1.png re-encoded


@pytest.mark.parametrize(
    "text, needle",
    [
        (None, "paintings.csv: --style-csv CSV file not found"),
        ("name,artist\na1.png,A\n", "has no column file"),
        ("file,title\nset1/a1.png,x\n", "needs a column 'artist'"),
        ("file,weight\nset1/a1.png,heavy\n", "weight 'heavy' is not a number >= 0"),
        ("file,weight\nset1/a1.png,-1\n", "weight '-1' is not a number >= 0"),
        ("file,weight\nset1/a1.png,0\nset1/a2.png,0\nset1/sub/a3.png,0\n", "every image has weight 0"),
        ("file,artist\nelsewhere/z.png,A\n", "names none of the 3 images"),
        ("file,artist\n", "has a header but no rows"),
        (b"file,artist\n\xff\xfe,A\n", "save it as UTF-8 CSV"),
    ],
)
def test_csv_errors_are_one_line(paintings, tmp_path, text, needle) -> None:
    table = tmp_path / "sub" / "paintings.csv"
    table.parent.mkdir()
    if isinstance(text, bytes):
        table.write_bytes(text)
    elif text is not None:
        table.write_text(text.replace("set1/", "../set1/"))
    files, _ = gather_images([paintings["set1"]])
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(")) as caught:
        sampling_weights(files, table)
    assert "\n" not in str(caught.value)


def test_progress_reports_time_left_at_its_pace_or_by_the_time_limit() -> None:
    from stylist.cli._common import rate_note

    def progress(**kw) -> TrainProgress:
        base = dict(step=30, total=110, epoch=0, losses=None, lr=1e-3, elapsed=20.0, images_per_s=12.0, skipped=0)
        return TrainProgress(**{**base, **kw}, checkpoint=dict, first_step=10)

    assert progress().seconds_left == pytest.approx(80.0)  # 20 steps in 20 s, 80 to go
    assert progress(time_limit=50.0).seconds_left == pytest.approx(30.0)  # the limit comes first
    assert progress(step=10).seconds_left is None  # no step of this part done yet
    assert rate_note(progress()) == "12.0 img/s, 1:20 left"
    assert rate_note(progress(total=4000)) == "12.0 img/s, 1:06:10 left"  # 3970 s


# --- training with them ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    for i, p in enumerate(PHOTOS * 2):
        folder = d / ("photos1" if i % 2 else "photos2")
        folder.mkdir(exist_ok=True)
        to_pil(resize_long_side(load_tensor(p), 48)).save(folder / f"p{i}.jpg")
    rows = ["file,artist"]
    for i, p in enumerate(PAINTINGS):
        folder = d / ("paint1" if i < 2 else "paint2")
        folder.mkdir(exist_ok=True)
        to_pil(resize_long_side(load_tensor(p), 64)).save(folder / p.name)
        rows.append(f"{folder.name}/{p.name},{'one' if i < 3 else 'two'}")
    (d / "paintings.csv").write_text("\n".join(rows) + "\n")
    return {"root": d}


def adain_cfg(d: Path, steps: int) -> DecoderTrainConfig:
    return DecoderTrainConfig(
        method="adain",
        content=(str(d / "photos1"), str(d / "photos2")),
        style=(str(d / "paint1"), str(d / "paint2")),
        style_csv=str(d / "paintings.csv"),
        steps=steps,
        batch_size=2,
        image_size=32,
        workers=0,
        log_every=1,
        device="cpu",
        precision="fp32",
        lr=1e-3,
    )


def test_decoder_training_with_artist_sampling_resumes_bit_exactly(data) -> None:
    d = data["root"]
    straight = train_decoder(adain_cfg(d, 4))
    half = train_decoder(adain_cfg(d, 2))
    save_checkpoint(d / "half.ckpt", half.checkpoint())
    resumed = train_decoder(adain_cfg(d, 4), resume=load_checkpoint(d / "half.ckpt"))
    assert resumed.step == 4 and resumed.history == straight.history
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_batches_of_a_weighted_dataset_resume_mid_epoch(paintings) -> None:
    files, _ = gather_images([paintings["set1"], paintings["set2"]])
    weights = sampling_weights(files, paintings["csv"])

    def take(start: int, count: int) -> list[torch.Tensor]:
        batches = Batches(CropDataset(files, 8, seed=1, repeat=2, weights=weights), 2, seed=1, workers=0)
        it = batches.from_step(start)
        return [next(it)[1].images for _ in range(count)]  # type: ignore[misc]

    whole = take(0, 12)  # 5 batches an epoch: this crosses two epoch boundaries
    assert all(torch.equal(a, b) for a, b in zip(whole[7:], take(7, 5)))


def test_train_decoder_cli_takes_several_folders_and_refuses_a_bad_csv(data, tmp_path, capsys) -> None:
    from stylist.cli import main

    d = data["root"]
    out = tmp_path / "dec.safetensors"
    base = ["train-decoder", "--content", str(d / "photos1"), str(d / "photos2"), "--style", str(d / "paint1")]
    base += [str(d / "paint2"), "-o", str(out), "--steps", "1", "--batch-size", "2", "--image-size", "32"]
    base += ["--workers", "0", "--device", "cpu", "-q", "--preview-every", "0", "--checkpoint-every", "0"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,weight\np.jpg,lots\n")
    assert main([*base, "--style-csv", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv" in err and "Traceback" not in err, err
    assert not out.exists()
    assert main([*base, "--style-csv", str(d / "paintings.csv")]) == 0
    assert out.exists()
    assert main([*base[:3], "--method", "wct", "-o", str(tmp_path / "w.safetensors"), "--style-csv", str(bad)]) == 2
    assert "only --method adain" in capsys.readouterr().err


def test_an_exclusion_list_leaves_its_paintings_out_whatever_their_format(data, tmp_path) -> None:
    d = data["root"]
    every = tmp_path / "held.csv"  # the paintings as .png: the training copies are .jpg
    names = [p.stem + ".png" for p in (d / "paint1").iterdir()] + [p.stem + ".png" for p in (d / "paint2").iterdir()]
    every.write_text("file,artist\n" + "".join(f"{n},x\n" for n in names))
    cfg = adain_cfg(d, 1)
    with pytest.raises(ConfigError, match="every painting is excluded by --exclude-styles"):
        train_decoder(DecoderTrainConfig(**{**vars(cfg), "exclude_styles": (str(every),)}))


@pytest.mark.parametrize("command", ["train", "train-decoder"])
def test_a_missing_folder_among_several_is_the_one_line_error(data, tmp_path, capsys, command) -> None:
    from stylist.cli import main

    d = data["root"]
    out = tmp_path / "m.safetensors"
    folders = [str(d / "photos1"), str(tmp_path / "nowhere")]
    argv = [command, "--content", *folders, "-o", str(out), "--device", "cpu", "--steps", "1", "--workers", "0"]
    argv += ["--style", str(PAINTINGS[0])] if command == "train" else ["--method", "wct"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_held_out_paintings_share_no_artist_with_training() -> None:
    """benchmarks/heldout_paintings.csv is what docs/models/heldout_paintings.py chooses from the shared
    data: 50 or more paintings, a third or more of each label, and every painting of each chosen artist."""
    import csv
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "models"))
    import heldout_paintings

    data = heldout_paintings.default_data()
    if not (data / "paintings.csv").is_file():
        pytest.skip(f"the shared data is not at {data}")
    with open(ROOT / "benchmarks" / "heldout_paintings.csv", newline="", encoding="utf-8") as f:
        committed = list(csv.DictReader(f))
    chosen = heldout_paintings.choose(data / "paintings.csv")
    assert sorted(committed, key=lambda r: r["file"]) == sorted(chosen, key=lambda r: r["file"])
    figurative = sum(r["label"] == "figurative" for r in committed)
    assert len(committed) >= 50 and 3 * min(figurative, len(committed) - figurative) >= len(committed)
    held_artists = {r["artist"] for r in committed}
    with open(data / "paintings.csv", newline="", encoding="utf-8") as f:
        training = [r for r in csv.DictReader(f) if Path(r["file"]).name not in {c["file"] for c in committed}]
    assert not held_artists & {r["artist"] for r in training}
    assert not held_artists & heldout_paintings.TRAINED_ARTISTS


def test_rows_naming_no_image_are_warned_about_in_one_line(paintings, tmp_path) -> None:
    """A typo in the CSV (or a file left out on purpose) is said, not silently dropped."""
    from stylist.errors import StylistWarning

    table = tmp_path / "sub" / "paintings.csv"
    table.parent.mkdir()
    table.write_text("file,artist\n../set1/a1.png,A\n../set1/nothere.png,B\nmissing.jpg,C\n")
    files, _ = gather_images([paintings["set1"]])
    with pytest.warns(StylistWarning, match=r"2 rows name no image in the folders \(first: ../set1/nothere.png\)"):
        weights = sampling_weights(files, table)
    assert len(weights) == len(files)
