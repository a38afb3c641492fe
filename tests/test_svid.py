"""SVID (Lin et al. 2021): the ±1 re-noising of Eq. (9), the stop-gradient of Eq. (10), Eq. (8)'s data term."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from scipy import stats

from imagehelpers import Spy, smooth_images
from denoise_lib import methods
from denoise_lib.data import TrainingSet, load
from denoise_lib.methods import Batch
from denoise_lib.methods.svid import (SVID, DEFAULT_FIDELITY, DEFAULT_FIDELITY_START, DEFAULT_WARMUP_STEPS,
                                      collapse_stats, noise_components, random_signs, renoise)
from denoise_lib.models import UNet
from denoise_lib.train import Budget, fit

SIGMA = 25 / 255


def make(channels=1, **kw):
    torch.manual_seed(0)
    return SVID(Spy(UNet(channels, features=8, depth=2), detach_inputs=False), **kw)


def noisy_batch(seed=1, b=2, c=1, h=32, w=32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, c, h, w), generator=g) * 0.5 + 0.25
    return x + SIGMA * torch.randn(x.shape, generator=g)


def test_registry_names_and_settings():
    m = methods.build("svid", channels=1)
    assert type(m) is SVID and m.name == "svid" and m.requires == "single" and m.stop_gradient
    assert m.fidelity == DEFAULT_FIDELITY and isinstance(m, methods.Method)
    n = methods.build("svid-nostopgrad", channels=3)
    assert type(n) is SVID and n.name == "svid-nostopgrad" and not n.stop_gradient
    assert (m.fidelity_start, m.warmup_steps) == (DEFAULT_FIDELITY_START, DEFAULT_WARMUP_STEPS)
    assert SVID(UNet(1), fidelity=0).fidelity == 0.0
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="fidelity"):
            SVID(UNet(1), fidelity=bad)
        with pytest.raises(ValueError, match="fidelity_start"):
            SVID(UNet(1), fidelity_start=bad)
    with pytest.raises(ValueError, match="warmup_steps"):
        SVID(UNet(1), warmup_steps=-1)


def test_fidelity_schedule():
    m = SVID(UNet(1, features=8, depth=2), fidelity=0.1, fidelity_start=1.0, warmup_steps=100)
    assert m.fidelity_at(0) == pytest.approx(1.0)
    assert m.fidelity_at(50) == pytest.approx(0.55)
    assert m.fidelity_at(100) == pytest.approx(0.1) and m.fidelity_at(10_000) == pytest.approx(0.1)
    assert SVID(UNet(1), fidelity=0.3, warmup_steps=0).fidelity_at(0) == pytest.approx(0.3)
    # the loss uses the weight of the batch's step
    y = noisy_batch()
    for step, lam in ((0, 1.0), (50, 0.55), (400, 0.1)):
        mm = make(fidelity=0.1, fidelity_start=1.0, warmup_steps=100)
        loss, logs = mm.loss(Batch(noisy=y, step=step))
        out1, out2 = mm.net.outputs
        want = ((out2 - out1.detach()) ** 2).mean() + lam * ((out1 - y) ** 2).mean()
        assert torch.allclose(loss, want) and logs["fidelity"] == pytest.approx(lam)
        assert type(logs["fidelity"]) is float                   # a host-side schedule value


def test_signs_are_fair_coin_flips():
    m = random_signs((4, 3, 50, 50), generator=torch.Generator().manual_seed(0))
    assert set(m.unique().tolist()) == {-1.0, 1.0} and m.dtype == torch.float32
    plus = int((m == 1).sum())
    assert stats.binomtest(plus, m.numel(), 0.5).pvalue > 1e-3
    # neighbouring entries (and channels) are independent: P(m_i = m_{i+1}) = ½
    same = int((m[..., 1:] == m[..., :-1]).sum())
    assert stats.binomtest(same, m[..., 1:].numel(), 0.5).pvalue > 1e-3
    same_c = int((m[:, 1:] == m[:, :-1]).sum())
    assert stats.binomtest(same_c, m[:, 1:].numel(), 0.5).pvalue > 1e-3
    # a biased coin fails the same test (the test can fail)
    biased = (torch.rand(m.numel(), generator=torch.Generator().manual_seed(1)) < 0.52).sum()
    assert stats.binomtest(int(biased), m.numel(), 0.5).pvalue < 1e-3


def test_renoise_is_exact_and_fresh():
    # dyadic values: every operation below is exact in float32
    g = torch.Generator().manual_seed(3)
    y = torch.randint(-64, 320, (2, 1, 17, 23), generator=g).float() / 256
    fy = torch.randint(0, 256, (2, 1, 17, 23), generator=g).float() / 256
    y2, m = renoise(y, fy, generator=g)
    assert torch.equal(y2 - fy, m * (y - fy))
    assert torch.equal(y2[m == 1], y[m == 1])                   # kept pixels are the observation
    assert torch.equal(y2[m == -1], (2 * fy - y)[m == -1])      # flipped ones are reflected about F(y)
    y2b, m2 = renoise(y, fy, generator=g)
    assert not torch.equal(m, m2) and not torch.equal(y2, y2b)  # a new mask on every call
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(renoise(y, fy, generator=g1)[1], renoise(y, fy, generator=g2)[1])
    with pytest.raises(ValueError, match="same shape"):
        renoise(y, fy[..., :-1])
    with pytest.raises(ValueError, match=r"\+1 and -1"):
        renoise(y, fy, mask=torch.zeros_like(y))


def test_mask_properties_of_eq_11():
    """|n₂| = |n̂| entry by entry (same second moment), n₂ has mean ≈ 0, y₂ ≠ y when n̂ ≠ 0."""
    g = torch.Generator().manual_seed(0)
    y = noisy_batch(b=4, h=64, w=64)
    fy = y - 0.05 - 0.02 * torch.rand(y.shape, generator=g)      # residual with a non-zero mean 0.06
    y2, m = renoise(y, fy, generator=g)
    comps = noise_components(y, fy, m)
    assert torch.equal(comps["n2"].abs(), comps["n_hat"].abs())
    assert comps["n_hat"].mean() > 0.05 and abs(float(comps["n2"].mean())) < 0.01
    assert not torch.equal(y2, y)
    y2_id, _ = renoise(y, y.clone(), generator=g)                 # the identity: n̂ = 0 and y₂ = y
    assert torch.equal(y2_id, y)


def test_loss_draws_fresh_masks_from_batch_generator_only():
    y = noisy_batch()
    m = make(fidelity=0.0, warmup_steps=0)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    g = torch.Generator().manual_seed(1)
    m.loss(Batch(noisy=y, generator=g))
    m.loss(Batch(noisy=y, generator=g))
    m.loss(Batch(noisy=y, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(m.net.inputs[0], y) and torch.equal(m.net.inputs[2], y)
    assert not torch.equal(m.net.inputs[1], m.net.inputs[3])     # two steps, two different y₂
    assert torch.equal(m.net.inputs[1], m.net.inputs[5])         # the same seed, the same mask
    assert torch.equal(before, torch.get_rng_state())            # the global RNG is never used
    with pytest.raises(ValueError, match="generator"):
        m.terms(y)


def test_stop_gradient_flows_only_through_second_pass():
    y = noisy_batch()
    m = make(fidelity=0.0, warmup_steps=0)
    loss, logs = m.loss(Batch(noisy=y))
    fy, out2 = m.net.outputs
    y2 = m.net.inputs[1]
    assert not fy.requires_grad and not y2.requires_grad and out2.requires_grad
    assert math.isfinite(float(loss.detach())) and torch.allclose(loss, ((out2 - fy) ** 2).mean())
    loss.backward()
    grads = [p.grad.clone() for p in m.net.parameters()]
    # the same gradient from the loss written with constants: ‖F(y₂) − c‖², c = F(y) detached
    m.zero_grad()
    ref = ((m.net.net(y2.detach()) - fy.detach()) ** 2).mean()
    ref.backward()
    for a, b in zip(grads, (p.grad for p in m.net.parameters())):
        assert torch.allclose(a, b, atol=1e-7)
    assert all(v.ndim == 0 and not v.requires_grad for k, v in logs.items() if k != "fidelity")


def test_stop_gradient_with_fidelity_term():
    """With Eq. (8)'s data term, F(y) gets exactly the data term's gradient and nothing from the target."""
    y = noisy_batch()
    lam = 0.3
    m = make(fidelity=lam, warmup_steps=0)
    loss, logs = m.loss(Batch(noisy=y))
    fy, out2 = m.net.outputs
    assert fy.requires_grad and not m.net.inputs[1].requires_grad
    assert torch.allclose(loss, ((out2 - fy.detach()) ** 2).mean() + lam * ((fy - y) ** 2).mean())
    loss.backward()
    assert torch.allclose(fy.grad, lam * 2 * (fy.detach() - y) / y.numel(), atol=1e-9)
    assert torch.allclose(logs["fid"], ((fy.detach() - y) ** 2).mean())


def test_without_stop_gradient_the_target_gets_gradient():
    y = noisy_batch()
    m = make(stop_gradient=False, fidelity=0.0, warmup_steps=0)
    loss, _ = m.loss(Batch(noisy=y))
    fy, out2 = m.net.outputs
    assert fy.requires_grad and m.net.inputs[1].requires_grad   # the target and y₂ are in the graph
    loss.backward()
    sv_part = -2 * (out2.detach() - fy.detach()) / y.numel()    # ∂L/∂target alone
    assert fy.grad is not None and fy.grad.abs().sum() > 0
    assert not torch.allclose(fy.grad, torch.zeros_like(fy.grad))
    assert not torch.allclose(fy.grad, sv_part)                 # plus the path through y₂


@pytest.mark.parametrize("channels,size", [(1, (31, 45)), (3, (20, 33))])
def test_gray_rgb_odd_sizes(channels, size):
    y = noisy_batch(c=channels, h=size[0], w=size[1])
    for kw in ({}, {"stop_gradient": False}, {"fidelity": 0.0, "warmup_steps": 0}):
        m = make(channels, **kw)
        loss, logs = m.loss(Batch(noisy=y))
        assert loss.ndim == 0 and math.isfinite(float(loss.detach()))
        assert {"sv", "fid", "out_mean_abs", "out_var_ratio", "res_std"} <= set(logs)
        assert m.net.inputs[1].shape == y.shape
    out = make(channels).denoise(y)
    assert out.shape == y.shape


def test_noise_samples_for_the_histograms():
    clean = torch.cat(smooth_images(2, size=(24, 20)))
    y = clean + SIGMA * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    m = make()
    s = m.noise_samples(y, generator=torch.Generator().manual_seed(1))
    assert set(s) == {"n_hat", "n2"}                                   # no true noise without clean
    s = m.noise_samples(y, clean, generator=torch.Generator().manual_seed(1))
    assert set(s) == {"n_hat", "n2", "n"} and all(v.shape == y.shape for v in s.values())
    assert torch.allclose(s["n"], y - clean)
    assert torch.equal(s["n2"].abs(), s["n_hat"].abs())
    with torch.no_grad():
        assert torch.allclose(s["n_hat"], y - m.net.net(y), atol=1e-6)
    assert m.training                                                  # mode restored


def test_collapse_stats():
    y = noisy_batch()
    assert collapse_stats(torch.zeros_like(y), y)["collapsed"]
    assert collapse_stats(torch.full_like(y, 0.5), y)["collapsed"]     # constant: zero variance
    s = collapse_stats(y, y)
    assert not s["collapsed"] and s["var_ratio"] == pytest.approx(1.0)
    assert s["mean_abs"] == pytest.approx(float(y.abs().mean()))


def test_stop_gradient_decides_collapse_from_an_image_like_start():
    """Their Fig. 9 from an image-like start, as in section 3(b) of the Part 7 notebook.

    One network, trained for 100 steps with the notebook's settings (24-feature U-Net,
    data-term warm-up), is copied twice; each copy then trains Eq. (10) exactly
    (fidelity 0) for 200 steps with a fresh optimiser. Without the stop-gradient the
    output variance collapses towards 0 (measured here: 3–5 % of Var y after 200 steps on
    the scikit-image samples, below 1 % on BSD400 in the notebook); with it the output
    keeps the image's variance (≈ 0.65 of Var y)."""
    clean = load("skimage-gray")
    data = TrainingSet.from_clean(clean, "gaussian:25", seed=0)
    budget = Budget("custom", steps=600, seconds=None, batch_size=4, patch_size=64, lr=1e-3)
    torch.manual_seed(0)
    start = SVID(UNet(1, features=24), warmup_steps=100)
    fit(start, data, budget, seed=0, progress=False, until=100)
    y = torch.cat([t[..., :128, :128] for t in data.noisy])
    ratio = {"start": collapse_stats(start.denoise(y), y)["var_ratio"]}
    for sg in (True, False):
        m = SVID(copy.deepcopy(start.net), stop_gradient=sg, fidelity=0.0, warmup_steps=0)
        fit(m, data, budget.replace(steps=200), seed=1, progress=False)
        ratio[sg] = collapse_stats(m.denoise(y), y)["var_ratio"]
    assert ratio["start"] > 0.3 and ratio[True] > 0.3, ratio
    assert ratio[False] < 0.15 * ratio[True], ratio


def test_the_loop_diagram_marks_the_stop_gradient():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from denoise_lib.course.svid_diagram import svid_loop

    for data_term in (True, False):
        fig = svid_loop(data_term=data_term)
        texts = " ".join(t.get_text() for t in fig.axes[0].texts)
        assert "stop-gradient" in texts and "fresh mask" in texts and "target" in texts
        assert ("kappa" in texts) == data_term                             # the data term of Eq. (8), weight κ
        assert fig.get_figwidth() <= 7.5
        plt.close(fig)
