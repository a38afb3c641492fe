"""Self2Align (Wang 2022): image ops, simulated motion, the alignment network, Eq. (7) sampler, the loss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imagehelpers import host_round_trip_guard, random_images, smooth_images
from denoise_lib import methods, ops
from denoise_lib.course import alignment
from denoise_lib.data import TrainingSet
from denoise_lib.data import motion
from denoise_lib.image import ImageError
from denoise_lib.methods import Batch
from denoise_lib.methods import self2align as s2a
from denoise_lib.methods.self2align import Self2Align
from denoise_lib.models import UNet
from denoise_lib.models.align import AlignNet, local_attention
SIGMA = 25 / 255


def tiny_method(channels=1, **kw):
    torch.manual_seed(0)
    return Self2Align(UNet(in_channels=channels, features=8, depth=2),
                      align_net=AlignNet(channels, features=8, width=8, levels=2, radius=2), **kw)


@pytest.fixture
def no_host_round_trips(monkeypatch):
    """Inside the ``with`` block, any host round trip raises (tests/imagehelpers.py)."""
    return host_round_trip_guard(monkeypatch)


def frames(b=2, c=1, h=32, w=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = smooth_images(b, size=(h, w), channels=c, seed=seed)
    x = torch.cat(x)
    return x + SIGMA * torch.randn(x.shape, generator=g), torch.roll(x, 1, dims=-1) + \
        SIGMA * torch.randn(x.shape, generator=g)


# ----------------------------------------------------------------------------- warp
@pytest.mark.parametrize("shape", [(2, 1, 17, 23), (1, 3, 8, 5), (1, 1, 1, 7)])
def test_warp_zero_flow_is_the_identity(shape):
    img = torch.rand(shape)
    out = ops.warp(img, torch.zeros(shape[0], 2, *shape[-2:]))
    assert out.shape == img.shape and torch.allclose(out, img, atol=1e-5)


def test_warp_integer_shift_is_a_roll_in_the_interior_and_channel_order():
    img = torch.rand(1, 3, 20, 24)
    flow = torch.zeros(1, 2, 20, 24)
    flow[:, 0], flow[:, 1] = 2.0, -1.0          # u = +2 (right), v = −1 (up)
    out = ops.warp(img, flow)
    # out[i, j] = img[i − 1, j + 2]  ⇔  roll by +1 row, −2 columns
    want = torch.roll(img, shifts=(1, -2), dims=(-2, -1))
    assert torch.allclose(out[..., 1:, :-2], want[..., 1:, :-2], atol=1e-5)
    assert not torch.allclose(out[..., 1:, :-2], torch.roll(img, shifts=(-2, 1), dims=(-2, -1))[..., 1:, :-2])
    valid = ops.valid_mask(flow)
    assert valid[..., 1:, :-2].all() and not valid[..., 0, :].any() and not valid[..., -2:].any()
    # border padding replicates the edge; bicubic agrees with bilinear at integer shifts
    assert torch.allclose(out[..., 0, :-2], img[..., 0, 2:], atol=1e-5)
    assert torch.allclose(ops.warp(img, flow, mode="bicubic")[..., 1:, :-2], want[..., 1:, :-2], atol=1e-4)


def test_warp_is_differentiable_in_the_flow_and_rejects_bad_input():
    img = torch.rand(1, 1, 9, 9)
    flow = torch.full((1, 2, 9, 9), 0.3, requires_grad=True)
    ops.warp(img, flow).sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="flow"):
        ops.warp(img, torch.zeros(1, 3, 9, 9))
    with pytest.raises(ValueError, match="does not fit"):
        ops.warp(img, torch.zeros(1, 2, 8, 9))
    with pytest.raises(ImageError):
        ops.warp(img[0], torch.zeros(1, 2, 9, 9))
    with pytest.raises(ValueError, match="padding"):
        ops.warp(img, torch.zeros(1, 2, 9, 9), padding="wrap")
    with pytest.raises(ValueError, match="mode"):
        ops.warp(img, torch.zeros(1, 2, 9, 9), mode="lanczos")


def test_gaussian_smooth_and_global_shift():
    x = torch.rand(2, 3, 11, 9)
    assert torch.equal(ops.gaussian_smooth(x, 0), x)
    s = ops.gaussian_smooth(x, 1.5)
    assert s.shape == x.shape and abs(float(s.mean() - x.mean())) < 0.02 and s.std() < x.std()
    assert torch.allclose(ops.gaussian_smooth(torch.full((1, 1, 5, 4), 0.3), 2.0), torch.full((1, 1, 5, 4), 0.3))
    with pytest.raises(ValueError, match="sigma"):
        ops.gaussian_smooth(x, -1)
    g = torch.Generator().manual_seed(0)
    img = ops.gaussian_smooth(torch.rand(1, 1, 60, 70, generator=g), 1.0)     # texture
    ref = img + 0.1 * torch.randn(1, 1, 60, 70, generator=g)
    moving = torch.roll(img, shifts=(2, -5), dims=(-2, -1)) + 0.1 * torch.randn(1, 1, 60, 70, generator=g)
    flow = alignment.global_shift(ref, moving, max_shift=8)
    # moving(p) = img(p_y − 2, p_x + 5), so warp(moving, flow) = img needs flow = (dx, dy) = (−5, +2)
    assert flow.shape == (1, 2, 60, 70) and (flow[:, 0] == -5).all() and (flow[:, 1] == 2).all()
    assert alignment.mismatch(img, ops.warp(moving, flow), border=8) < alignment.mismatch(img, moving, border=8)
    with pytest.raises(ValueError, match="max_shift"):
        alignment.global_shift(ref, moving, max_shift=40)


# ----------------------------------------------------------------------------- motion generator
def test_moving_sequence_is_reproducible_and_its_noise_independent_per_frame():
    x = smooth_images(1, size=(64, 80), seed=3)[0]
    a = motion.moving_sequence(x, "gaussian:25", frames=3, seed=7)
    b = motion.moving_sequence(x, "gaussian:25", frames=3, generator=torch.Generator().manual_seed(7))
    c = motion.moving_sequence(x, "gaussian:25", frames=3, seed=8)
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.flows, b.flows)
    assert not torch.equal(a.noisy, c.noisy) and not torch.equal(a.flows, c.flows)
    assert a.noisy.shape == a.clean.shape == (3, 1, 64, 80) and a.flows.shape == (3, 2, 64, 80)
    assert torch.equal(a.clean[0:1], x) and (a.flows[0] == 0).all()
    assert a.flows[1:].abs().amax() > 0.5                          # the other frames do move
    n = (a.noisy - a.clean).flatten(1)
    assert torch.allclose(n.std(1), torch.full((3,), SIGMA), rtol=0.05)
    corr = torch.corrcoef(n)
    assert (corr - torch.eye(3)).abs().max() < 0.05                # independent noise per frame
    # ground-truth flows: clean[t] ≈ warp(clean[0], flows[t]) away from the borders
    for t in (1, 2):
        w = ops.warp(a.clean[0:1], a.flows[t:t + 1], mode="bicubic").clamp(0, 1)
        assert (w - a.clean[t:t + 1])[..., 10:-10, 10:-10].abs().max() < 1e-4


def test_moving_sequence_bad_arguments():
    x = smooth_images(1, size=(32, 32))[0]
    with pytest.raises(ValueError, match="frames"):
        motion.moving_sequence(x, "gaussian:25", frames=1)
    with pytest.raises(ValueError, match="unknown motion"):
        motion.moving_sequence(x, "gaussian:25", shift=2)
    with pytest.raises(ValueError, match="max_shift"):
        motion.moving_sequence(x, "gaussian:25", max_shift=-1)
    with pytest.raises(ValueError, match="either"):
        motion.moving_sequence(x, "gaussian:25", seed=1, generator=torch.Generator())
    with pytest.raises(ImageError):
        motion.moving_sequence(torch.full((1, 1, 8, 8), float("nan")), "gaussian:25")


def test_random_flow_magnitudes_follow_the_settings():
    g = torch.Generator().manual_seed(0)
    f = motion.random_flow(90, 120, generator=g, max_shift=2.0, max_rotation=0.0, elastic_amplitude=0.0)
    assert torch.allclose(f, f[..., :1, :1].expand_as(f)) and f.abs().max() <= 2.0   # a pure shift
    f = motion.random_flow(90, 120, generator=g, max_shift=0.0, max_rotation=3.0, elastic_amplitude=0.0)
    assert f[..., 44:46, 59:61].abs().max() < 0.05 and f.abs().max() <= 75 * math.radians(3.0) + 1e-3
    f = motion.random_flow(90, 120, generator=g, max_shift=0, max_rotation=0, elastic_amplitude=1.0)
    assert 0.2 < float(f.std()) < 2.0


@pytest.mark.parametrize("channels", [1, 3])
def test_misaligned_pairs_is_a_pairs_set_without_clean_images(channels):
    imgs = random_images(2, size=(37, 50), channels=channels) + random_images(1, size=(64, 29), channels=channels)
    pairs = motion.misaligned_pairs(imgs, "gaussian:25", seed=4)
    assert isinstance(pairs, TrainingSet) and pairs.kind == "pairs" and pairs.clean is None
    assert [t.shape for t in pairs.noisy] == [t.shape for t in imgs] == [t.shape for t in pairs.target]
    assert pairs.noise is not None and pairs.noise.spec == "gaussian:25"
    # the reference frames are exactly the noisy draws every other method trains on
    single = TrainingSet.from_clean(imgs, "gaussian:25", kind="pairs", seed=4)
    assert all(torch.equal(a, b) for a, b in zip(single.noisy, pairs.noisy))
    # with no motion, the pairs are Noise2Noise's pairs
    still = motion.misaligned_pairs(imgs, "gaussian:25", seed=4, max_shift=0, max_rotation=0,
                                    elastic_amplitude=0)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(single.target, still.target))
    # with motion they are not, and the set is reproducible
    again, moved, flows = motion.misaligned_pairs(imgs, "gaussian:25", seed=4, return_clean=True)
    assert all(torch.equal(a, b) for a, b in zip(again.target, pairs.target))
    assert not torch.allclose(pairs.target[0], single.target[0], atol=1e-3)
    assert len(moved) == len(flows) == 3 and flows[0].shape == (1, 2, 37, 50)


def test_misaligned_pairs_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        motion.misaligned_pairs([], "gaussian:25")
    with pytest.raises(ValueError, match="unknown motion"):
        motion.misaligned_pairs(random_images(1), "gaussian:25", rotation=3)
    with pytest.raises(ImageError):
        motion.misaligned_pairs([torch.full((1, 1, 8, 8), 2.0)], "gaussian:25")


def test_mismatch_definition():
    a = torch.zeros(1, 2, 6, 8)
    b = a.clone()
    b[..., 0, :] = 1.0                        # first row differs by 1 in both channels
    assert alignment.mismatch(a, b) == pytest.approx(8 * 2 / (48 * 2))
    assert alignment.mismatch(a, b, border=1) == 0.0
    mask = torch.zeros(1, 1, 6, 8, dtype=torch.bool)
    mask[..., :2, :] = True
    assert alignment.mismatch(a, b, mask=mask) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="empty"):
        alignment.mismatch(a, b, border=4)
    with pytest.raises(ValueError, match="same shape"):
        alignment.mismatch(a, b[..., :5, :])


# ----------------------------------------------------------------------------- alignment network
@pytest.mark.parametrize("c,h,w", [(1, 33, 47), (3, 20, 64), (1, 5, 3), (3, 64, 31)])
def test_align_net_shapes_and_identity_at_init(c, h, w):
    torch.manual_seed(0)
    net = AlignNet(c)
    ref, mov = torch.rand(2, c, h, w), torch.rand(2, c, h, w)
    aligned, flow = net(ref, mov)
    assert aligned.shape == (2, c, h, w) and flow.shape == (2, 2, h, w)
    assert (flow == 0).all() and torch.allclose(aligned, mov, atol=1e-5)   # zero-initialised flow head


def test_align_net_bad_input():
    net = AlignNet(1)
    with pytest.raises(ValueError, match="same shape"):
        net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError):
        AlignNet(1, radius=0)


def test_local_attention_finds_a_known_shift_with_the_warp_convention():
    torch.manual_seed(0)
    q = torch.randn(1, 8, 24, 24)
    k = torch.roll(q, shifts=(1, -2), dims=(-2, -1))     # k(p + (dx, dy)) = q(p) for dx = −2, dy = +1
    _, flow = local_attention(q, k, radius=3, beta=200.0)
    inner = flow[..., 4:-4, 4:-4]
    assert torch.allclose(inner[:, 0], torch.full_like(inner[:, 0], -2.0), atol=1e-2)
    assert torch.allclose(inner[:, 1], torch.full_like(inner[:, 1], 1.0), atol=1e-2)
    # the same flow, used by motion.warp, brings k back onto q
    assert torch.allclose(ops.warp(k, flow)[..., 4:-4, 4:-4], q[..., 4:-4, 4:-4], atol=1e-2)


# ----------------------------------------------------------------------------- local SSIM
def _skimage_map(a, b, win):
    from skimage.metrics import structural_similarity

    maps = []
    for x, y in zip(a.double().numpy(), b.double().numpy()):
        if x.shape[0] == 1:
            _, m = structural_similarity(x[0], y[0], win_size=win, data_range=1.0, full=True)
        else:
            _, m = structural_similarity(x, y, win_size=win, data_range=1.0, channel_axis=0, full=True)
            m = m.mean(0)
        maps.append(m)
    return np.stack(maps)[:, None]


@pytest.mark.parametrize("shape", [(2, 1, 17, 23), (1, 3, 21, 15), (2, 3, 9, 31), (1, 1, 5, 4), (1, 3, 3, 7)])
def test_local_ssim_matches_scikit_image(shape):
    g = torch.Generator().manual_seed(sum(shape))
    a = torch.rand(shape, generator=g)
    b = (a + 0.2 * torch.randn(shape, generator=g)).clamp(0, 1)
    side = min(shape[-2:])
    win = min(7, side if side % 2 else side - 1)           # the window shrinks for small images
    s = ops.local_ssim(a, b)
    assert s.shape == (shape[0], 1, *shape[-2:]) and s.dtype == torch.float32
    assert np.abs(s.double().numpy() - _skimage_map(a, b, win)).max() < 1e-5
    s5 = ops.local_ssim(a, b, win_size=3)
    assert np.abs(s5.double().numpy() - _skimage_map(a, b, 3)).max() < 1e-5
    assert torch.allclose(ops.local_ssim(a, a), torch.ones_like(s), atol=1e-5)


def test_local_ssim_stays_on_the_device_without_host_round_trips(no_host_round_trips):
    a = torch.rand(2, 3, 17, 19, requires_grad=True)
    b = torch.rand(2, 3, 17, 19)
    with no_host_round_trips:
        s = ops.local_ssim(a, b)
        s.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    # on the meta device any host access would fail: the map is computed where the input is
    meta = torch.empty(2, 3, 17, 19, device="meta")
    out = ops.local_ssim(meta, meta)
    assert out.device.type == "meta" and out.shape == (2, 1, 17, 19)


def test_local_ssim_bad_input():
    a = torch.rand(1, 1, 9, 9)
    with pytest.raises(ValueError, match="3×3"):
        ops.local_ssim(a[..., :2, :], a[..., :2, :])
    with pytest.raises(ValueError, match="same shape"):
        ops.local_ssim(a, a[..., :8])
    with pytest.raises(ValueError, match="win_size"):
        ops.local_ssim(a, a, win_size=4)
    with pytest.raises(ValueError, match="data_range"):
        ops.local_ssim(a, a, data_range=0)


# ----------------------------------------------------------------------------- the sampler, Eq. (7)
def test_keep_probability_is_eq7():
    s = torch.tensor([-0.4, 0.0, 0.2, 0.5, 0.5001, 0.8, 1.0, float("nan")])
    assert torch.equal(s2a.keep_probability(s), torch.tensor([0.0, 0.0, 0.2, 0.5, 1.0, 1.0, 1.0, 0.0]))


@pytest.mark.parametrize("ssim", [-0.3, 0.1, 0.35, 0.5, 0.51, 0.9])
def test_bernoulli_sampler_keep_rate_matches_eq7(ssim):
    g = torch.Generator().manual_seed(11)
    m = s2a.bernoulli_sampler(torch.full((4, 1, 100, 100), ssim), generator=g)
    assert m.dtype == torch.bool
    p = 1.0 if ssim > 0.5 else max(ssim, 0.0)
    rate = m.float().mean().item()
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / m.numel()) + 1e-9   # exact for p ∈ {0, 1}


def test_bernoulli_sampler_draws_only_from_its_generator():
    s = torch.full((2, 1, 30, 30), 0.4)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = s2a.bernoulli_sampler(s, generator=torch.Generator().manual_seed(3))
    b = s2a.bernoulli_sampler(s, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)
    with pytest.raises(TypeError, match="generator"):
        s2a.bernoulli_sampler(s, generator=None)


# ----------------------------------------------------------------------------- the method
def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registered_with_its_own_training_set():
    m = methods.build("self2align", channels=3)
    assert type(m) is Self2Align and m.requires == "pairs" and not hasattr(Self2Align, "pair_source")
    assert isinstance(m.net, UNet) and isinstance(m.align_net, AlignNet) and m.align_net.in_channels == 3
    assert Self2Align.data_note and "moving" in Self2Align.describe_data()
    imgs = random_images(2, size=(33, 40))
    data = Self2Align.training_set(imgs, "gaussian:25", seed=5)
    want = motion.misaligned_pairs(imgs, "gaussian:25", seed=5)
    assert data.kind == "pairs" and data.clean is None
    assert all(torch.equal(a, b) for a, b in zip(data.target, want.target))


@pytest.mark.parametrize("kw", [{}, {"sampler": False}, {"align": False}, {"align": False, "sampler": False}])
def test_loss_is_finite_with_gradients_into_both_networks(kw):
    m = tiny_method(**kw)
    y1, y2 = frames()
    loss, logs = m.loss(Batch(noisy=y1, target=y2, generator=gen(2)))
    assert torch.isfinite(loss) and all(torch.isfinite(v) and not v.requires_grad for v in logs.values())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.net.parameters())
    align_grads = [p.grad for p in m.align_net.parameters()]
    if kw.get("align", True):
        assert any(g is not None and g.abs().sum() > 0 for g in align_grads)
        assert float(logs["align"]) > 0
    else:
        assert all(g is None for g in align_grads) and float(logs["align"]) == 0


@pytest.mark.parametrize("kw", [{}, {"align": False}, {"sampler": False}])
def test_loss_draws_from_the_batch_generator_only_without_host_round_trips(kw, no_host_round_trips):
    m = tiny_method(**kw)
    y1, y2 = frames()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    with no_host_round_trips:
        a, la = m.loss(Batch(noisy=y1, target=y2, generator=gen(7)))
        b, lb = m.loss(Batch(noisy=y1, target=y2, generator=gen(7)))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, b) and all(torch.equal(la[k], lb[k]) for k in la)
    assert all(isinstance(v, torch.Tensor) and v.ndim == 0 for v in la.values())
    if kw.get("sampler", True):
        c, _ = m.loss(Batch(noisy=y1, target=y2, generator=gen(8)))
        assert not torch.equal(a, c)          # another generator state, another mask


def test_the_denoiser_loss_does_not_train_the_alignment_network():
    m = tiny_method()
    y1, y2 = frames()
    t = m.terms(y1, y2, generator=gen(3))
    t["n2n"].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in m.align_net.parameters())
    assert not t["target"].requires_grad


def test_loss_by_hand_without_sampler_and_alignment():
    m = tiny_method(align=False, sampler=False)
    y1, y2 = frames()
    loss, logs = m.loss(Batch(noisy=y1, target=y2))
    with torch.no_grad():
        want = ((m.net(y1) - y2) ** 2).mean()
    assert torch.allclose(loss, want) and float(logs["keep"]) == 1.0


def test_sampler_masks_the_loss_and_an_empty_mask_is_guarded(monkeypatch):
    m = tiny_method(align=False)
    y1, y2 = frames()
    # SSIM 0.3 everywhere: about 30 % of the pixels enter the loss
    monkeypatch.setattr(s2a, "local_ssim", lambda a, b, **kw: torch.full((a.shape[0], 1, *a.shape[-2:]), 0.3))
    t = m.terms(y1, y2, generator=gen(4))
    keep = t["keep"]
    assert abs(keep.float().mean().item() - 0.3) < 0.05
    with torch.no_grad():
        sq = (t["output"] - y2) ** 2
    assert torch.allclose(t["n2n"], sq[keep.expand_as(sq)].mean())
    # SSIM ≤ 0 everywhere: nothing is kept, the loss is 0 and finite, with a (zero) gradient
    monkeypatch.setattr(s2a, "local_ssim", lambda a, b, **kw: torch.full((a.shape[0], 1, *a.shape[-2:]), -0.2))
    loss, logs = m.loss(Batch(noisy=y1, target=y2))
    assert float(loss.detach()) == 0.0 and float(logs["keep"]) == 0.0
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.net.parameters() if p.grad is not None)


def test_sampler_ssim_is_computed_on_smoothed_frames():
    m = tiny_method(align=False)
    g = gen(5)
    x = torch.full((1, 1, 40, 40), 0.5)
    y1 = x + SIGMA * torch.randn(x.shape, generator=g)
    y2 = x + SIGMA * torch.randn(x.shape, generator=g)
    t = m.terms(y1, y2, generator=g)
    raw = ops.local_ssim(y2, y1)
    assert raw.mean() < 0.2 < 0.5 < t["ssim"].mean()      # aligned flat region: kept after smoothing


def test_bad_input_errors():
    m = tiny_method()
    y1, y2 = frames()
    with pytest.raises(ValueError, match="batch.target"):
        m.loss(Batch(noisy=y1))
    with pytest.raises(ValueError, match="shape"):
        m.loss(Batch(noisy=y1, target=y2[..., :31]))
    for bad in ({"loss_smoothing": -1}, {"ssim_window": 4}, {"align_weight": 0}, {"target_mode": "nearest"}):
        with pytest.raises(ValueError):
            Self2Align(UNet(in_channels=1, features=8, depth=2), align_features=8, **bad)
    with pytest.raises(ValueError, match="no alignment network"):
        Self2Align(UNet(in_channels=1, features=8, depth=2), align=False).align(y1, y2)


def test_inference_is_one_pass_of_the_denoiser_and_align_helper():
    m = tiny_method()
    y1, y2 = frames(b=1, h=30, w=45)
    with torch.no_grad():
        want = m.net(y1)
    assert torch.allclose(m.denoise(y1), want)
    aligned, flow = m.align(y1, y2)
    assert aligned.shape == y1.shape and flow.shape == (1, 2, 30, 45)


# ----------------------------------------------------------------------------- course measurements
def test_epsilon_identity_corrected_form_holds_and_printed_form_does_not():
    x = torch.cat(smooth_images(2, size=(24, 24), seed=2))
    moved = torch.roll(x, 2, dims=-1)
    r = alignment.epsilon_identity(lambda y: ops.gaussian_smooth(y, 1.0), x, moved, "gaussian:25", draws=30,
                                   generator=torch.Generator().manual_seed(0))
    assert abs(r["gap"]) < 1e-9 + 4 * r["gap_se"] and abs(r["gap_n2c"]) < 4 * r["gap_n2c_se"] + 1e-9
    assert r["gap_printed"] == pytest.approx(2 * SIGMA ** 2, rel=0.1)        # off by 2E‖n'‖²/d
    assert r["eps2"] > 0


def test_measure_alignment_before_and_after():
    x = torch.cat(smooth_images(1, size=(40, 40), seed=4))
    xm = torch.roll(x, shifts=(0, 2), dims=(-2, -1))      # xm(p) = x(p − 2): warp(xm, +2) = x

    def align(y1, y2):
        flow = torch.zeros(1, 2, 40, 40)
        flow[:, 0] = 2.0
        return ops.warp(y2, flow), flow

    r = alignment.measure_alignment(align, [x], [xm], [x], [xm], border=4)
    assert r["before"][0] > 1e-4 and r["after"][0] < 1e-10
    with pytest.raises(ValueError, match="same length"):
        alignment.measure_alignment(align, [x], [], [x], [xm])


def test_sampler_figure_shows_the_pair_the_ssim_and_the_mask():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = tiny_method()
    x = smooth_images(1, (32, 32), seed=3)[0]
    flow = motion.random_flow(32, 32, generator=torch.Generator().manual_seed(2))
    moved = motion.move(x, flow)
    g = torch.Generator().manual_seed(4)
    y1, y2 = x + 0.05 * torch.randn(x.shape, generator=g), moved + 0.05 * torch.randn(x.shape, generator=g)
    fig, info = alignment.sampler_figure(m, y1, y2, x, moved, generator=torch.Generator().manual_seed(5),
                                         crop=(slice(4, 28), slice(4, 28)))
    assert len(fig.axes) == 8 and fig.get_figwidth() == pytest.approx(7.0)
    assert 0 <= info["keep"] <= 1 and info["eps_before"] > 0
    assert info["eps_before"] == pytest.approx(float(((moved - x)[..., 4:28, 4:28].double() ** 2).mean()))
    assert m.training                                            # the method's mode is restored
    plt.close(fig)
    with pytest.raises(ValueError, match="alignment"):
        alignment.sampler_figure(tiny_method(sampler=False), y1, y2, x, moved, generator=torch.Generator())
