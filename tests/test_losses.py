"""Analytic checks of the loss functions: known tensors, hand computations, gradients."""

import pytest
import torch

from stylist.image import load_tensor, resize_long_side
from stylist.losses import (
    content_loss,
    gram,
    grid_loss,
    mean_std,
    style_layer_loss,
    style_loss,
    tv_loss,
)


def test_gram_of_known_tensor():
    # Two channels over four positions: rows (1, 2, 0, 1) and (0, 1, 1, 1).
    f = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]).view(1, 2, 2, 2)
    expected = torch.tensor([[6.0, 3.0], [3.0, 3.0]])
    assert torch.allclose(gram(f, "paper")[0], expected)
    assert torch.allclose(gram(f, "mean")[0], expected / (2 * 2 * 2))


def test_gram_channels_last_matches_contiguous():
    f = torch.randn(2, 5, 7, 3)
    assert torch.allclose(gram(f.contiguous(memory_format=torch.channels_last)), gram(f), atol=1e-6)


def test_gram_is_symmetric_and_batched():
    f = torch.randn(3, 4, 5, 6)
    g = gram(f, "paper")
    assert g.shape == (3, 4, 4)
    assert torch.allclose(g, g.transpose(1, 2))
    assert torch.allclose(g[1], f[1].reshape(4, -1) @ f[1].reshape(4, -1).T, atol=1e-5)


def test_content_loss_both_normalisations_by_hand():
    f = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    p = torch.tensor([1.0, 0.0, 3.0, 1.0]).view(1, 1, 2, 2)
    # differences 0, 2, 0, 3 -> squares sum to 13
    assert content_loss(f, p, "paper").item() == pytest.approx(0.5 * 13)
    assert content_loss(f, p, "mean").item() == pytest.approx(13 / 4)


def test_style_layer_loss_both_normalisations_by_hand():
    f = torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 1.0, 1.0]]).view(1, 2, 2, 2)
    a = torch.zeros(1, 2, 2, 2)
    n, m = 2, 4
    g_paper = gram(f, "paper")
    sq = (g_paper**2).sum().item()  # 36 + 9 + 9 + 9 = 63
    assert sq == pytest.approx(63)
    paper = style_layer_loss(g_paper, gram(a, "paper"), n, m, "paper").item()
    assert paper == pytest.approx(63 / (4 * n**2 * m**2))
    mean = style_layer_loss(gram(f, "mean"), gram(a, "mean"), n, m, "mean").item()
    assert mean == pytest.approx(63 / (n * m) ** 2)
    # The two style normalisations differ by the constant 4 (E_l = 1/4 ||G/NM - A/NM||^2).
    assert paper == pytest.approx(mean / 4)


def test_style_loss_weights_layers():
    feats = {"a": torch.randn(1, 3, 4, 4), "b": torch.randn(1, 5, 2, 2)}
    targets = {k: gram(torch.randn_like(v)) for k, v in feats.items()}
    la = style_loss(feats, targets, {"a": 1.0})
    lb = style_loss(feats, targets, {"b": 1.0})
    both = style_loss(feats, targets, {"a": 0.25, "b": 2.0})
    assert both.item() == pytest.approx(0.25 * la.item() + 2.0 * lb.item(), rel=1e-5)


def test_tv_of_checkerboard():
    h, w = 6, 8
    board = ((torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1)) % 2).float()
    img = board.expand(1, 3, h, w)
    # Every horizontal neighbour pair differs by 1: h*(w-1) per channel; vertical: (h-1)*w.
    pairs = 3 * (h * (w - 1) + (h - 1) * w)
    assert tv_loss(img, "l1", "paper").item() == pytest.approx(pairs)
    assert tv_loss(img, "l2", "paper").item() == pytest.approx(pairs)
    assert tv_loss(img, "l1", "mean").item() == pytest.approx(pairs / img.numel())
    assert tv_loss(0.5 * img, "l2", "paper").item() == pytest.approx(0.25 * pairs)
    assert tv_loss(torch.full((1, 3, h, w), 0.3), "l1").item() == 0.0


def test_grid_loss_of_stripes_by_hand_and_of_a_photo(content_path):
    stripes = torch.zeros(1, 1, 64, 64)
    stripes[..., ::8, :] = 1.0
    # Position means over the 8 x 8 cells: 1 on row 0, 0 elsewhere; their mean is 1/8, so 8 of the 64
    # positions are 7/8 off it and 56 are 1/8 off: (8 * 49 + 56) / 64 / 64 = 7/64.
    assert grid_loss(stripes, 8).item() == pytest.approx(7 / 64)
    assert grid_loss(stripes.roll(3, dims=-2), 8).item() == pytest.approx(7 / 64)  # wherever the stripes lie
    assert grid_loss(stripes[..., :70, :69], 8).item() == pytest.approx(7 / 64)  # part cells left out
    assert grid_loss(0.1 * stripes, 8).item() == pytest.approx(7 / 6400)
    assert grid_loss(torch.full((2, 3, 32, 32), 0.4), 8).item() == pytest.approx(0.0, abs=1e-12)
    assert grid_loss(stripes, 1).item() == 0.0  # no grid
    # A photograph has almost no pattern on an 8 px grid; the same photo with faint stripes (0.05) has.
    photo = resize_long_side(load_tensor(content_path), 256)  # enough 8 px cells for the content to average out
    lines = torch.zeros_like(photo)
    lines[..., ::8, :] = 1.0
    faint = (photo + 0.05 * lines).clamp(0, 1)
    assert grid_loss(photo, 8).item() < 0.2 * grid_loss(faint, 8).item()


def test_mean_std():
    x = torch.tensor([1.0, 3.0, 5.0, 7.0]).view(1, 1, 2, 2)
    mean, std = mean_std(x, eps=0.0)
    assert mean.item() == pytest.approx(4.0)
    assert std.item() == pytest.approx(5.0**0.5)


@pytest.mark.parametrize("normalization", ["paper", "mean"])
@pytest.mark.parametrize("tv", ["l1", "l2"])
def test_gradients_match_finite_differences(normalization, tv):
    torch.manual_seed(0)
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    p = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    target = gram(torch.rand(1, 2, 3, 3, dtype=torch.float64), normalization)
    assert target.dtype == torch.float64

    def total(t):
        return (
            content_loss(t, p, normalization)
            + style_layer_loss(gram(t, normalization), target, 2, 9, normalization)
            + tv_loss(t, tv, normalization)
        )

    assert torch.autograd.gradcheck(total, (x,), eps=1e-6, atol=1e-6)


def test_size_invariance_of_mean_normalisation():
    """Upsampling an image leaves 'mean' losses (nearly) unchanged but grows 'paper' content."""
    torch.manual_seed(0)
    f = torch.rand(1, 4, 8, 8)
    p = torch.rand(1, 4, 8, 8)
    up = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")
    assert content_loss(up(f), up(p), "mean").item() == pytest.approx(content_loss(f, p, "mean").item(), rel=1e-5)
    assert content_loss(up(f), up(p), "paper").item() == pytest.approx(4 * content_loss(f, p, "paper").item(), rel=1e-5)
    small = style_layer_loss(gram(f), gram(p), 4, 64, "mean").item()
    big = style_layer_loss(gram(up(f)), gram(up(p)), 4, 256, "mean").item()
    assert big == pytest.approx(small, rel=1e-4)


def test_perceptual_loss_by_hand():
    """Each layer divided by its feature norm, the layer weights, the batch mean of the style term."""
    from stylist.losses import PerceptualLoss

    torch.manual_seed(0)
    feats = {"a": torch.rand(2, 3, 4, 4), "b": torch.rand(2, 2, 2, 2)}
    photo = {"a": torch.rand(2, 3, 4, 4), "b": torch.rand(2, 2, 2, 2)}
    painting = {"a": torch.rand(1, 3, 5, 5), "b": torch.rand(1, 2, 3, 3)}
    loss = PerceptualLoss({"a": 0.5}, {"a": 0.25, "b": 0.75}, {"a": 2.0, "b": 4.0})
    content = loss.content(feats, loss.content_targets(photo))
    assert content == pytest.approx(0.5 * float(((feats["a"] - photo["a"]) / 2).pow(2).mean()))
    style = loss.style(feats, loss.style_targets(painting))
    expected = 0.0
    for n, w, norm in (("a", 0.25, 2.0), ("b", 0.75, 4.0)):
        g, t = gram(feats[n] / norm), gram(painting[n] / norm)
        expected += w * float((g - t).pow(2).sum()) / 2  # summed over the batch, then averaged
    assert style == pytest.approx(expected, rel=1e-5)


def test_one_feature_normalisation_for_optimisation_training_metrics_and_decoders(content64, style64):
    """Optimisation, feed-forward training, the metrics and the arbitrary-style encoder all divide
    by the weight source's table, and the metrics' content and style are the optimisation's terms."""
    from stylist.decoders import Encoder
    from stylist.feedforward import FeedForwardConfig, _build_losses
    from stylist.metrics import MetricsConfig, Scorer
    from stylist.optimize import Objective, TransferConfig, build_network
    from stylist.weights import SOURCES

    table = SOURCES["vgg19-caffe"].feature_norms
    # The metrics measure at relu1_1 .. relu5_1 (the studies' measuring stick); optimisation's and
    # feed-forward training's defaults leave relu5_1 out (issues 15 and 16), so both are given the
    # metrics' layers here.
    cfg = TransferConfig(
        content_weight=1.0, style_weight=1.0, device="cpu", precision="fp32", style_layers=MetricsConfig().style_layers
    )
    layers = (*cfg.content_layers, *cfg.style_layers)
    content, style = content64, style64[..., : content64.shape[-2], : content64.shape[-1]]
    objective = Objective(build_network(cfg, torch.device("cpu")), cfg, content, [style])
    scorer = Scorer(content, style, tuple(content.shape[-2:]))
    ff_cfg = FeedForwardConfig(style="s", data="d", style_layers=MetricsConfig().style_layers)
    ff = _build_losses(ff_cfg, torch.device("cpu"), style, content, None)
    expected = {n: table[n] for n in layers}
    assert objective.feature_norms == scorer.feature_norms == ff.loss.feature_norms == expected
    assert Encoder("relu5_1").feature_norms == {
        n: table[n] for n in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    }
    result = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        terms = objective(result)
    measured = scorer(result)
    assert measured["content"] == pytest.approx(float(terms["content"]), rel=1e-4)
    assert measured["style_gram"] == pytest.approx(float(terms["style"]), rel=1e-4)
