"""The Noise2Noise U-Net: any size in, same size out; ~1.0 M parameters; gradients."""
from __future__ import annotations

import pytest
import torch

from denoise_lib.models import UNet


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {1: UNet(1).eval(), 3: UNet(3).eval()}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("hw", [(37, 53), (1, 1), (5, 7), (64, 64), (33, 100)])
def test_output_shape_equals_input_shape(nets, channels, hw):
    x = torch.rand((2, channels, *hw), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = nets[channels](x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_parameter_count_is_about_one_million_for_rgb(nets):
    n = sum(p.numel() for p in nets[3].parameters())
    assert 0.95e6 < n < 1.05e6


def test_paper_layout_widths(nets):
    convs = [m for m in nets[3].modules() if isinstance(m, torch.nn.Conv2d)]
    # ENC_CONV0..6 (7), DEC_CONV5A..2B (8), DEC_CONV1A/B/C (3)
    assert len(convs) == 18
    assert convs[0].in_channels == 3 and convs[-1].out_channels == 3
    assert [c.out_channels for c in convs[-3:]] == [64, 32, 3]


@pytest.mark.parametrize("bad", [torch.zeros(1, 3, 16, 16), torch.zeros(1, 2, 16, 16), torch.zeros(1, 16, 16)])
def test_wrong_channels_or_rank_raise_value_error(nets, bad):
    with pytest.raises(ValueError, match="UNet expects"):
        nets[1](bad)


def test_gray_net_rejects_rgb_input_and_vice_versa(nets):
    with pytest.raises(ValueError):
        nets[3](torch.zeros(1, 1, 8, 8))


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    net = UNet(1, features=8, depth=3)
    x = torch.rand((2, 1, 19, 23), generator=torch.Generator().manual_seed(2))
    loss = (net(x) - x).pow(2).mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_eval_is_deterministic(nets):
    x = torch.rand((2, 1, 37, 53), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = nets[1](x), nets[1](x)
    assert torch.equal(a, b)


def test_output_depends_only_on_its_own_image(nets):
    """Padding and cropping are per image: a batch gives the same output as each image alone."""
    x = torch.rand((2, 1, 21, 30), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        both = nets[1](x)
        first = nets[1](x[:1])
    assert torch.allclose(both[:1], first, atol=1e-5)


def test_residual_option_adds_the_input():
    torch.manual_seed(0)
    plain = UNet(1, features=4, depth=2)
    torch.manual_seed(0)
    res = UNet(1, features=4, depth=2, residual=True)
    x = torch.rand((1, 1, 9, 9), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.allclose(res(x), plain(x) + x)
    with pytest.raises(ValueError):
        UNet(1, out_channels=3, residual=True)


def test_out_channels_may_differ():
    net = UNet(3, out_channels=1, features=4, depth=1)
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 5, 6)).shape == (2, 1, 5, 6)


@pytest.mark.parametrize("kwargs", [dict(in_channels=0), dict(features=0), dict(depth=0)])
def test_non_positive_sizes_raise(kwargs):
    with pytest.raises(ValueError):
        UNet(**kwargs)
