"""Bad or degenerate input to the classical denoisers and the noise models.

Each case either gets the correct result (σ = 0 → the input, a 1×1 image → the input,
an image smaller than BM3D's block → padded, denoised and cropped back, huge Poisson λ →
≈ x) or a ValueError whose message names the problem — never another exception, a
crash of the process, or silent nonsense.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from denoise_lib import bench, classical
from denoise_lib.noise import (POISSON_NORMAL_ABOVE, Gaussian, Poisson, Speckle,
                               parse_noise)

DENOISERS = {"bm3d": classical.bm3d, "nlm": classical.nlm, "tv": classical.tv}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noisy(shape, sigma: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A random clean image in [0, 1] and its (unclipped) Gaussian-noisy version."""
    g = gen(seed)
    x = torch.rand(shape, generator=g)
    return x, x + sigma * torch.randn(shape, generator=g)


def assert_valid_output(out, y) -> None:
    assert isinstance(out, torch.Tensor)
    assert out.shape == y.shape and out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    assert float(out.min()) >= 0 and float(out.max()) <= 1


# --------------------------------------------------------------------------- the reported cases

@pytest.mark.parametrize("channels", [1, 3])
def test_bm3d_pads_an_image_smaller_than_its_block(channels):
    x = torch.full((1, channels, 3, 5), 0.5)
    y = Gaussian(0.1)(x, gen(1))
    out = classical.bm3d(y, 0.1)
    assert_valid_output(out, y)
    # denoised, not just passed through: the error of a flat patch drops by more than half
    assert float(((out - x) ** 2).mean()) < 0.5 * float(((y - x) ** 2).mean())


def test_bm3d_on_exactly_its_block_size_does_not_crash_the_process():
    # bm3d 4.0.3 segfaults on an 8×8 input; run it in a child so that a crash fails this test only
    code = ("import torch; from denoise_lib import classical; "
            "o = classical.bm3d(torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)), 0.1); "
            "print(tuple(o.shape), bool(torch.isfinite(o).all()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("(1, 1, 8, 8) True")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", [0.1, None])
def test_nlm_on_a_1x1_image_returns_the_input(channels, sigma):
    y = torch.rand((1, channels, 1, 1), generator=gen(2))
    out = classical.nlm(y, sigma)
    assert out.shape == y.shape and out.dtype == torch.float32
    assert torch.equal(out, y)


@pytest.mark.parametrize("name", DENOISERS)
def test_sigma_zero_returns_the_input(name):
    y = torch.rand((2, 3, 12, 10), generator=gen(3))
    out = DENOISERS[name](y, 0.0)
    assert out.dtype == torch.float32 and torch.equal(out, y)


def test_tv_with_a_subnormal_sigma_returns_the_input():
    y = torch.rand((1, 1, 16, 16), generator=gen(4))
    out = classical.tv(y, 5e-324)  # skimage divides by the weight: NaN before
    assert torch.equal(out, y)


def test_harness_runs_tv_with_zero_noise(tmp_path):
    out = tmp_path / "r.json"
    code = bench.main(["--methods", "noisy", "tv", "--test", "skimage-gray", "--test-limit", "1",
                       "--draws", "1", "--noise", "gaussian:0", "--json", str(out), "--no-progress"])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["config"]["noise"] == "gaussian:0"
    tv = res["results"][1]
    assert tv["method"] == "tv" and tv["note"] == "σ known"
    assert tv["ssim"] == pytest.approx(1.0)  # the clean image itself (PSNR is infinite → null)
    assert tv["psnr"] is None or tv["psnr"] > 100


@pytest.mark.parametrize("lam", [1e7, 1e12, 1e20, 1e300])
def test_poisson_with_huge_lambda_is_close_to_x_and_never_negative(lam):
    x = torch.rand((2, 3, 32, 32), generator=gen(5))
    x[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 1e-7, 0.5])
    y = Poisson(lam)(x, gen(6))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert bool(torch.isfinite(y).all()) and float(y.min()) >= 0
    tol = 7 * torch.sqrt(x.double() / lam) + 2e-7 * x.double() + 1e-30
    assert bool(((y.double() - x.double()).abs() <= tol).all())
    assert float(y[0, 0, 0, 0]) == 0.0  # no photons from a black pixel


def test_poisson_of_1e20_on_a_white_image_is_white():
    y = Poisson(1e20)(torch.ones(1, 1, 4, 4), gen(0))
    assert torch.allclose(y, torch.ones_like(y), atol=1e-6)


def test_poisson_normal_approximation_has_the_poisson_moments_and_joins_the_exact_draws():
    lam = 2 * POISSON_NORMAL_ABOVE  # x = 0.4 → exact counts, x = 0.6 → normal approximation
    x = torch.cat([torch.full((1, 1, 256, 256), 0.4), torch.full((1, 1, 256, 256), 0.6)], dim=3)
    y = Poisson(lam)(x, gen(7)).double()
    for part, value in ((y[..., :256], 0.4), (y[..., 256:], 0.6)):
        r = part.flatten()
        n = r.numel()
        m, v = float(r.mean()), float(r.var())
        assert abs(m - value) < 5 * math.sqrt(value / lam / n)
        assert abs(v - value / lam) < 5 * (value / lam) * math.sqrt(2 / n)
    k = y[..., :256] * lam
    assert torch.allclose(k, k.round(), atol=0.1)  # below the threshold: integer counts (float32)


@pytest.mark.parametrize("make", [lambda: Gaussian(25), lambda: Gaussian((5 / 255, 50)), lambda: Gaussian((5, 50))],
                         ids=["fixed", "range-hi", "range"])
def test_gaussian_sigma_on_the_255_scale_is_refused_with_a_hint(make):
    with pytest.raises(ValueError, match=r"\[0, 1\]") as e:
        make()
    assert "/255" in str(e.value)


@pytest.mark.parametrize("name", DENOISERS)
def test_classical_sigma_on_the_255_scale_is_refused_with_a_hint(name):
    _, y = noisy((1, 1, 16, 16), 25 / 255)
    with pytest.raises(ValueError, match="25/255") as e:
        DENOISERS[name](y, 25)
    assert "[0, 1]" in str(e.value) and name in str(e.value)


@pytest.mark.parametrize("sigma", [25 / 255, None])
def test_classical_refuses_an_image_on_the_255_scale(sigma):
    _, y = noisy((1, 1, 32, 32), 25 / 255)
    with pytest.raises(ValueError, match="255"):
        classical.tv(255 * y, sigma)


def test_spec_strings_keep_the_255_scale_convention():
    assert parse_noise("gaussian:25").sigma_range == (25 / 255, 25 / 255)
    assert parse_noise("gaussian:255").sigma_range == (1.0, 1.0)
    with pytest.raises(ValueError, match="at most 255"):
        parse_noise("gaussian:300")
    with pytest.raises(ValueError, match="at most 255"):
        parse_noise("gaussian:5-300")


@pytest.mark.parametrize("model", [Gaussian(1e-8), Gaussian((1e-8, 0.5)), Gaussian(0.1), Gaussian(1.0), Gaussian(0.0),
                                   Gaussian(1e-4 / 255), Poisson(1e-5), Poisson((1e-5, 1e20)), Poisson(1e300),
                                   Poisson(0.1 + 0.2), Speckle(1e-7), Speckle(0.0), Speckle(1 / 3)],
                         ids=lambda m: repr(m))
def test_spec_round_trips_exactly(model):
    again = parse_noise(model.spec)
    assert type(again) is type(model) and again == model
    assert again.spec == model.spec


@pytest.mark.parametrize("model,spec", [
    (Gaussian(25 / 255), "gaussian:25"), (Gaussian((5 / 255, 50 / 255)), "gaussian:5-50"),
    (Gaussian(12.5 / 255), "gaussian:12.5"), (Poisson(30), "poisson:30"), (Poisson((5, 50)), "poisson:5-50"),
    (Speckle(0.1), "speckle:0.1"), (Gaussian(1e-8), "gaussian:2.55e-6"), (Poisson(1e20), "poisson:1e+20")])
def test_common_specs_stay_pretty(model, spec):
    assert model.spec == spec


# --------------------------------------------------------------------------- clear errors

@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True, [0.1, 0.2, 0.3], [[0.1]]],
                         ids=["negative", "nan", "inf", "string", "bool", "wrong-length", "2d"])
def test_classical_bad_sigma_raises_value_error_naming_sigma(name, bad):
    y = torch.rand((2, 1, 8, 8), generator=gen(8))
    with pytest.raises(ValueError, match="σ|sigma") as e:
        DENOISERS[name](y, bad)
    assert name in str(e.value)


@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_classical_non_finite_pixels_raise(name, value):
    y = torch.rand((1, 1, 8, 8), generator=gen(9))
    y[0, 0, 3, 3] = value
    with pytest.raises(ValueError, match="NaN or infinite"):
        DENOISERS[name](y, 0.1)


@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("bad", [torch.rand(1, 5, 8, 8), torch.rand(1, 1, 1, 8, 8),
                                 torch.ones(1, 1, 8, 8, dtype=torch.int32), torch.rand(1, 1, 0, 8), "not an image", None],
                         ids=["5-channels", "rank-5", "int32", "empty", "string", "none"])
def test_classical_bad_image_raises_value_error(name, bad):
    with pytest.raises(ValueError, match=f"{name}: bad image y"):
        DENOISERS[name](bad, 0.1)


@pytest.mark.parametrize("call,match", [
    (lambda y: classical.nlm(y, 0.1, patch_size=0), "patch_size"),
    (lambda y: classical.nlm(y, 0.1, patch_distance=2.5), "patch_distance"),
    (lambda y: classical.nlm(y, 0.1, h_factor=float("nan")), "h_factor"),
    (lambda y: classical.tv(y, 0.1, weight_factor=-1.0), "weight_factor"),
])
def test_classical_bad_parameters_raise_before_any_work(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.rand(1, 1, 8, 8))


def test_estimate_sigma_needs_more_than_one_pixel():
    with pytest.raises(ValueError, match="1×1"):
        classical.estimate_sigma(torch.rand(1, 3, 1, 1))


def test_estimate_sigma_on_a_line_of_pixels_uses_the_1d_rule():
    x = torch.full((1, 1, 1, 4096), 0.5)
    est = classical.estimate_sigma(Gaussian(0.1)(x, gen(10)))
    assert abs(est[0] - 0.1) < 0.01  # the 2-D rule gives ≈ 0 here: no diagonal detail band


@pytest.mark.parametrize("make", [lambda: Gaussian(-0.1), lambda: Gaussian(float("nan")), lambda: Gaussian("0.1"),
                                  lambda: Gaussian(True), lambda: Gaussian((0.1,)), lambda: Gaussian((0.1, 0.2, 0.3)),
                                  lambda: Poisson(0), lambda: Poisson(1e-31), lambda: Poisson(float("inf")),
                                  lambda: Poisson("30"), lambda: Speckle(float("nan")), lambda: Speckle(-1.0),
                                  lambda: Speckle(1e3), lambda: Speckle("0.1")],
                         ids=["g-neg", "g-nan", "g-str", "g-bool", "g-1tuple", "g-3tuple", "p-0", "p-tiny", "p-inf",
                              "p-str", "s-nan", "s-neg", "s-huge", "s-str"])
def test_noise_model_bad_parameters_raise_value_error(make):
    with pytest.raises(ValueError, match="σ|λ|variance"):
        make()


@pytest.mark.parametrize("model", [Gaussian(0.1), Poisson(30), Speckle(0.1)], ids=lambda m: m.spec)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_noise_models_refuse_non_finite_pixels(model, value):
    x = torch.rand(1, 1, 4, 4)
    x[0, 0, 1, 1] = value
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(x, gen(0))


@pytest.mark.parametrize("bad", ["gaussian:1e400", "gaussian:1e", "poisson:1e-5-", "speckle:1e-5-1e-4", "poisson:inf",
                                 "gaussian:nan", "speckle:1e9999999"])
def test_malformed_specs_raise_value_error(bad):
    with pytest.raises(ValueError, match="accepted forms"):
        parse_noise(bad)


# --------------------------------------------------------------------------- size sweep

@pytest.mark.parametrize("name", DENOISERS)
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (3, 5), (7, 1), (8, 8)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("sigma", [0.1, None], ids=["known", "estimated"])
def test_tiny_images_give_a_valid_result_or_a_value_error(name, size, channels, sigma):
    _, y = noisy((1, channels, *size), 0.1, seed=11)
    try:
        out = DENOISERS[name](y, sigma)
    except ValueError as e:
        assert str(e)
        return
    assert_valid_output(out, y)


# --------------------------------------------------------------------------- properties

def _noisy_case(draw, max_side: int):
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    c = draw(st.sampled_from([1, 3]))
    sigma = draw(st.floats(0, 0.3))
    known = draw(st.booleans())
    x, y = noisy((1, c, h, w), sigma, seed=draw(st.integers(0, 2 ** 31 - 1)))
    return y, sigma, (sigma if known else None)


@st.composite
def small_cases(draw):
    return _noisy_case(draw, 16)


@st.composite
def cases(draw):
    return _noisy_case(draw, 40)


def _check_denoiser(fn, case):
    y, true_sigma, sigma = case
    out = fn(y, sigma)
    assert_valid_output(out, y)
    if sigma == 0 or y.shape[-2:] == (1, 1):
        assert torch.equal(out, y.clamp(0, 1))


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_cases())
def test_property_bm3d_output(case):
    _check_denoiser(classical.bm3d, case)


@settings(max_examples=40, deadline=None, database=None)
@given(cases())
def test_property_nlm_output(case):
    _check_denoiser(classical.nlm, case)


@settings(max_examples=40, deadline=None, database=None)
@given(cases())
def test_property_tv_output(case):
    _check_denoiser(classical.tv, case)


unit = st.floats(0, 1)
lams = st.floats(1e-30, 1e300)


def _pair(values):
    return st.tuples(values, values).map(lambda t: tuple(sorted(t)))


noise_models = st.one_of(
    unit.map(Gaussian), _pair(unit).map(Gaussian),
    lams.map(Poisson), _pair(lams).map(Poisson),
    st.floats(0, 100).map(Speckle),
)


@settings(max_examples=150, deadline=None, database=None)
@given(noise_models, st.integers(1, 3), st.sampled_from([1, 3]), st.integers(1, 24), st.integers(1, 24),
       st.integers(0, 2 ** 31 - 1))
def test_property_noise_output_is_finite_float32_of_the_input_shape(model, n, c, h, w, seed):
    x = torch.rand((n, c, h, w), generator=gen(seed))
    y = model(x, gen(seed + 1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert bool(torch.isfinite(y).all())
    if isinstance(model, Poisson):
        assert float(y.min()) >= 0


@settings(max_examples=300, deadline=None, database=None)
@given(noise_models)
def test_property_spec_round_trips(model):
    again = parse_noise(model.spec)
    assert type(again) is type(model) and again == model


@pytest.mark.parametrize("name", DENOISERS)
def test_an_estimated_sigma_above_1_on_unit_range_data_is_capped(name):
    y = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])  # a 2×2 checkerboard: the wavelet MAD gives σ̂ > 1
    assert classical.estimate_sigma(y)[0] > 1
    assert_valid_output(DENOISERS[name](y, None), y)


# ------------------------------------------------------------------ Poisson–Gaussian (camera) noise
def test_poisson_gaussian_has_the_stated_moments_and_round_trips():
    from denoise_lib.noise import PoissonGaussian, parse_noise

    m = PoissonGaussian(60.0, 5 / 255)
    x = torch.full((1, 1, 256, 256), 0.5).repeat(4, 1, 1, 1)
    x[1], x[2], x[3] = 0.1, 0.9, 0.0
    y = m(x, torch.Generator().manual_seed(0))
    r = (y - x).double()
    for i in range(4):
        assert abs(float(r[i].mean())) < 3e-3
        assert float(r[i].var()) == pytest.approx(float(m.variance(x[i]).mean()), rel=0.05)
    assert m.spec == "poisson-gaussian:60,5"
    back = parse_noise(m.spec)
    assert back == m and parse_noise("poisson-gaussian:30,2.5") == PoissonGaussian(30.0, 2.5 / 255)
    with pytest.raises(ValueError, match="25/255|0–255|\\[0, 1\\]"):
        PoissonGaussian(60.0, 5)
    with pytest.raises(ValueError, match="LAMBDA,SIGMA255"):
        parse_noise("poisson-gaussian:60")
