"""Noise2Same (Xie et al. 2020, Eq. 7): both loss terms, λ_inv, no stop-gradient.

Training through :func:`denoise_lib.train.fit` (and checkpoint / resume) is covered for
every registered method by ``test_contract.py``.
"""
from __future__ import annotations

import pytest
import torch

from imagehelpers import Spy
from denoise_lib import masks, methods
from denoise_lib.methods import Batch
from denoise_lib.methods.noise2same import Noise2Same, theorem1_weight
from denoise_lib.models import UNet
from denoise_lib.noise import Gaussian, Poisson

SIGMA = 25 / 255


def gen(seed):
    return torch.Generator().manual_seed(seed)


def make(**kw):
    torch.manual_seed(0)
    return Noise2Same(Spy(UNet(1, features=8, depth=2)), **kw)


def noisy_batch(seed=1, b=2, size=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, 1, size, size), generator=g) * 0.5 + 0.25
    return x + SIGMA * torch.randn(x.shape, generator=g)


def test_registered_and_built_with_the_noise_model():
    m = methods.build("noise2same", channels=1, noise="gaussian:25", lambda_inv="2sigma")
    assert type(m) is Noise2Same and m.requires == "single" and m.name == "noise2same"
    assert m.lambda_value == pytest.approx(2 * SIGMA)
    # class default and registry (the harness) agree: Theorem 1's weight in the units of the
    # data, 2·std per batch, not the literal 2 that Theorem 1 gives for normalised data
    assert Noise2Same(UNet(3)).lambda_spec == "2std" and Noise2Same(UNet(3)).lambda_value is None
    assert Noise2Same(UNet(3)).config["lambda_inv"] == "2std"
    assert methods.build("noise2same", channels=3).lambda_spec == "2std"
    assert methods.build("noise2same", channels=3).lambda_value is None


def test_theorem1_weight_is_twice_the_std_of_all_noisy_pixels():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand((1, 1, 8, 10), generator=g), torch.rand((1, 1, 6, 4), generator=g) * 0.5]
    flat = torch.cat([t.flatten() for t in images]).double()
    assert theorem1_weight(images) == pytest.approx(2 * float(flat.std(unbiased=False)), rel=1e-12)
    assert theorem1_weight(images[0]) == pytest.approx(2 * float(images[0].double().std(unbiased=False)))
    assert isinstance(theorem1_weight(images), float)
    # the unit: scaling the data scales the weight (normalised data: std 1 → the paper's 2)
    z = (flat - flat.mean()) / flat.std(unbiased=False)
    assert theorem1_weight(z) == pytest.approx(2.0)
    assert theorem1_weight([3 * t for t in images]) == pytest.approx(3 * theorem1_weight(images))
    with pytest.raises(ValueError, match="at least one"):
        theorem1_weight([])
    with pytest.raises(ValueError, match="two"):
        theorem1_weight(torch.zeros(1))


def test_default_weight_is_below_the_literal_2_on_unit_range_data():
    """On [0, 1] images the default 2·std is Theorem 1's weight; the literal 2 is 1/std times larger."""
    y = noisy_batch(b=4, size=64)
    m = make()
    lam = float(m.lambda_for(y))
    assert lam == pytest.approx(2 * float(y.std(unbiased=False)))
    assert 2 * SIGMA * 0.9 < lam < 2.0 / 2                    # near or above 2σ, far below 2


def test_both_terms_by_hand():
    y = noisy_batch()
    m = make(lambda_inv=0.7)
    loss, logs = m.loss(Batch(noisy=y, generator=gen(3)))
    out, out_m = m.net.outputs
    assert torch.equal(m.net.inputs[0], y)                      # first pass: the full noisy image
    masked, mask = masks.mask_batch(y, 0.005, "gaussian", sigma=0.2, generator=gen(3))
    assert torch.equal(m.net.inputs[1], masked)                 # second pass: y_{J^c}
    assert mask.sum() >= 2 and mask.float().mean() == pytest.approx(1 / 14 ** 2, rel=0.8)
    sel = mask.expand_as(y)
    rec = ((out - y) ** 2).mean()
    inv = ((out[sel] - out_m[sel]) ** 2).mean().sqrt()
    assert torch.allclose(logs["rec"], rec) and torch.allclose(logs["inv"], inv)
    assert torch.allclose(logs["inv_mse"], inv ** 2)
    assert torch.allclose(loss, rec + 0.7 * inv)
    assert torch.allclose(logs["rec_masked"], ((out_m[sel] - y[sel]) ** 2).mean())
    assert logs["lambda_inv"] == pytest.approx(0.7) and isinstance(logs["lambda_inv"], float)
    assert all(not v.requires_grad for k, v in logs.items() if k != "lambda_inv")


def test_gaussian_replacement_is_relative_to_the_image_statistics():
    y = noisy_batch(b=8, size=64)
    masked, mask = masks.mask_batch(y, 0.005, "gaussian", sigma=0.2, generator=gen(4))
    mean, std = masks.masked_mean(y, mask)
    z = ((masked - mean) / std)[mask.expand_as(y)]               # normalised replacement values
    assert abs(z.mean()) < 0.1 and abs(z.std() - 0.2) < 0.06


def test_lambda_2sigma_uses_sigma():
    y = noisy_batch()
    a = make(lambda_inv="2sigma", noise=Gaussian(SIGMA))
    loss, logs = a.loss(Batch(noisy=y, generator=gen(5)))
    assert torch.allclose(loss, logs["rec"] + 2 * SIGMA * logs["inv"])
    b = make(lambda_inv="2sigma", noise="gaussian:50")
    assert b.lambda_value == pytest.approx(2 * 50 / 255)


@pytest.mark.parametrize("noise,match", [(None, "noise level"), (Poisson(30), "Gaussian"),
                                         ("speckle:0.1", "Gaussian"), (Gaussian((5 / 255, 50 / 255)), "one σ")])
def test_lambda_2sigma_without_a_known_sigma_raises(noise, match):
    with pytest.raises(ValueError, match=match):
        make(lambda_inv="2sigma", noise=noise)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "3sigma", None])
def test_bad_lambda_raises(bad):
    with pytest.raises(ValueError, match="lambda_inv"):
        make(lambda_inv=bad)


def test_lambda_2std_is_twice_the_batch_std():
    y = noisy_batch()
    m = make(lambda_inv="2std")
    loss, logs = m.loss(Batch(noisy=y, generator=gen(6)))
    lam = 2 * y.std(unbiased=False)
    assert torch.allclose(logs["lambda_inv"], lam) and not logs["lambda_inv"].requires_grad
    assert torch.allclose(loss, logs["rec"] + lam * logs["inv"])


def test_no_stop_gradient_the_invariance_term_reaches_both_passes():
    y = noisy_batch()
    m = make(lambda_inv=2.0)
    loss, logs = m.loss(Batch(noisy=y, generator=gen(7)))
    loss.backward()
    out, out_m = m.net.outputs
    _, mask = masks.mask_batch(y, 0.005, "gaussian", sigma=0.2, generator=gen(7))
    sel = mask.expand_as(y)
    rec_grad = 2 * (out - y).detach() / y.numel()
    inv_grad = out.grad - rec_grad                               # what the invariance term adds to f(y)
    assert inv_grad[sel].abs().min() > 0                         # gradient through f(y) on J ...
    assert torch.allclose(inv_grad[~sel], torch.zeros_like(inv_grad[~sel]), atol=1e-9)
    assert out_m.grad[sel].abs().min() > 0                       # ... and through f(y_{J^c})
    assert (out_m.grad[~sel] == 0).all()
    assert torch.allclose(inv_grad[sel], -out_m.grad[sel], atol=1e-9)  # equal and opposite


def test_invariant_network_gives_finite_gradients():
    """sqrt at 0: a network that ignores its input must not produce NaN gradients."""
    class Const(torch.nn.Module):
        in_channels = 1

        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return self.b.view(1, 1, 1, 1).expand_as(x)

    m = Noise2Same(Const())
    loss, logs = m.loss(Batch(noisy=noisy_batch()))
    loss.backward()
    assert torch.isfinite(m.net.b.grad).all() and float(logs["inv_mse"]) == 0


def test_donut_replacement_and_bad_arguments():
    m = make(replacement="donut")
    y = noisy_batch()
    m.loss(Batch(noisy=y, generator=gen(8)))
    masked, _ = masks.mask_batch(y, 0.005, "donut", generator=gen(8))
    assert torch.equal(m.net.inputs[1], masked)
    with pytest.raises(ValueError, match="replacement"):
        make(replacement="ups")
    with pytest.raises(ValueError, match="fraction"):
        make(fraction=0.5)
    with pytest.raises(ValueError, match="sigma_r"):
        make(sigma_r=-0.1)


def test_inference_is_the_plain_forward_pass():
    m = make()
    y = noisy_batch(b=1)
    with torch.no_grad():
        want = m.net.net(y)
    assert torch.allclose(m.denoise(y), want)


def test_terms_take_the_generator_explicitly_and_leave_the_global_rng_alone():
    y = noisy_batch()
    m = make()
    before = torch.get_rng_state()
    a, b = m.terms(y, gen(9)), m.terms(y, gen(9))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["inv_mse"], m.terms(y, gen(10))["inv_mse"])
    assert torch.equal(torch.get_rng_state(), before)
    with pytest.raises(TypeError, match="generator"):
        m.terms(y, None)
