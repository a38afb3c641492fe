"""Noise models: first and second moments, supports, seeding, spec strings."""
from __future__ import annotations

import math

import pytest
import torch

from denoise_lib.noise import Gaussian, NoiseModel, Poisson, Speckle, parse_noise

N_SE = 5  # tolerance in standard errors
SIZE = 256


def const(value: float, n: int = 1, size: int = SIZE) -> torch.Tensor:
    return torch.full((n, 1, size, size), value, dtype=torch.float32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_mean_var(r: torch.Tensor, mean: float, var: float) -> None:
    """Check the sample mean and variance of ``r`` against the truth within N_SE standard errors.

    The standard errors come from the sample itself (4th central moment for the variance).
    """
    r = r.double().flatten()
    n = r.numel()
    m, v = float(r.mean()), float(r.var())
    se_m = math.sqrt(v / n)
    se_v = float(((r - m) ** 2).std()) / math.sqrt(n)
    assert abs(m - mean) < N_SE * se_m, f"mean {m:.6g} vs {mean:.6g} (SE {se_m:.3g})"
    assert abs(v - var) < N_SE * se_v, f"variance {v:.6g} vs {var:.6g} (SE {se_v:.3g})"


# --------------------------------------------------------------------------- Gaussian

def test_gaussian_mean_zero_and_variance_sigma_squared():
    s = 25 / 255
    x = const(0.5)
    y = Gaussian(s)(x, gen(0))
    n = (y - x).double().flatten()
    k = n.numel()
    assert abs(float(n.mean())) < N_SE * s / math.sqrt(k)
    assert abs(float(n.var()) - s * s) < N_SE * s * s * math.sqrt(2 / k)


def test_gaussian_is_not_clipped():
    x = const(0.98, size=64)
    y = Gaussian(25 / 255)(x, gen(0))
    assert float(y.max()) > 1.0 and y.shape == x.shape and y.dtype == torch.float32


def test_gaussian_variance_method_for_fixed_sigma():
    s = 25 / 255
    v = Gaussian(s).variance(const(0.3, size=8))
    assert torch.allclose(v, torch.full_like(v, s * s))


def test_gaussian_per_image_sigma_range():
    lo, hi = 5 / 255, 50 / 255
    model = Gaussian((lo, hi))
    n_img, side = 4000, 16
    x = torch.full((n_img, 1, side, side), 0.5)
    r = (model(x, gen(1)) - x).double()
    per_image_var = r.pow(2).mean(dim=(1, 2, 3))  # known mean 0
    expected = (lo * lo + lo * hi + hi * hi) / 3
    se = float(per_image_var.std()) / math.sqrt(n_img)
    assert abs(float(per_image_var.mean()) - expected) < N_SE * se
    # variance() reports the same E[σ²]
    v = model.variance(x[:1])
    assert torch.allclose(v, torch.full_like(v, expected))
    # σ is drawn per image: the per-image std covers the range, and stays inside it
    sd = per_image_var.sqrt()
    assert float(sd.min()) < lo + 0.1 * (hi - lo) and float(sd.max()) > hi - 0.1 * (hi - lo)
    assert float(sd.min()) > 0.5 * lo and float(sd.max()) < 1.3 * hi
    assert model.sigma == pytest.approx((lo + hi) / 2)


@pytest.mark.parametrize("bad", [-0.1, (0.2, 0.1), float("inf"), (0.0, float("nan"))])
def test_gaussian_rejects_bad_sigma(bad):
    with pytest.raises(ValueError):
        Gaussian(bad)


# --------------------------------------------------------------------------- Poisson

@pytest.mark.parametrize("value", [0.1, 0.5, 0.9])
def test_poisson_mean_and_variance(value):
    lam = 30.0
    x = const(value)
    y = Poisson(lam)(x, gen(2))
    assert_mean_var(y, value, value / lam)
    # y·λ is an integer count
    k = y.double() * lam
    assert torch.allclose(k, k.round(), atol=1e-3)
    v = Poisson(lam).variance(x[..., :4, :4])
    assert torch.allclose(v, torch.full_like(v, value / lam))


def test_poisson_per_image_lambda_range():
    lo, hi, value = 5.0, 50.0, 0.5
    model = Poisson((lo, hi))
    n_img, side = 4000, 16
    x = torch.full((n_img, 1, side, side), value)
    r = (model(x, gen(4)) - x).double()
    per_image_var = r.pow(2).mean(dim=(1, 2, 3))  # E[y|x] = x, so the mean is known
    expected = value * math.log(hi / lo) / (hi - lo)  # x·E[1/λ], λ ~ U(lo, hi)
    se = float(per_image_var.std()) / math.sqrt(n_img)
    assert abs(float(per_image_var.mean()) - expected) < N_SE * se
    assert abs(float(r.mean())) < N_SE * float(r.std()) / math.sqrt(r.numel())
    v = model.variance(x[:1])
    assert torch.allclose(v, torch.full_like(v, expected))
    # λ is drawn per image: the per-image variance x/λ spans [x/hi, x/lo]
    assert float(per_image_var.min()) < 1.5 * value / hi and float(per_image_var.max()) > 0.7 * value / lo


def test_poisson_needs_non_negative_intensities():
    x = const(0.5, size=8)
    x[0, 0, 0, 0] = -0.01
    with pytest.raises(ValueError, match="non-negative"):
        Poisson(30)(x, gen(0))


def test_poisson_of_zero_is_zero():
    x = const(0.0, size=16)
    assert torch.equal(Poisson(30)(x, gen(0)), x)


@pytest.mark.parametrize("bad", [0, -1.0, (10.0, 5.0)])
def test_poisson_rejects_bad_lambda(bad):
    with pytest.raises(ValueError):
        Poisson(bad)


# --------------------------------------------------------------------------- speckle

@pytest.mark.parametrize("value", [0.2, 0.7])
def test_speckle_mean_variance_and_support(value):
    v = 0.1
    x = const(value)
    y = Speckle(v)(x, gen(3))
    assert_mean_var(y, value, v * value * value)
    bound = value * math.sqrt(3 * v)
    dev = (y - x).abs()
    assert float(dev.max()) <= bound * (1 + 1e-5)
    assert float(dev.max()) > 0.99 * bound  # the whole uniform support is used
    vm = Speckle(v).variance(x[..., :4, :4])
    assert torch.allclose(vm, torch.full_like(vm, v * value * value))


def test_speckle_rejects_negative_variance():
    with pytest.raises(ValueError):
        Speckle(-0.1)


# --------------------------------------------------------------------------- seeding

MODELS = [Gaussian(25 / 255), Gaussian((5 / 255, 50 / 255)), Poisson(30), Poisson((5, 50)), Speckle(0.1)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec)
def test_same_seed_same_noise_different_seed_different_noise(model):
    x = torch.rand((2, 1, 32, 32), generator=gen(9))
    a = model(x, gen(123))
    b = model(x, gen(123))
    c = model(x, gen(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec)
def test_noise_models_keep_shape_and_dtype(model):
    x = torch.rand((3, 3, 7, 5), generator=gen(0))
    y = model(x, gen(0))
    assert y.shape == x.shape and y.dtype == x.dtype


def test_noise_models_reject_non_nchw_input():
    with pytest.raises(TypeError):
        Gaussian(0.1)(torch.rand(8, 8))


# --------------------------------------------------------------------------- specs

def test_parse_gaussian_fixed_sigma_is_on_the_255_scale():
    m = parse_noise("gaussian:25")
    assert isinstance(m, Gaussian)
    assert m.sigma_range == (25 / 255, 25 / 255)
    assert m.sigma == pytest.approx(25 / 255)


def test_parse_gaussian_range():
    m = parse_noise("gaussian:5-50")
    assert isinstance(m, Gaussian)
    assert m.sigma_range == pytest.approx((5 / 255, 50 / 255))


def test_parse_poisson_fixed_and_range():
    m = parse_noise("poisson:30")
    assert isinstance(m, Poisson) and m.lam_range == (30.0, 30.0)
    r = parse_noise("poisson:5-50")
    assert isinstance(r, Poisson) and r.lam_range == (5.0, 50.0)


def test_parse_speckle():
    m = parse_noise("speckle:0.1")
    assert isinstance(m, Speckle) and m.v == pytest.approx(0.1)


def test_parse_noise_passes_a_model_through():
    m = Speckle(0.2)
    assert parse_noise(m) is m


@pytest.mark.parametrize("bad", ["gaussian", "gaussian:", "gaussian:abc", "gaussian:50-5",
                                 "gaussian:-5", "poisson:0", "poisson:x-y", "speckle:-1",
                                 "laplace:3", "", "25"])
def test_bad_specs_raise_with_accepted_forms(bad):
    with pytest.raises(ValueError) as e:
        parse_noise(bad)
    msg = str(e.value)
    for form in ("gaussian:SIGMA255", "gaussian:LO-HI", "poisson:LAMBDA", "speckle:V"):
        assert form in msg


@pytest.mark.parametrize("spec", ["gaussian:25", "gaussian:5-50", "gaussian:12.5", "poisson:30",
                                  "poisson:5-50", "speckle:0.1", "speckle:0.05"])
def test_spec_round_trips(spec):
    m = parse_noise(spec)
    assert m.spec == spec
    assert parse_noise(m.spec) == m


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.spec)
def test_model_spec_reparses_to_an_equal_model(model):
    again = parse_noise(model.spec)
    assert type(again) is type(model)
    for a, b in zip(again.__dict__.values(), model.__dict__.values()):
        assert a == pytest.approx(b)


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        NoiseModel()(torch.zeros(1, 1, 2, 2))
