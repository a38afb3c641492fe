"""Neighbor2Neighbor (Huang et al. 2021): sub-samplers, the loss of Eq. (7), the γ ramp, Theorem 1 (course)."""
from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch.nn import functional as F

from imagehelpers import Spy, smooth_images
from denoise_lib import methods, subsample
from denoise_lib.course import neighbours
from denoise_lib.course.plots import plot_choice
from denoise_lib.data import TrainingSet
from denoise_lib.methods import Batch
from denoise_lib.methods.nb2nb import Neighbor2Neighbor
from denoise_lib.models import UNet
from denoise_lib.noise import Gaussian, Poisson
from denoise_lib.train import Budget, fit

TINY = Budget("custom", steps=3, seconds=None, batch_size=2, patch_size=32, lr=1e-3)
SIGMA = 25 / 255


def positions(choice: subsample.NeighbourChoice, which: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, col) in the full image of the pixel taken by g1 (which=1) or g2, shape (N, h2, w2)."""
    idx = choice.index1 if which == 1 else choice.index2
    h2, w2 = choice.sub_size
    rows, cols = idx // choice.width, idx % choice.width
    return rows.view(-1, h2, w2), cols.view(-1, h2, w2)


def coordinate_image(n, c, h, w):
    """Pixel value = flat index + 10⁵·channel + 10⁶·image: each value says where it came from."""
    base = torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)
    return base + 1e5 * torch.arange(c, dtype=torch.float64).view(1, c, 1, 1) \
        + 1e6 * torch.arange(n, dtype=torch.float64).view(n, 1, 1, 1)


def pair_of_positions(choice):
    """Code 0..7 of the pair (cell position of g1, cell position of g2) read back from the indices."""
    r1, c1 = positions(choice, 1)
    r2, c2 = positions(choice, 2)
    p1, p2 = 2 * (r1 % 2) + c1 % 2, 2 * (r2 % 2) + c2 % 2
    lookup = {pair: k for k, pair in enumerate(subsample.PAIRS)}
    return torch.tensor([lookup[(int(a), int(b))] for a, b in zip(p1.flatten(), p2.flatten())])


# ----------------------------------------------------------------------------- sub-samplers

@pytest.mark.parametrize("size", [(10, 12), (7, 9), (2, 2)])
def test_every_pair_is_4_adjacent_inside_its_cell(size):
    h, w = size
    g = torch.Generator().manual_seed(0)
    y = coordinate_image(3, 2, h, w)
    choice = subsample.choose(y, generator=g)
    h2, w2 = h // 2, w // 2
    assert choice.sub_size == (h2, w2)
    r1, c1 = positions(choice, 1)
    r2, c2 = positions(choice, 2)
    ii = torch.arange(h2).view(1, h2, 1).expand_as(r1)
    jj = torch.arange(w2).view(1, 1, w2).expand_as(c1)
    for r, c in ((r1, c1), (r2, c2)):
        assert torch.equal(r // 2, ii) and torch.equal(c // 2, jj)       # inside cell (i, j)
    assert torch.equal((r1 - r2).abs() + (c1 - c2).abs(), torch.ones_like(r1))   # 4-adjacent, distinct
    g1, g2 = choice.apply(y)
    assert g1.shape == g2.shape == (3, 2, h2, w2) and g1.dtype == y.dtype
    # the values really come from those pixels, in every channel and image
    flat = (y.reshape(3, 2, -1))
    assert torch.equal(g1, flat.gather(2, choice.index1[:, None].expand(3, 2, -1)).view(3, 2, h2, w2))
    assert torch.equal(g1[:, :, :, :] % 1e5, (r1 * w + c1).unsqueeze(1).double().expand(3, 2, h2, w2))
    assert torch.equal(g2[:, :, :, :] % 1e5, (r2 * w + c2).unsqueeze(1).double().expand(3, 2, h2, w2))


def test_the_8_ordered_pairs_are_equally_frequent():
    g = torch.Generator().manual_seed(1)
    choice = subsample.choose(torch.zeros(2, 1, 160, 160), generator=g)     # 12 800 cells
    codes = pair_of_positions(choice)                      # read back from the pixel positions
    assert torch.equal(codes, choice.codes.flatten())
    counts = torch.bincount(codes, minlength=8).numpy()
    assert (counts > 0).all() and len(counts) == 8
    assert stats.chisquare(counts).pvalue > 1e-3
    # the test has power: a sampler that only uses the 4 "forward" pairs would fail it badly
    assert stats.chisquare(torch.bincount(codes % 4, minlength=8).numpy()).pvalue < 1e-10


def test_channels_share_the_choice():
    y = coordinate_image(2, 3, 8, 8)
    g1, g2 = subsample.subsample(y, generator=torch.Generator().manual_seed(2))
    for c in range(3):
        assert torch.equal(g1[:, c] - g1[:, 0], torch.full_like(g1[:, 0], 1e5 * c))
        assert torch.equal(g2[:, c] - g2[:, 0], torch.full_like(g2[:, 0], 1e5 * c))
    # …while different images of a batch get different choices
    assert not torch.equal(g1[1] - 1e6, g1[0])


def test_seeded_generator_reproduces_the_choice():
    y = torch.zeros(2, 1, 16, 16)
    a = subsample.choose(y, generator=torch.Generator().manual_seed(5))
    b = subsample.choose(y, generator=torch.Generator().manual_seed(5))
    c = subsample.choose(y, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.codes, b.codes) and torch.equal(a.index1, b.index1) and torch.equal(a.index2, b.index2)
    assert not torch.equal(a.codes, c.codes)
    # without a generator the global RNG is used (seeded by the training loop)
    torch.manual_seed(3)
    d = subsample.choose(y)
    torch.manual_seed(3)
    assert torch.equal(d.codes, subsample.choose(y).codes)


def test_same_choice_applies_to_another_image():
    y = coordinate_image(2, 1, 9, 11)
    fy = -3 * y + 7                                   # any image of the same size
    choice = subsample.choose(y, generator=torch.Generator().manual_seed(4))
    g1, g2 = choice.apply(y)
    h1, h2 = choice.apply(fy)
    assert torch.equal(h1, -3 * g1 + 7) and torch.equal(h2, -3 * g2 + 7)
    with pytest.raises(ValueError, match="drawn for 2 images of 9×11"):
        choice.apply(torch.zeros(2, 1, 10, 11))
    with pytest.raises(ValueError, match="which"):
        choice.take(y, 3)


def test_odd_sizes_crop_the_last_row_and_column():
    y = coordinate_image(1, 1, 7, 9)
    choice = subsample.choose(y, generator=torch.Generator().manual_seed(0))
    assert choice.sub_size == (3, 4)
    m1, m2 = choice.masks()
    used = m1 | m2
    assert not used[..., 6, :].any() and not used[..., :, 8].any()           # last row/column unused
    assert int(m1.sum()) == int(m2.sum()) == 12 and not (m1 & m2).any()
    assert used[..., :6, :8].sum() == 24                                      # two of four pixels per cell
    with pytest.raises(ValueError, match="even sizes"):
        subsample.choose(y, odd="raise")
    assert subsample.choose(torch.zeros(1, 1, 6, 8), odd="raise").sub_size == (3, 4)
    for bad in [(1, 5), (5, 1)]:
        with pytest.raises(ValueError, match="at least 2×2"):
            subsample.choose(torch.zeros(1, 1, *bad))
    with pytest.raises(ValueError, match="odd must be"):
        subsample.half_size(4, 4, odd="pad")


def test_fixed_location_sampler_uses_one_pair_per_image():
    """Their Table 4: two of the four one-position sub-images, at random, so diagonal pairs too."""
    y = torch.zeros(240, 1, 12, 10)
    choice = subsample.choose(y, sampler="fixed", generator=torch.Generator().manual_seed(0))
    per_image = choice.codes.reshape(240, -1)
    assert (per_image == per_image[:, :1]).all()                              # fixed within an image
    assert set(per_image[:, 0].tolist()) == set(range(12))                    # over images: all 12 pairs
    r1, c1 = positions(choice, 1)
    r2, c2 = positions(choice, 2)
    dist = (r1 - r2).abs() + (c1 - c2).abs()
    diag = choice.codes >= 8
    assert (dist[~diag] == 1).all()                                            # codes 0–7: 4-adjacent
    assert ((r1 - r2).abs()[diag] == 1).all() and ((c1 - c2).abs()[diag] == 1).all()   # 8–11: diagonal
    for p, q in subsample.ALL_PAIRS:                                           # ordered pairs of distinct positions
        assert p != q
    assert len(set(subsample.ALL_PAIRS)) == 12 == len(subsample.PAIRS) + len(subsample.DIAGONAL_PAIRS)
    # uniform over the 12 (chi-square at the 0.1 % level)
    counts = torch.bincount(per_image[:, 0], minlength=12).numpy()
    assert stats.chisquare(counts).pvalue > 1e-3
    # without the diagonal pairs: the 8 neighbour pairs only
    adj = subsample.choose(y, sampler="fixed", diagonal=False, generator=torch.Generator().manual_seed(0))
    assert set(adj.codes[:, 0, 0].tolist()) == set(range(8))
    for seed in range(3):
        pinned = subsample.choose(y, sampler="fixed", pair=6, generator=torch.Generator().manual_seed(seed))
        assert (pinned.codes == 6).all()
        r1, c1 = positions(pinned, 1)
        assert ((r1 % 2 == 1) & (c1 % 2 == 1)).all()                          # PAIRS[6] = (3, 1)
    pinned = subsample.choose(y, sampler="fixed", pair=8)                      # ALL_PAIRS[8] = (0, 3)
    r1, c1 = positions(pinned, 1)
    r2, c2 = positions(pinned, 2)
    assert ((r1 % 2 == 0) & (c1 % 2 == 0) & (r2 % 2 == 1) & (c2 % 2 == 1)).all()
    # the random sampler stays on the 8 neighbour pairs unless asked otherwise
    rnd = subsample.choose(torch.zeros(2, 1, 64, 64), generator=torch.Generator().manual_seed(2))
    assert int(rnd.codes.max()) <= 7
    rnd12 = subsample.choose(torch.zeros(2, 1, 64, 64), diagonal=True, generator=torch.Generator().manual_seed(2))
    assert set(rnd12.codes.flatten().tolist()) == set(range(12))
    with pytest.raises(ValueError, match="pair"):
        subsample.choose(y, sampler="random", pair=1)
    with pytest.raises(ValueError, match="pair"):
        subsample.choose(y, sampler="fixed", pair=12)
    with pytest.raises(ValueError, match="pair"):
        subsample.choose(y, sampler="fixed", pair=8, diagonal=False)
    with pytest.raises(ValueError, match="diagonal"):
        subsample.choose(y, sampler="fixed", diagonal="yes")
    with pytest.raises(ValueError, match="sampler"):
        subsample.choose(y, sampler="diagonal")


def test_subpixel_shift():
    x = smooth_images(1, (20, 24))[0]
    assert torch.allclose(neighbours.subpixel_shift(x, 0, 0), x, atol=1e-6)
    right = neighbours.subpixel_shift(x, 0, 1)
    assert torch.allclose(right[..., 1:], x[..., :-1], atol=1e-5)
    assert torch.allclose(right[..., 0], x[..., 0], atol=1e-6)                # border replicated
    half = neighbours.subpixel_shift(x, 0.5, 0)
    assert torch.allclose(half[..., 1:, :], 0.5 * (x[..., 1:, :] + x[..., :-1, :]), atol=1e-5)


# ----------------------------------------------------------------------------- the method

def make(**kw):
    torch.manual_seed(0)
    return Neighbor2Neighbor(Spy(UNet(1, features=8, depth=2)), **kw)


def noisy_batch(seed=1, b=2, size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, 1, *size), generator=g) * 0.5 + 0.25
    return x + SIGMA * torch.randn(x.shape, generator=g)


def test_registered_names_and_settings():
    m = methods.build("nb2nb", channels=1)
    f = methods.build("nb2nb-fixed", channels=3)
    assert type(m) is type(f) is Neighbor2Neighbor
    assert (m.name, m.sampler, m.requires) == ("nb2nb", "random", "single")
    assert (f.name, f.sampler, f.requires) == ("nb2nb-fixed", "fixed", "single")
    assert m.gamma == 2.0 and m.gamma_schedule == "ramp"
    assert Neighbor2Neighbor(UNet(1), sampler="fixed").name == "nb2nb"     # the class default; build names it
    # the paper's choice by default: diagonal pairs for the fixed sampler only
    assert subsample.uses_diagonal(f.sampler, f.diagonal) and not subsample.uses_diagonal(m.sampler, m.diagonal)
    assert "diagonal" in f.config and f.config["diagonal"] is None


@pytest.mark.parametrize("kw,match", [({"sampler": "diag"}, "sampler"), ({"gamma": -1}, "gamma"),
                                      ({"gamma": float("nan")}, "gamma"), ({"gamma": "two"}, "gamma"),
                                      ({"gamma_schedule": "cosine"}, "gamma_schedule"),
                                      ({"ramp_steps": 0}, "ramp_steps"), ({"ramp_steps": 2.5}, "ramp_steps"),
                                      ({"ramp_steps": "ten"}, "ramp_steps"),
                                      ({"pair": 3}, "pair"), ({"sampler": "fixed", "pair": -1}, "pair"),
                                      ({"sampler": "fixed", "pair": 12}, "pair"), ({"diagonal": 1}, "diagonal"),
                                      ({"odd": "pad"}, "odd")])
def test_bad_settings_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        Neighbor2Neighbor(UNet(1, features=8, depth=2), **kw)


def test_loss_by_hand_and_finite_gradient():
    y = noisy_batch()
    m = make(gamma=2.0, gamma_schedule="constant")
    loss, logs = m.loss(Batch(noisy=y, step=0, generator=torch.Generator().manual_seed(7)))
    choice = m.choose(y, torch.Generator().manual_seed(7))     # the same draw, replayed
    g1, g2 = choice.apply(y)
    sub_out, full_out = m.net.outputs                     # f(g1(y)) first, then f(y)
    assert torch.equal(m.net.inputs[0], g1) and torch.equal(m.net.inputs[1], y)
    f1, f2 = choice.apply(full_out)
    rec = ((sub_out - g2) ** 2).mean()
    reg = ((sub_out - g2 - (f1 - f2)) ** 2).mean()
    assert torch.allclose(logs["rec"], rec) and torch.allclose(logs["reg"], reg)
    assert torch.allclose(loss, rec + 2.0 * reg) and torch.isfinite(loss)
    assert logs["gamma"] == 2.0 and type(logs["gamma"]) is float           # a host-side schedule value
    assert all(v.ndim == 0 and not v.requires_grad for k, v in logs.items() if k != "gamma")
    loss.backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_the_full_pass_gets_no_gradient():
    y = noisy_batch(seed=3)
    m = make(gamma=8.0, gamma_schedule="constant")
    loss, _ = m.loss(Batch(noisy=y, generator=torch.Generator().manual_seed(8)))
    sub_out, full_out = m.net.outputs
    assert sub_out.requires_grad and not full_out.requires_grad and full_out.grad_fn is None
    params = list(m.parameters())
    grad = torch.autograd.grad(loss, params)
    # the same loss with the full pass as a constant gives the same gradient…
    choice = m.choose(y, torch.Generator().manual_seed(8))
    g1, g2 = choice.apply(y)
    f1, f2 = choice.apply(full_out)
    m.net.outputs.clear()
    diff = m.net(g1) - g2
    const = ((diff ** 2).mean() + 8.0 * ((diff - (f1 - f2)) ** 2).mean())
    assert torch.allclose(const, loss)
    for a, b in zip(grad, torch.autograd.grad(const, params, retain_graph=True)):
        assert torch.allclose(a, b, atol=1e-7)
    # …and differs from the gradient with the full pass differentiated (no stop-gradient)
    full = m.net(y)
    h1, h2 = choice.apply(full)
    both = ((diff ** 2).mean() + 8.0 * ((diff - (h1 - h2)) ** 2).mean())
    assert torch.allclose(both, loss)
    other = torch.autograd.grad(both, params)
    assert max(float((a - b).abs().max()) for a, b in zip(grad, other)) > 1e-6


def test_gamma_ramp_values():
    # default: the ramp spans the training budget (batch.progress, set by fit)
    m = make(gamma=2.0)
    assert m.ramp_steps is None
    assert m.gamma_at(0, progress=0.0) == 0.0 and m.gamma_at(7, progress=0.25) == pytest.approx(0.5)
    assert m.gamma_at(0, progress=1.0) == 2.0 and m.gamma_at(0, progress=3.0) == 2.0
    assert m.gamma_at(4) == pytest.approx(2.0 * 5 / 1000)        # no progress: DEFAULT_RAMP_STEPS
    # explicit ramp length in steps (progress ignored)
    s = make(gamma=2.0, ramp_steps=100)
    assert s.gamma_at(0) == pytest.approx(0.02)                  # from γ/ramp_steps at the first step
    assert s.gamma_at(49) == pytest.approx(1.0) and s.gamma_at(49, progress=0.9) == pytest.approx(1.0)
    assert s.gamma_at(99) == pytest.approx(2.0) and s.gamma_at(10_000) == 2.0
    assert [s.gamma_at(t) for t in range(100)] == sorted(s.gamma_at(t) for t in range(100))
    c = make(gamma=8.0, gamma_schedule="constant")
    assert c.gamma_at(0) == c.gamma_at(12345, progress=0.1) == 8.0
    y = noisy_batch()
    for method, batch, want in [(s, Batch(noisy=y, step=0), 0.02), (s, Batch(noisy=y, step=24), 0.5),
                                (s, Batch(noisy=y, step=500, progress=0.1), 2.0),
                                (m, Batch(noisy=y, step=3, progress=0.75), 1.5)]:
        loss, logs = method.loss(batch)
        assert float(logs["gamma"]) == pytest.approx(want)
        assert torch.allclose(loss, logs["rec"] + want * logs["reg"])


def test_gamma_zero_skips_the_full_pass():
    m = make(gamma=0.0, gamma_schedule="constant")
    loss, logs = m.loss(Batch(noisy=noisy_batch()))
    assert len(m.net.outputs) == 1 and torch.allclose(loss, logs["rec"]) and "reg" not in logs


def test_odd_training_patches_and_inference():
    m = make()
    y = noisy_batch(size=(31, 29))
    loss, logs = m.loss(Batch(noisy=y))
    assert torch.isfinite(loss) and m.net.inputs[0].shape == (2, 1, 15, 14) and m.net.inputs[1].shape == y.shape
    out = m.denoise(y[:1])
    assert out.shape == (1, 1, 31, 29)
    with pytest.raises(ValueError, match="even sizes"):
        make(odd="raise").loss(Batch(noisy=y))


def test_the_sampler_comes_from_batch_generator_only():
    y = noisy_batch()
    m = make(gamma=2.0, gamma_schedule="constant")
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, _ = m.loss(Batch(noisy=y, generator=torch.Generator().manual_seed(3)))
    b, _ = m.loss(Batch(noisy=y, generator=torch.Generator().manual_seed(3)))
    g = torch.Generator().manual_seed(3)
    c, _ = m.loss(Batch(noisy=y, generator=g))
    d, _ = m.loss(Batch(noisy=y, generator=g))          # the same generator moves on: a new sampler
    assert torch.equal(a, b) and torch.equal(a, c) and not torch.equal(c, d)
    assert torch.equal(before, torch.get_rng_state())   # the global RNG is never used
    inputs = m.net.inputs[0::2]                         # f(g1(y)) of each call
    assert torch.equal(inputs[0], inputs[1]) and not torch.equal(inputs[2], inputs[3])


def test_gamma_ramp_follows_the_training_budget_in_fit():
    train = TrainingSet.from_clean(smooth_images(3, (40, 40)), Gaussian(SIGMA), kind="single")
    m = methods.build("nb2nb", net={"features": 8, "depth": 2})
    hist = fit(m, train, TINY, progress=False, log_every=1)
    # γ·progress with progress 0, 1/3, 2/3 before steps 1, 2, 3
    assert [round(r["gamma"], 5) for r in hist.log] == [0.0, round(2 / 3, 5), round(4 / 3, 5)]


# ----------------------------------------------------------------------------- Theorem 1

def box3(y):
    return F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def test_theorem1_check_agrees_and_the_wrong_variants_fail():
    x = smooth_images(1, (48, 48), seed=3)[0]
    g = torch.Generator().manual_seed(0)
    eps = 0.05 * torch.sign(torch.randn(x.shape, generator=g)) + 0.02      # known, nonzero gap
    checks = neighbours.theorem1_check(box3, x, eps, Gaussian(SIGMA), draws=96,
                                      generator=torch.Generator().manual_seed(1))
    ok, paper, n2n = checks["correct"], checks["paper"], checks["n2n"]
    assert ok.terms["eps2"] == pytest.approx(float((eps.double() ** 2).mean()))
    assert ok.terms["sigma2"] == pytest.approx(SIGMA ** 2)
    assert 3 * ok.diff_se < ok.terms["eps2"] / 10                # the check is sharp enough to matter
    assert ok.agrees(3.0), str(ok)
    assert not paper.agrees(3.0) and paper.diff == pytest.approx(-ok.terms["eps2"], abs=4 * paper.diff_se)
    assert not n2n.agrees(3.0)
    assert ok.lhs == paper.lhs == n2n.lhs and ok.lhs_se > 0 and ok.rhs_se > 0


def test_theorem1_with_zero_gap_is_noise2noise():
    x = smooth_images(1, (32, 32), seed=4)[0]
    checks = neighbours.theorem1_check(box3, x, torch.zeros_like(x), Poisson(30), draws=64,
                                      generator=torch.Generator().manual_seed(2))
    assert all(c.agrees(3.0) for c in checks.values())
    assert checks["n2n"].diff == checks["correct"].diff


@pytest.mark.parametrize("sampler,diagonal", [("random", None), ("fixed", None), ("fixed", False)])
def test_theorem1_on_subsampled_pairs(sampler, diagonal):
    x = smooth_images(1, (64, 64), seed=5)[0] ** 3                 # some contrast between neighbours
    checks = neighbours.theorem1_check_subsampled(box3, x, Gaussian(SIGMA), draws=96, sampler=sampler,
                                                 diagonal=diagonal, generator=torch.Generator().manual_seed(3))
    assert checks["correct"].agrees(3.0), str(checks["correct"])
    assert checks["correct"].terms["eps2"] > 0


def test_theorem1_summary_arithmetic():
    terms = {"supervised": torch.tensor([1.0, 3.0]), "target_mse": torch.tensor([2.0, 2.0]),
             "sigma2": torch.tensor([0.5, 0.5]), "cross": torch.tensor([0.25, 0.25]),
             "eps2": torch.tensor([0.1, 0.1])}
    c = neighbours.summarise(terms, "correct")
    assert c.lhs == 2.0 and c.rhs == pytest.approx(1.65) and c.diff == pytest.approx(0.35)
    assert c.lhs_se == pytest.approx(1.0) and c.rhs_se == 0.0
    assert neighbours.summarise(terms, "paper").rhs == pytest.approx(1.75)
    assert neighbours.summarise(terms, "n2n").rhs == pytest.approx(1.5)
    with pytest.raises(ValueError, match="variant"):
        neighbours.summarise(terms, "other")
    with pytest.raises(ValueError, match="draws"):
        neighbours.theorem1_check(box3, torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), Gaussian(SIGMA), draws=1)
    with pytest.raises(ValueError, match="eps"):
        neighbours.theorem1_check(box3, torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9), Gaussian(SIGMA))


def test_plot_choice_draws_the_chosen_pixels():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    choice = subsample.choose(torch.zeros(1, 1, 8, 10), sampler="fixed", pair=0)
    ax = plot_choice(choice, cells=(2, 3), title="t")
    rgb = ax.images[0].get_array()
    assert rgb.shape == (4, 6, 3)
    assert (rgb[0::2, 0::2, 0] > 0.8).all() and (rgb[0::2, 1::2, 2] > 0.8).all()   # pair (0, 1): red, blue
    assert (rgb[1::2, :, :] > 0.9).all()                                          # bottom rows unused
    plt.close("all")
    with pytest.raises(ValueError, match="no cell"):
        plot_choice(choice, origin=(4, 0))


def test_building_the_method_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    Neighbor2Neighbor(torch.nn.Identity(), sampler="fixed")
    Neighbor2Neighbor(torch.nn.Identity(), sampler="random", gamma=8)
    assert torch.equal(before, torch.get_rng_state())
    assert Neighbor2Neighbor(torch.nn.Identity(), sampler="fixed", pair=__import__("numpy").int64(2)).pair == 2
    with pytest.raises(ValueError, match="pair"):
        Neighbor2Neighbor(torch.nn.Identity(), sampler="fixed", pair=1.5)


def test_sampler_figure_and_check_table():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = neighbours.sampler_figure(cells=(2, 3))
    assert len(fig.axes) == 4 and fig.get_figwidth() == pytest.approx(7.0)
    diag = fig.axes[2].images[0].get_array()                         # fixed diagonal pair 0→3
    assert (diag[0::2, 0::2, 0] > 0.8).all() and (diag[1::2, 1::2, 2] > 0.8).all()
    plt.close(fig)
    x = smooth_images(1, (16, 16), seed=1)[0]
    checks = neighbours.theorem1_check(box3, x, torch.zeros_like(x), Gaussian(SIGMA), draws=8,
                                      generator=torch.Generator().manual_seed(0))
    md = neighbours.check_table(checks)._repr_markdown_()
    assert "corrected Theorem 1" in md and "Eq. (2) as printed" in md and "× 10³" in md
