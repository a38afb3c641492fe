"""Noise2Void, Noise2Self and the unmasked baseline: losses, masks, inference.

Training through :func:`denoise_lib.train.fit` (and checkpoint / resume) is covered for
every registered method by ``test_contract.py``.
"""
from __future__ import annotations

import pytest
import torch

from imagehelpers import smooth_images
from denoise_lib import masks, methods
from denoise_lib.methods import Batch
from denoise_lib.methods.n2s import Noise2Self
from denoise_lib.methods.n2s_unmasked import UnmaskedSelfSupervised
from denoise_lib.methods.n2v import Noise2Void
from denoise_lib.models import UNet


def gen(seed):
    return torch.Generator().manual_seed(seed)


def small(cls, **kw):
    torch.manual_seed(0)
    return cls(UNet(1, features=8, depth=2), **kw)


class Recorder(torch.nn.Module):
    """A 'network' that records its input and returns a fixed output."""

    in_channels = 1

    def __init__(self, out):
        super().__init__()
        self.out = out
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.out


@pytest.mark.parametrize("name,cls", [("n2v", Noise2Void), ("n2s", Noise2Self),
                                      ("n2s-unmasked", UnmaskedSelfSupervised)])
def test_registered_single_image_methods(name, cls):
    m = methods.build(name, channels=1)
    assert type(m) is cls and m.name == name and m.requires == "single"
    assert name in methods.available()


def test_n2v_loss_is_the_mean_over_masked_pixels_only():
    g = torch.Generator().manual_seed(1)
    y = torch.rand((2, 1, 32, 32), generator=g)
    out = torch.rand((2, 1, 32, 32), generator=g, requires_grad=True)
    net = Recorder(out)
    m = Noise2Void(net)
    loss, logs = m.loss(Batch(noisy=y, generator=gen(5)))
    masked, mask = masks.mask_batch(y, 0.002, "ups", radius=2, generator=gen(5))   # the same draw
    assert torch.equal(net.seen[0], masked)
    sel = mask.expand_as(y)
    by_hand = ((out[sel] - y[sel]) ** 2).sum() / sel.sum()
    assert torch.allclose(loss, by_hand)
    all_pixels = ((out - y) ** 2).mean()
    assert not torch.allclose(loss, all_pixels)                  # not normalised by all pixels
    assert logs["masked_pixels"] == mask.sum() and not logs["mse_masked"].requires_grad
    loss.backward()
    assert (out.grad[~sel] == 0).all() and (out.grad[sel] != 0).any()


def test_n2v_input_differs_from_y_exactly_on_the_mask_and_takes_neighbour_values():
    y = torch.arange(2 * 32 * 32, dtype=torch.float32).view(2, 1, 32, 32) / 2048
    net = Recorder(torch.zeros(2, 1, 32, 32, requires_grad=True))
    Noise2Void(net, fraction=0.01).loss(Batch(noisy=y, generator=gen(2)))
    changed = net.seen[0] != y
    assert changed.sum() >= 2
    values = set(y.flatten().tolist())
    assert all(v in values for v in net.seen[0][changed].tolist())   # a pixel value of the image (UPS)


def test_n2v_default_density_and_bad_arguments():
    m = Noise2Void(UNet(1, features=4, depth=1))
    assert m.fraction == 0.002 and m.radius == 2
    with pytest.raises(ValueError):
        Noise2Void(UNet(1, features=4, depth=1), fraction=0.0)
    with pytest.raises(ValueError):
        Noise2Void(UNet(1, features=4, depth=1), radius=0)


@pytest.mark.parametrize("replacement", ["random", "donut", "zero"])
def test_n2s_replacements_and_masked_loss(replacement):
    g = torch.Generator().manual_seed(3)
    y = torch.rand((2, 1, 16, 16), generator=g)
    out = torch.rand((2, 1, 16, 16), generator=g, requires_grad=True)
    net = Recorder(out)
    m = Noise2Self(net, replacement=replacement)
    loss, _ = m.loss(Batch(noisy=y, generator=gen(7)))
    masked, mask = masks.mask_batch(y, 1 / 16, replacement, generator=gen(7))
    assert torch.equal(net.seen[0], masked)
    assert mask.sum() == 2 * 16                                   # one per 4×4 cell
    sel = mask.expand_as(y)
    assert torch.allclose(loss, ((out[sel] - y[sel]) ** 2).mean())


def test_n2s_rejects_ups_and_unknown_replacements():
    with pytest.raises(ValueError, match="random"):
        Noise2Self(UNet(1, features=4, depth=1), replacement="ups")


def test_n2s_j_invariant_inference_is_j_invariant_and_deterministic():
    m = small(Noise2Self, replacement="donut", j_invariant=True, grid=3).eval()
    y = torch.rand((1, 1, 18, 18), generator=torch.Generator().manual_seed(4))
    a = m.denoise(y)
    y2 = y.clone()
    y2[0, 0, 9, 9] = 1.0 - y2[0, 0, 9, 9]
    b = m.denoise(y2)
    assert torch.equal(a[0, 0, 9, 9], b[0, 0, 9, 9])
    assert not torch.equal(a, b)
    plain = small(Noise2Self, replacement="donut")
    assert not torch.equal(plain.denoise(y)[0, 0, 9, 9], plain.denoise(y2)[0, 0, 9, 9])
    r = small(Noise2Self, replacement="random", j_invariant=True)
    assert torch.equal(r.denoise(y), r.denoise(y))               # random replacement, seeded


def test_unmasked_loss_is_the_plain_mse_to_the_input():
    g = torch.Generator().manual_seed(5)
    y = torch.rand((2, 1, 8, 8), generator=g)
    out = torch.rand((2, 1, 8, 8), generator=g)
    m = UnmaskedSelfSupervised(Recorder(out))
    loss, logs = m.loss(Batch(noisy=y))
    assert torch.equal(m.net.seen[0], y)
    assert torch.allclose(loss, ((out - y) ** 2).mean())


def test_identity_is_the_minimiser_of_the_unmasked_loss_but_not_of_n2v():
    """The identity has zero unmasked loss; under N2V's masked loss it pays the replacement error."""
    y = smooth_images(1, size=(32, 32))[0] + 0.1 * torch.randn((1, 1, 32, 32), generator=torch.Generator().manual_seed(6))
    ident = torch.nn.Identity()
    ident.in_channels = 1
    assert UnmaskedSelfSupervised(ident).loss(Batch(noisy=y))[0] == 0
    assert Noise2Void(ident, fraction=0.05).loss(Batch(noisy=y, generator=gen(0)))[0] > 0.005


@pytest.mark.parametrize("cls,kw", [(Noise2Void, {}), (Noise2Self, {}), (Noise2Self, {"replacement": "donut"})])
def test_masks_come_from_the_batch_generator_only(cls, kw):
    """Same generator state → same loss; another seed → another mask; global RNG untouched."""
    y = torch.rand((2, 1, 32, 32), generator=gen(8))
    m = small(cls, **kw)
    before = torch.get_rng_state()
    a = m.loss(Batch(noisy=y, generator=gen(1)))[0]
    b = m.loss(Batch(noisy=y, generator=gen(1)))[0]
    c = m.loss(Batch(noisy=y, generator=gen(2)))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)
