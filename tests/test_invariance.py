"""denoise_lib.invariance (J-invariant prediction) and denoise_lib.course.jinvariance (D(f), Noise2Same Eq. 5; the bound)."""
from __future__ import annotations

import pytest
import torch

from denoise_lib import invariance, masks
from denoise_lib.course import jinvariance
from denoise_lib.models import UNet
from denoise_lib.noise import Gaussian


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return UNet(1, features=8, depth=2).eval()


class ZeroCentreConv(torch.nn.Module):
    """A 5×5 convolution whose centre tap is zero: J-invariant by construction."""

    def __init__(self, channels=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels=channels, out_channels=channels, kernel_size=5, padding=2)
        with torch.no_grad():
            self.conv.weight[:, :, 2, 2] = 0

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("replacement", ["donut", "zero"])
def test_j_invariant_prediction_ignores_the_pixel_itself(unet, replacement):
    """Autograd: the output at p has exactly zero gradient w.r.t. the input at p (and its sub-grid)."""
    y = torch.rand((1, 1, 24, 24), generator=gen(1), dtype=torch.float64, requires_grad=True)
    net = unet.double()
    out = invariance.j_invariant_predict(net, y, grid=4, replacement=replacement)
    for p in [(0, 0), (5, 7), (23, 23), (12, 3)]:
        (g,) = torch.autograd.grad(out[0, 0, p[0], p[1]], y, retain_graph=True)
        assert g[0, 0, p[0], p[1]] == 0
        phase = masks.grid_mask(y.shape, 4, (p[0] % 4) * 4 + p[1] % 4)
        assert (g[phase] == 0).all()                       # blind to its whole sub-grid J
        assert g.abs().sum() > 0                           # but not to its context


def test_j_invariant_prediction_finite_change(unet):
    y = torch.rand((2, 1, 20, 20), generator=gen(2))
    with torch.no_grad():
        base = invariance.j_invariant_predict(unet, y, grid=3)
        y2 = y.clone()
        y2[:, :, 7, 11] += 5.0
        changed = invariance.j_invariant_predict(unet, y2, grid=3)
        plain = unet(y2) - unet(y)
    assert torch.equal(changed[:, :, 7, 11], base[:, :, 7, 11])
    assert (changed - base).abs().max() > 1e-4               # the neighbours did change
    assert plain[:, :, 7, 11].abs().max() > 1e-4             # the plain network is not invariant


def test_j_invariant_prediction_costs_grid_squared_passes():
    calls = []

    def f(z):
        calls.append(1)
        return z * 2

    y = torch.rand(1, 1, 8, 8)
    out = invariance.j_invariant_predict(f, y, grid=2, replacement="zero")
    assert len(calls) == 4
    assert torch.equal(out, torch.zeros_like(y))             # every pixel predicted from a zeroed input
    with pytest.raises(ValueError, match="grid"):
        invariance.j_invariant_predict(f, y, grid=1)
    with pytest.raises(ValueError, match="same shape"):
        invariance.j_invariant_predict(lambda z: z[..., :4], y, grid=2)
    with pytest.raises(TypeError, match="generator"):                # random strategies need one
        invariance.j_invariant_predict(f, y, grid=2, replacement="random")


def test_course_measures_default_to_a_seeded_generator_not_the_global_rng(unet):
    y = torch.rand((1, 1, 16, 16), generator=gen(30))
    before = torch.get_rng_state()
    a = jinvariance.measure_d(unet, y, fraction=0.01)
    b = jinvariance.measure_d(unet, y, fraction=0.01)
    assert float(a) == float(b) and torch.equal(torch.get_rng_state(), before)


def test_measure_d_is_zero_for_a_zero_centre_convolution():
    torch.manual_seed(3)
    f = ZeroCentreConv().double()
    y = torch.rand((3, 1, 48, 48), generator=gen(4), dtype=torch.float64)
    d1 = jinvariance.measure_d(f, y, fraction=0.01, one_at_a_time=True, generator=gen(5))
    assert d1 <= 1e-10 and d1.pixels > 0
    # and the identity, which depends on nothing but the pixel itself, is far from invariant
    ident_d = jinvariance.measure_d(torch.nn.Identity(), y, fraction=0.01, generator=gen(5))
    assert ident_d > 0.1                                       # the identity: D = E(r − y)²/s² ≫ 0


def test_measure_d_blind_spot_network_one_at_a_time_in_float32_and_float64():
    from denoise_lib.models.blindspot import BlindSpotUNet

    torch.manual_seed(6)
    net = BlindSpotUNet(1, features=8, depth=2).eval()
    y = torch.rand((2, 1, 32, 32), generator=gen(7))
    d32 = jinvariance.measure_d(net, y, fraction=0.01, one_at_a_time=True, generator=gen(8))
    assert d32 <= 1e-10
    # sparse sampling: the other masked pixels are in the receptive field (mutual influence)
    sparse = jinvariance.measure_d(net, y, fraction=0.01, generator=gen(8))
    assert sparse > 1e4 * max(float(d32), 1e-20)
    d64 = jinvariance.measure_d(net.double(), y.double(), fraction=0.01, one_at_a_time=True, generator=gen(8))
    assert d64 <= 1e-20


def test_measure_d_is_clearly_positive_for_a_plain_unet(unet):
    y = torch.rand((2, 1, 48, 48), generator=gen(9))
    d = jinvariance.measure_d(unet, y, fraction=0.01, generator=gen(10))
    d1 = jinvariance.measure_d(unet, y, fraction=0.01, generator=gen(10), one_at_a_time=True)
    assert d > 1e-6 and d1 > 1e-6
    zc = jinvariance.measure_d(ZeroCentreConv(), y, fraction=0.01, generator=gen(10), one_at_a_time=True)
    assert d1 > 1e4 * max(float(zc), 1e-14)


def test_measure_d_formula_by_hand():
    """D = mean over images of Σ_J (f(y_Jc) − f(y))² / (|J|·C) / s², replacement μ + σ_m·s·n."""
    f = lambda z: z ** 2  # noqa: E731  (output at p depends on the input at p only)
    y = torch.rand((2, 2, 30, 30), generator=gen(11), dtype=torch.float64)
    d = jinvariance.measure_d(f, y, fraction=0.01, sigma_m=0.5, generator=gen(12))
    g = gen(12)
    m = masks.stratified_mask(y.shape, 0.01, generator=g)
    r = masks.gaussian(y, m, sigma=0.5, generator=g)
    mean, std = masks.masked_mean(y, m)
    want = []
    for b in range(2):
        sel = m[b, 0]
        diff = (r[b][:, sel] ** 2 - y[b][:, sel] ** 2) ** 2
        want.append(diff.sum() / (sel.sum() * 2) / std[b] ** 2)
    assert torch.allclose(torch.tensor(float(d), dtype=torch.float64), torch.stack(want).mean())
    raw = jinvariance.measure_d(f, y, fraction=0.01, sigma_m=0.5, generator=gen(12), normalize=False)
    assert raw != pytest.approx(float(d))
    # one at a time equals sparse for a function without interactions between pixels
    d1 = jinvariance.measure_d(f, y, fraction=0.01, sigma_m=0.5, generator=gen(12), one_at_a_time=True)
    assert float(d1) == pytest.approx(float(d), rel=1e-12)
    assert d.per_image.shape == (2,) and d.stderr > 0 and d.passes == 2 and d1.passes == 1 + d1.pixels // 16 + 1


def test_measure_d_draws_and_errors(unet):
    y = torch.rand((2, 1, 16, 16), generator=gen(13))
    d = jinvariance.measure_d(unet, y, draws=3, generator=gen(14))
    assert d.per_image.shape == (6,) and d.pixels == 6     # 16×16 ≪ one 100×100 cell: 1 pixel each
    with pytest.raises(ValueError):
        jinvariance.measure_d(unet, y, draws=0)
    with pytest.raises(ValueError, match="fraction"):
        jinvariance.measure_d(unet, y, fraction=0.5)
    with pytest.raises(TypeError):
        jinvariance.measure_d(unet, y[0])


# --- Noise2Same bound (Theorems 1–2) ------------------------------------------------

SIGMA = 25 / 255


def clean_batch(n=6, size=48, seed=20):
    from imagehelpers import smooth_images
    return torch.cat(smooth_images(n, size=(size, size), seed=seed))


def test_bound_terms_identity_matches_the_closed_form():
    x = clean_batch()
    t = jinvariance.bound_terms(lambda z: z, x, "gaussian:25", n_masks=4, generator=gen(21))
    assert t.A.shape == (6,) and t.Q.shape == (6, 4) and t.A.dtype == torch.float64
    assert torch.allclose(t.A, t.B) and (t.R == 0).all()         # f(y) = y
    e = t.estimate(2 * SIGMA, n_boot=200)
    assert e["lhs"] == pytest.approx(2 * SIGMA ** 2, rel=0.05)   # ℓ = 2σ² for the identity
    assert e["gap_lo"] > 0 and e["rhs"] <= e["rhs_pooled"] + 1e-15
    assert e["gap_lo"] <= e["gap"] <= e["gap_hi"]


def test_bound_gap_is_twice_the_cross_term():
    """A + B − R = 2⟨f(y) − x, n⟩/d per image, so the λ = 0 'bound' is ℓ ≤ R only for J-invariant f."""
    x = clean_batch(4)
    f = lambda z: 0.5 * z + 0.2  # noqa: E731  (depends on its own pixel: not J-invariant)
    g = gen(22)
    t = jinvariance.bound_terms(f, x, "gaussian:25", n_masks=2, generator=g)
    y = Gaussian(SIGMA)(x, gen(22))
    cross = 2 * ((f(y) - x).double() * (y - x).double()).flatten(1).mean(1)
    assert torch.allclose(t.A + t.B - t.R, cross, atol=1e-10)
    e0 = t.estimate(0.0, n_boot=200)
    assert e0["gap_hi"] < 0                                      # without the invariance term: violated
    e2 = t.estimate(2 * SIGMA, n_boot=200)
    assert e2["gap_lo"] > 0                                      # Theorem 2 holds


def test_bound_holds_for_a_random_unet(unet):
    x = clean_batch(8)
    t = jinvariance.bound_terms(unet, x, "gaussian:25", n_masks=3, generator=gen(23))
    e = t.estimate(2 * SIGMA, n_boot=300)
    assert e["gap_hi"] > 0 and e["gap_pooled"] >= e["gap"]
    with pytest.raises(ValueError):
        t.estimate(-1.0)
    with pytest.raises(ValueError):
        jinvariance.bound_terms(unet, x, "gaussian:25", n_masks=0)
