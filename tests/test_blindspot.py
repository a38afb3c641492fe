"""The blind-spot U-Net (Laine et al. 2019): exact blind spot, half-plane branches, shapes, cost."""
from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from denoise_lib.models import BlindSpotUNet, UNet
from denoise_lib.models.blindspot import ShiftedConv2d, ShiftedMaxPool2d, influence, shift_down


def _pixels(h: int, w: int) -> list[tuple[int, int]]:
    """Corners, the middle of each edge, and the centre."""
    pts = {(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1),
           (0, w // 2), (h - 1, w // 2), (h // 2, 0), (h // 2, w - 1), (h // 2, w // 2)}
    return sorted(pts)


def _grad_of_output_at(net, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """∂(Σ_channels out[0, :, i, j]) / ∂x, shape of x (float64)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x)[0, :, i, j].sum(), x)
    return g


# --------------------------------------------------------------------------- acceptance: the blind spot
@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("hw", [(17, 23), (32, 32), (9, 40)])
@pytest.mark.parametrize("channels", [1, 3])
def test_gradient_is_exactly_zero_at_p_and_nonzero_at_its_4_neighbours(channels, hw, depth):
    torch.manual_seed(channels * 100 + depth)
    net = BlindSpotUNet(channels, out_channels=channels + 1, features=8, depth=depth).double()
    h, w = hw
    x = torch.rand((1, channels, h, w), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for i, j in _pixels(h, w):
        g = _grad_of_output_at(net, x, i, j)
        assert torch.all(g[0, :, i, j] == 0), f"output at {(i, j)} depends on its own input {g[0, :, i, j]}"
        for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < h and 0 <= b < w:
                assert g[0, :, a, b].abs().sum() > 0, f"output at {(i, j)} ignores its neighbour {(a, b)}"
        assert torch.isfinite(g).all()
        assert torch.equal(influence(net, x, (i, j)), g.abs().sum(1)[0])   # the notebook's helper


def test_every_pixel_is_blind_on_a_small_odd_image():
    """All pixels (not only the sampled ones) of a 7×5 RGB image: the Jacobian diagonal blocks are zero."""
    torch.manual_seed(0)
    net = BlindSpotUNet(3, out_channels=3, features=4, depth=2).double()
    x = torch.rand((1, 3, 7, 5), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: net(t), x)   # (1,3,7,5, 1,3,7,5)
    for i in range(7):
        for j in range(5):
            assert torch.all(jac[0, :, i, j, 0, :, i, j] == 0), (i, j)
    assert jac.abs().sum() > 0


def test_reflect_padding_breaks_the_blind_spot_near_the_bottom_edge():
    """Why the default pads with zeros: a reflected copy of pixel p is visible from p.

    17 rows are padded to 32; row 15's copy sits at row 17 (reflection about row 16).
    The same check passes with ``padding="zeros"``, so the gradient test can fail.
    """
    torch.manual_seed(0)
    x = torch.rand((1, 1, 17, 23), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    leaky = BlindSpotUNet(1, features=8, depth=2, padding="reflect").double()
    blind = BlindSpotUNet(1, features=8, depth=2, padding="zeros").double()
    blind.load_state_dict(leaky.state_dict())
    assert _grad_of_output_at(leaky, x, 15, 5)[0, 0, 15, 5] != 0
    assert _grad_of_output_at(blind, x, 15, 5)[0, 0, 15, 5] == 0


# --------------------------------------------------------------------------- the pieces
@pytest.mark.parametrize("k", [3, 5])
def test_shifted_conv_equals_the_papers_pad_convolve_crop(k):
    """Paper §2: pad k//2 zero rows on top, 'same' convolution, crop k//2 rows at the bottom."""
    torch.manual_seed(0)
    conv = ShiftedConv2d(in_channels=2, out_channels=3, kernel_size=k).double()
    x = torch.rand((2, 2, 11, 9), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    o = k // 2
    literal = F.conv2d(F.pad(x, (0, 0, o, 0)), conv.weight, conv.bias, padding=o)[..., :-o, :]
    assert torch.allclose(conv(x), literal, atol=1e-12)
    assert conv(x).shape == (2, 3, 11, 9)


def test_shifted_conv_sees_rows_up_to_its_own_only():
    conv = ShiftedConv2d(in_channels=1, out_channels=1, kernel_size=3).double()
    x = torch.rand((1, 1, 9, 9), dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(conv(x)[0, 0, 5, 4], x)
    rows = g[0, 0].abs().sum(1).nonzero().flatten().tolist()
    assert rows == [3, 4, 5]


def test_shifted_pool_output_row_r_sees_rows_2r_minus_1_and_2r():
    pool = ShiftedMaxPool2d()
    x = torch.rand((1, 1, 8, 8), dtype=torch.float64, requires_grad=True)
    y = pool(x)
    assert y.shape == (1, 1, 4, 4)
    (g,) = torch.autograd.grad(y[0, 0, 2, :].sum(), x)
    rows = set(g[0, 0].abs().sum(1).nonzero().flatten().tolist())   # max-pool routes to one row per cell
    assert rows and rows <= {3, 4}
    with pytest.raises(ValueError):
        ShiftedConv2d(1, 1, kernel_size=2)


def test_shift_down_moves_rows_and_keeps_the_shape():
    x = torch.arange(12.0).reshape(1, 1, 4, 3)
    y = shift_down(x, 1)
    assert y.shape == x.shape
    assert torch.equal(y[0, 0, 0], torch.zeros(3)) and torch.equal(y[0, 0, 1:], x[0, 0, :3])


def test_one_branch_has_an_upper_half_plane_receptive_field():
    """The rotation-free branch before its final shift (net.body) at (i, j) sees rows ≤ i, its own
    row included; after the one-row shift (net.branch) it sees rows < i only."""
    torch.manual_seed(0)
    net = BlindSpotUNet(1, features=8, depth=2).double()
    x = torch.rand((1, 1, 32, 32), dtype=torch.float64)
    i, j = 20, 13
    rows = influence(net.body, x, (i, j)).sum(1)
    assert torch.all(rows[i + 1:] == 0) and rows[i] > 0 and rows[:i].sum() > 0
    field = influence(net.branch, x, (i, j))
    assert torch.all(field[i:] == 0) and field[i - 1].sum() > 0
    assert field[:i, j + 1:].sum() > 0 and field[:i, :j].sum() > 0      # both sides of the column


def test_branch_receptive_field_heights():
    """Rows above the output that one branch (before its final shift) sees, for depth 1..5, at a
    pixel 40 rows above the bottom of a 512² input. Training patches should be about this tall
    (the paper: 311 rows, 256² patches); see the BlindSpotUNet docstring."""
    want = {1: 13, 2: 31, 3: 71, 4: 151, 5: 311}
    x = torch.rand((1, 1, 512, 512), generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    for depth, rows in want.items():
        torch.manual_seed(depth)
        net = BlindSpotUNet(1, features=2, depth=depth).double()
        field = influence(net.body, x, (472, 472))
        assert 472 - int(field.sum(1).nonzero().min()) == rows, depth


def test_influence_rejects_batches_and_outside_pixels():
    net = BlindSpotUNet(1, features=2, depth=1)
    with pytest.raises(ValueError):
        influence(net, torch.rand(2, 1, 8, 8), (1, 1))
    with pytest.raises(ValueError):
        influence(net, torch.rand(1, 1, 8, 8), (8, 0))


def test_interior_outputs_are_translation_equivariant():
    """Counter-rotation puts every branch back in place: away from the borders, a crop's output
    equals the crop of the output (depth 1: receptive field ±15 pixels)."""
    torch.manual_seed(0)
    net = BlindSpotUNet(1, features=8, depth=1).double()
    x = torch.rand((1, 1, 96, 96), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        a = net(x)[..., 32:, 32:]
        b = net(x[..., 32:, 32:])
    assert torch.allclose(a[..., 16:48, 16:48], b[..., 16:48, 16:48], atol=1e-12)
    assert not torch.allclose(a[..., :4, :4], b[..., :4, :4])   # near the crop's border they differ


def test_batch_items_are_independent():
    """The four rotations share the batch axis: splitting them back must not mix images."""
    torch.manual_seed(0)
    net = BlindSpotUNet(3, out_channels=9, features=4, depth=2).eval()
    x = torch.rand((3, 3, 13, 21), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        both = net(x)
        for k in range(3):
            assert torch.allclose(both[k:k + 1], net(x[k:k + 1]), atol=1e-5)


# --------------------------------------------------------------------------- the paper's size
def test_paper_sized_network_runs_any_size_and_has_the_paper_layout():
    """features=48, depth=5 (Laine et al. §4). Parameter counts: RGB → 9 outputs 1,269,129;
    gray → 2 outputs 1,265,858; the three 1×1 layers 384→384→96→n hold ~0.19 M of them
    (the Noise2Noise U-Net has 0.99 M for RGB)."""
    torch.manual_seed(0)
    net = BlindSpotUNet(3, out_channels=9).eval()
    assert sum(p.numel() for p in net.parameters()) == 1_269_129
    assert sum(p.numel() for p in BlindSpotUNet(1, out_channels=2).parameters()) == 1_265_858
    x = torch.rand((1, 3, 37, 53), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 9, 37, 53) and y.dtype == torch.float32 and torch.isfinite(y).all()
    shifted = [m for m in net.modules() if isinstance(m, ShiftedConv2d)]
    one = [m for m in net.tail.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(shifted) == 17          # ENC_CONV0..6 (7), DEC_CONV5A..2B (8), DEC_CONV1A/B (2)
    assert [c.out_channels for c in shifted[-2:]] == [96, 96]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in one] == [
        (384, 384, (1, 1)), (384, 96, (1, 1)), (96, 9, (1, 1))]
    assert all(isinstance(m, ShiftedConv2d) or any(m is o for o in one)
               for m in net.modules() if isinstance(m, torch.nn.Conv2d))   # no unshifted 3×3 left


@pytest.mark.parametrize("hw", [(1, 1), (5, 7), (33, 8)])
def test_tiny_and_thin_inputs(hw):
    net = BlindSpotUNet(1, features=4, depth=3).eval()
    with torch.no_grad():
        assert net(torch.rand((2, 1, *hw))).shape == (2, 1, *hw)


def test_bad_input_and_arguments_raise():
    net = BlindSpotUNet(1, features=4, depth=2)
    for bad in (torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8)):
        with pytest.raises(ValueError, match="BlindSpotUNet expects"):
            net(bad)
    with pytest.raises(ValueError):
        BlindSpotUNet(1, padding="circular")
    with pytest.raises(ValueError):
        BlindSpotUNet(1, out_channels=0)
    with pytest.raises(ValueError):
        BlindSpotUNet(1, depth=0)


def test_unet_is_unchanged_by_the_shared_body():
    """UNet and BlindSpotUNet share UNetBody; the U-Net keeps its layout and parameter names."""
    net = UNet(3)
    names = [n for n, _ in net.named_parameters()]
    assert names[:2] == ["enc0.0.weight", "enc0.0.bias"] and names[-2:] == ["head.weight", "head.bias"]
    assert sum(p.numel() for p in net.parameters()) == 991_203
