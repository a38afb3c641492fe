"""Deep Image Prior (Ulyanov et al. 2018; SVID paper Eq. 3 and 4): per-image fitting and its history."""
from __future__ import annotations

import math

import pytest
import torch

from imagehelpers import smooth_images
from denoise_lib import methods, metrics
from denoise_lib.image import ImageError
from denoise_lib.methods import PerImageMethod
from denoise_lib.methods.dip import DEFAULT_ITERATIONS, DeepImagePrior, FitHistory, random_input
from denoise_lib.models import UNet

SIGMA = 25 / 255


def size(net):
    return sum(p.numel() for p in net.parameters())


def tiny(input="noise", channels=1, **kw):
    torch.manual_seed(0)
    z = kw.pop("z_channels", 4)
    cin = z if input == "noise" else channels
    net = UNet(cin, out_channels=channels, features=8, depth=2)
    return DeepImagePrior(net, input=input, z_channels=z, iterations=kw.pop("iterations", 6),
                          lr=kw.pop("lr", 1e-2), **kw)


SEEN: list[torch.Tensor] = []   # module level: the fit works on a deep copy of the network


class Spy(torch.nn.Module):
    """Records the inputs a network (or any deep copy of it) receives in ``SEEN``."""

    def __init__(self, net):
        super().__init__()
        self.net, self.in_channels, self.out_channels = net, net.in_channels, net.out_channels

    def forward(self, x):
        SEEN.append(x.detach().clone())
        return self.net(x)


def pair(channels=1, size=(24, 20), seed=0):
    clean = smooth_images(1, size=size, channels=channels, seed=seed)[0]
    noisy = clean + SIGMA * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed + 1))
    return clean, noisy


def test_registry():
    d = methods.build("dip", channels=1)
    assert type(d) is DeepImagePrior and isinstance(d, PerImageMethod) and d.input == "noise" and d.name == "dip"
    assert d.net.in_channels == d.z_channels and d.channels == 1 and not hasattr(d, "loss")
    dy = methods.build("dip-y", channels=3)
    assert dy.input == "noisy" and dy.name == "dip-y" and dy.net.in_channels == 3 and dy.channels == 3
    assert sum(p.numel() for p in d.net.parameters()) < 200_000           # the small default network
    assert (d.iterations, dy.iterations) == (DEFAULT_ITERATIONS["noise"], DEFAULT_ITERATIONS["noisy"])
    small = methods.build("dip", channels=1, iterations=7, z_channels=5, net={"features": 8})
    assert small.iterations == 7 and small.net.in_channels == 5
    assert size(small.net) == size(UNet(5, out_channels=1, features=8, depth=4))
    with pytest.raises(ValueError, match="input"):
        DeepImagePrior(UNet(1), input="zeros")
    with pytest.raises(ValueError, match="in_channels=32"):
        DeepImagePrior(UNet(1), input="noise")                            # z has 32 channels
    with pytest.raises(ValueError, match="iterations"):
        DeepImagePrior(UNet(1), input="noisy", iterations=-1)
    with pytest.raises(ValueError, match="lr"):
        DeepImagePrior(UNet(1), input="noisy", lr=0)


def test_default_net_follows_the_settings():
    assert DeepImagePrior.default_net(3, {"input": "noisy"}).in_channels == 3
    net = DeepImagePrior.default_net(1, {"input": "noise", "z_channels": 6}, features=8, depth=2)
    assert (net.in_channels, net.out_channels, net.depth) == (6, 1, 2)
    assert size(net) == size(UNet(6, out_channels=1, features=8, depth=2))
    assert DeepImagePrior.default_net(1, {}).in_channels == 32                 # z has 32 channels by default


def test_random_input_is_fixed_and_seeded():
    a = random_input((1, 4, 8, 8), scale=0.1, generator=torch.Generator().manual_seed(1))
    b = random_input((1, 4, 8, 8), scale=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 0.1 and a.std() > 0.01
    c = random_input((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(c, 10 * a) and c.max() > 0.5                     # default U(0, 1)


@pytest.mark.parametrize("input", ["noise", "noisy"])
def test_history_with_and_without_reference(input):
    clean, noisy = pair()
    m = tiny(input)
    out, h = m.fit_image(noisy, iterations=7, record_every=3)
    assert isinstance(h, FitHistory) and out.shape == noisy.shape
    assert h.iterations == [0, 3, 6, 7]                                     # first, every 3rd, last
    assert all(a < b for a, b in zip(h.iterations, h.iterations[1:]))
    assert len(h.loss) == 4 and all(math.isfinite(v) for v in h.loss)
    assert h.psnr == [] and h.best_iteration is None and h.best_output is None
    out2, h2 = m.fit_image(noisy, iterations=7, record_every=3, clean=clean)
    assert len(h2.psnr) == len(h2.iterations) and h2.best_iteration in h2.iterations
    assert h2.best_psnr == max(h2.psnr)
    assert h2.psnr[-1] == pytest.approx(metrics.psnr(out2, clean))         # the last record is the output
    assert torch.allclose(out, out2)                                        # the reference is not used to fit


def test_fitting_reduces_the_loss_and_leaves_the_network_untouched():
    clean, noisy = pair(size=(32, 32))
    m = tiny("noisy", iterations=40)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    out, h = m.fit_image(noisy, record_every=10)
    assert h.loss[-1] < 0.5 * h.loss[0]
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    assert torch.allclose(m.denoise(noisy), out)                            # a fresh copy every time


def test_noise_input_is_fixed_during_the_fit():
    _, noisy = pair()
    torch.manual_seed(0)
    m = DeepImagePrior(Spy(UNet(4, out_channels=1, features=8, depth=2)), input="noise", z_channels=4,
                       iterations=3)
    SEEN.clear()
    m.fit_image(noisy, record_every=1)
    z = list(SEEN)
    assert len(z) == 4 and all(torch.equal(z[0], zi) for zi in z) and z[0].shape == (1, 4, 24, 20)
    m.fit_image(noisy, generator=torch.Generator().manual_seed(9))
    assert not torch.equal(SEEN[-1], z[0])                         # another generator, another z
    my = DeepImagePrior(Spy(UNet(1, features=8, depth=2)), input="noisy", iterations=2)
    SEEN.clear()
    my.fit_image(noisy)
    assert len(SEEN) == 3 and all(torch.equal(i, noisy) for i in SEEN)                # Eq. (4): the input is y


@pytest.mark.parametrize("channels,size", [(1, (19, 27)), (3, (17, 30))])
@pytest.mark.parametrize("input", ["noise", "noisy"])
def test_gray_rgb_odd_sizes(channels, size, input):
    clean, noisy = pair(channels, size)
    m = tiny(input, channels=channels, iterations=3)
    out = m.denoise(noisy)
    assert out.shape == noisy.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    batch = torch.cat([noisy, noisy.flip(-1)])
    assert m.denoise(batch).shape == batch.shape                            # one fit per image


def test_bad_inputs():
    clean, noisy = pair()
    m = tiny("noisy")
    bad = noisy.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ImageError):
        m.denoise(bad)
    with pytest.raises(ImageError, match="1-channel"):
        m.denoise(torch.rand(1, 3, 16, 16))
    with pytest.raises(ImageError, match="one image"):
        m.fit_image(torch.cat([noisy, noisy]))
    with pytest.raises(ImageError, match="differs"):
        m.fit_image(noisy, clean=clean[..., :-1])
    with pytest.raises(ValueError, match="record_every"):
        m.fit_image(noisy, record_every=0)
    with pytest.raises(ValueError, match="batch_size"):
        m.denoise(noisy, batch_size=0)
    rgb = tiny("noisy", channels=3)
    assert rgb.denoise(noisy).shape == (1, 3, 24, 20)                      # gray input to an RGB model


def test_kept_outputs_for_the_iteration_slider():
    clean, noisy = pair(size=(24, 24))
    m = tiny("noisy", iterations=9)
    out, h = m.fit_image(noisy, record_every=2, clean=clean, keep_outputs=2)
    assert h.iterations == [0, 2, 4, 6, 8, 9]
    # every 2nd record, the last, and the best (an oracle) are kept
    assert {0, 4, 8, 9} <= set(h.outputs) <= set(h.iterations) and h.best_iteration in h.outputs
    assert torch.equal(h.outputs[9], out) and torch.equal(h.outputs[h.best_iteration], h.best_output)
    assert metrics.psnr(h.outputs[h.iterations[2]], clean) == pytest.approx(h.psnr[2])
    _, every = m.fit_image(noisy, record_every=2, keep_outputs=True)
    assert sorted(every.outputs) == every.iterations                      # True: every record
    _, none = m.fit_image(noisy, record_every=2)
    assert none.outputs == {}                                             # default: nothing kept
    for bad in (-1, 1.5, "2"):
        with pytest.raises(ValueError, match="keep_outputs"):
            m.fit_image(noisy, keep_outputs=bad)


def test_iteration_explorer_static_and_live(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from denoise_lib.course.dip_widget import IterationExplorer, iteration_explorer

    clean, noisy = pair(size=(24, 24))
    fits = {}
    for name in ("noise", "noisy"):
        fits[name] = tiny(name, iterations=6).fit_image(noisy, record_every=1, clean=clean, keep_outputs=2)[1]
    e = iteration_explorer(fits, noisy, clean)
    assert e.label == "noise" and e.iteration == e.best_kept() and e.iteration in e.kept()
    assert e.nearest(5) in e.kept() and e.psnr() == pytest.approx(metrics.psnr(e.output(), clean))
    assert f"iteration {e.iteration}" in e.caption() and "dB" in e.caption()
    fig = e.figure()
    assert len(fig.axes) == 4 and fig.get_figwidth() <= 7.5
    plt.close(fig)
    monkeypatch.setenv("DENOISE_STATIC_OUTPUTS", "1")
    e.show()
    assert "default state" in capsys.readouterr().out                     # no widgets in the published book
    monkeypatch.delenv("DENOISE_STATIC_OUTPUTS")
    e.show()                                                              # live controls build without a kernel
    plt.close("all")
    with pytest.raises(ValueError, match="keep_outputs"):
        IterationExplorer({"x": tiny("noisy").fit_image(noisy, clean=clean)[1]}, noisy, clean)
    with pytest.raises(ValueError, match="clean"):
        IterationExplorer({"x": tiny("noisy").fit_image(noisy, keep_outputs=True)[1]}, noisy, clean)
    with pytest.raises(ValueError, match="unknown fit"):
        IterationExplorer(fits, noisy, clean, label="nope")
    with pytest.raises(ValueError, match="at least one"):
        IterationExplorer({}, noisy, clean)
