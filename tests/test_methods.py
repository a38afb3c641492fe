"""methods.build and the shared Method interface (loss checks, denoise)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from denoise_lib import methods
from denoise_lib.image import ImageError
from denoise_lib.methods import Batch
from denoise_lib.methods.n2c import Noise2Clean
from denoise_lib.methods.n2n import Noise2Noise
from denoise_lib.models import UNet


@pytest.mark.parametrize("name,cls,requires", [("n2c", Noise2Clean, "clean"), ("n2n", Noise2Noise, "pairs")])
@pytest.mark.parametrize("channels", [1, 3])
def test_build_types_and_requires(name, cls, requires, channels):
    torch.manual_seed(0)
    m = methods.build(name, channels=channels)
    assert type(m) is cls
    assert m.name == name and m.requires == requires
    assert isinstance(m.net, UNet) and m.net.in_channels == channels and m.channels == channels


def test_available_lists_the_registered_methods():
    names = methods.available()
    assert names == sorted(methods.REGISTRY)
    assert {"n2c", "n2n", "n2v", "n2s", "n2s-unmasked", "noise2same"} <= set(names)


def test_unknown_method_raises_key_error_listing_names():
    with pytest.raises(KeyError) as e:
        methods.build("no-such-method")
    assert "n2c" in str(e.value) and "n2n" in str(e.value)


def test_build_rejects_other_channel_counts():
    with pytest.raises(ValueError):
        methods.build("n2n", channels=2)


@pytest.fixture
def small():
    torch.manual_seed(0)
    return {"n2c": Noise2Clean(UNet(1, features=4, depth=2)), "n2n": Noise2Noise(UNet(1, features=4, depth=2)),
            "rgb": Noise2Noise(UNet(3, features=4, depth=2))}


def test_n2c_loss_needs_clean(small):
    y = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="clean"):
        small["n2c"].loss(Batch(noisy=y, target=y))


def test_n2n_loss_needs_a_target(small):
    y = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="target"):
        small["n2n"].loss(Batch(noisy=y, clean=y))


def test_losses_are_the_mse_to_their_target(small):
    g = torch.Generator().manual_seed(1)
    y, t = torch.rand((2, 1, 8, 8), generator=g), torch.rand((2, 1, 8, 8), generator=g)
    for key, batch in (("n2c", Batch(noisy=y, clean=t)), ("n2n", Batch(noisy=y, target=t))):
        m = small[key]
        loss, logs = m.loss(batch)
        want = torch.mean((m.net(y) - t) ** 2)
        assert loss.requires_grad and loss.ndim == 0
        assert torch.allclose(loss, want)
        assert not logs["mse"].requires_grad and torch.allclose(logs["mse"], want)


def test_denoise_uint8_hwc_numpy_returns_float32_nchw(small):
    a = np.random.default_rng(0).integers(0, 256, size=(13, 17), dtype=np.uint8)
    out = small["n2n"].denoise(a)
    assert out.shape == (1, 1, 13, 17) and out.dtype == torch.float32 and out.device.type == "cpu"
    rgb = np.random.default_rng(1).integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    out3 = small["rgb"].denoise(rgb)
    assert out3.shape == (1, 3, 13, 17) and out3.dtype == torch.float32
    with torch.no_grad():
        want = small["rgb"].net(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)
    assert torch.allclose(out3, want, atol=1e-6)


def test_denoise_batches_give_the_same_result(small):
    y = torch.rand((3, 1, 10, 9), generator=torch.Generator().manual_seed(2)) * 1.4 - 0.2  # leaves [0, 1]
    one = small["n2n"].denoise(y, batch_size=1)
    all_ = small["n2n"].denoise(y, batch_size=3)
    assert one.shape == y.shape and torch.allclose(one, all_, atol=1e-6)


def test_denoise_rgb_with_a_gray_network_raises(small):
    with pytest.raises(ImageError, match="1-channel"):
        small["n2n"].denoise(np.zeros((8, 8, 3), dtype=np.uint8))


def test_gray_input_to_an_rgb_network_is_replicated(small):
    g = torch.rand((1, 1, 12, 12), generator=torch.Generator().manual_seed(3))
    out = small["rgb"].denoise(g)
    assert out.shape == (1, 3, 12, 12)
    assert torch.equal(out, small["rgb"].denoise(g.expand(-1, 3, -1, -1).clone()))


@pytest.mark.parametrize("training", [True, False])
def test_denoise_restores_the_training_mode(small, training):
    seen = []

    class Probe(torch.nn.Module):
        in_channels = 1

        def forward(self, x):
            seen.append(self.training)
            return x

    m = Noise2Noise(Probe())
    m.register_parameter("dummy", torch.nn.Parameter(torch.zeros(1)))
    m.train(training)
    m.denoise(torch.zeros(1, 1, 4, 4))
    assert seen == [False]  # inference runs in eval mode
    assert m.training is training and m.net.training is training


def test_denoise_does_not_track_gradients(small):
    out = small["n2n"].denoise(torch.rand(1, 1, 8, 8))
    assert not out.requires_grad
