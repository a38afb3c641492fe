"""Tiled inference (denoise_lib.tiling): tiled = untiled, receptive radii, weights, arguments."""
from __future__ import annotations

import pytest
import torch

from denoise_lib import methods
from denoise_lib.image import ImageError
from denoise_lib.models import UNet
from denoise_lib.models.blindspot import BlindSpotUNet
from denoise_lib.tiling import (_geometry, _spans, denoise_tiled, exact_overlap, receptive_radius, tile_plan,
                                tile_settings)


def _image(c, h, w, seed=1):
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


def _positive(net):
    """Averaging weights (1/fan-in), zero biases: every pixel of the receptive field counts."""
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.constant_(m.weight, 1.0 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]))
            torch.nn.init.zeros_(m.bias)
    return net.eval()


def _tiles(obj, y, **kw):
    s = tile_settings(obj, **kw)
    dom = _geometry(obj, None).pad(y).shape[-2:]
    return len(tile_plan(tuple(dom), tile=s["tile"], overlap=s["overlap"], blend=s["blend"],
                         multiple=s["multiple"]))


# --------------------------------------------------------------------------- tiled = untiled, 1500 × 1100

def test_n2c_unet_tiled_equals_untiled_1500x1100():
    m = methods.build("n2c", 1, seed=0, net={"features": 8})        # depth 5, as the default U-Net
    y = _image(1, 1100, 1500)
    assert _tiles(m, y) >= 4
    assert tile_settings(m)["exact"] is True
    torch.testing.assert_close(denoise_tiled(m, y), m.denoise(y), rtol=0, atol=1e-5)


def test_unet_worst_case_weights_tiled_equals_untiled_1500x1100():
    net = _positive(UNet(1, features=4, depth=5))
    y = _image(1, 1100, 1500, seed=2)
    with torch.no_grad():
        ref = net(y)
    torch.testing.assert_close(denoise_tiled(net, y), ref, rtol=0, atol=1e-5)


def test_laine19_blindspot_tiled_equals_untiled_1500x1100():
    m = methods.build("laine19-pme", 3, noise="gaussian:25", patch_size=64, net={"features": 4}, seed=0)
    y = _image(3, 1100, 1500, seed=3)
    assert _tiles(m, y) >= 4
    torch.testing.assert_close(denoise_tiled(m, y), m.denoise(y), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- why the defaults are what they are

def _probe_radius(net, n=128):
    """Largest distance at which an impulse moves the output (positive weights, float64)."""
    net = _positive(net).double()
    a, c, r = 2 ** net.depth, n // 2, 0
    for i in range(a):
        for j in range(a):
            x = torch.zeros(1, net.in_channels, n, n, dtype=torch.float64)
            x[0, :, c + i, c + j] = 1
            with torch.no_grad():
                nz = (net(x)[0].abs().sum(0) > 0).nonzero()
            r = max(r, int((nz[:, 0] - c - i).abs().max()), int((nz[:, 1] - c - j).abs().max()))
    return r


@pytest.mark.parametrize("depth", [1, 2])
def test_receptive_radius_matches_an_impulse_probe(depth):
    assert receptive_radius(UNet(1, features=1, depth=depth)) == _probe_radius(UNet(1, features=1, depth=depth))
    bs = BlindSpotUNet(1, features=1, depth=depth)
    assert receptive_radius(bs) == _probe_radius(BlindSpotUNet(1, features=1, depth=depth))
    assert receptive_radius(methods.build("n2c", 1)) == 158
    assert exact_overlap(methods.build("n2c", 1)) == 352
    assert receptive_radius(lambda t: t) is None


def test_tiles_must_follow_the_pooling_grid():
    net = _positive(UNet(1, features=2, depth=2))
    y = _image(1, 150, 201)
    with torch.no_grad():
        ref = net(y)
        o = exact_overlap(net, blend=8)
        fn = lambda t: net(t)  # noqa: E731  (a callable: the geometry is not known)
        off_grid = denoise_tiled(fn, y, tile=2 * o + 2, overlap=o, blend=8, multiple=1)
        on_grid = denoise_tiled(fn, y, tile=2 * o + 4, overlap=o, blend=8, multiple=4)
    assert (off_grid - ref).abs().max() > 1e-3
    torch.testing.assert_close(on_grid, ref, rtol=0, atol=1e-5)


def test_an_overlap_far_below_the_receptive_field_is_detectably_inexact():
    net = _positive(UNet(1, features=4, depth=3))
    y = _image(1, 300, 397)
    with torch.no_grad():
        ref = net(y)
        exact = denoise_tiled(net, y, tile=232)
        short = denoise_tiled(net, y, overlap=56, tile=120)
    torch.testing.assert_close(exact, ref, rtol=0, atol=1e-5)
    assert (short - ref).abs().max() > 1e-5
    assert tile_settings(net, overlap=56, tile=120)["exact"] is False


def test_blindspot_on_non_square_image_with_positive_weights():
    net = _positive(BlindSpotUNet(3, features=4, depth=2))
    y = _image(3, 301, 397)
    with torch.no_grad():
        ref = net(y)
    torch.testing.assert_close(denoise_tiled(net, y, tile=212), ref, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- edge cases

def test_image_smaller_than_a_tile_is_one_untiled_pass():
    m = methods.build("n2c", 1, seed=0, net={"features": 4, "depth": 3})
    y = _image(1, 37, 21)
    calls = []
    out = denoise_tiled(lambda t: calls.append(t.shape) or m.denoise(t), y, multiple=8)
    assert len(calls) == 1 and out.shape == y.shape
    torch.testing.assert_close(denoise_tiled(m, y), m.denoise(y), rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_odd_sizes_with_several_tiles(channels):
    m = methods.build("n2c", channels, seed=0, net={"features": 4, "depth": 2})
    y = _image(channels, 97, 131)
    s = tile_settings(m, tile=92, blend=8)
    assert s == {"tile": 92, "overlap": 44, "blend": 8, "multiple": 4, "radius": 18, "exact": True}
    assert _tiles(m, y, tile=92, blend=8) == 4
    out = denoise_tiled(m, y, tile=92, blend=8)
    assert out.shape == (1, channels, 97, 131) and out.dtype == torch.float32
    torch.testing.assert_close(out, m.denoise(y), rtol=0, atol=1e-5)
    coarse = denoise_tiled(m, y, tile=104, blend=8, multiple=8)  # a coarser grid than the network's 4
    torch.testing.assert_close(coarse, m.denoise(y), rtol=0, atol=1e-5)


def test_one_tile_along_one_axis_several_along_the_other():
    m = methods.build("n2c", 1, seed=0, net={"features": 4, "depth": 2})
    y = _image(1, 37, 301)
    assert _tiles(m, y, tile=92, blend=8) == 6  # 1 row × 6 columns
    torch.testing.assert_close(denoise_tiled(m, y, tile=92, blend=8), m.denoise(y), rtol=0, atol=1e-5)


def test_identity_is_reproduced_and_tiles_are_bounded():
    y = _image(3, 97, 131)
    shapes = []

    def fn(t):
        shapes.append(tuple(t.shape[-2:]))
        return t.clone()

    out = denoise_tiled(fn, y, tile=40, overlap=12)
    torch.testing.assert_close(out, y, rtol=0, atol=1e-6)
    assert len(shapes) > 4 and all(h <= 40 and w <= 40 for h, w in shapes)


@pytest.mark.parametrize("length,tile,overlap,blend,multiple", [
    (100, 40, 12, 12, 1), (1120, 1024, 352, 32, 32), (1504, 512, 184, 32, 8), (333, 60, 20, 0, 1), (64, 64, 10, 4, 1),
    (100, 48, 12, 8, 8)])
def test_weights_sum_to_one_and_spare_the_cut_edges(length, tile, overlap, blend, multiple):
    stride = (tile - overlap) // multiple * multiple
    spans = _spans(length, tile, stride, multiple, blend)
    total = torch.zeros(length, dtype=torch.float64)
    for k, (s, e, w) in enumerate(spans):
        assert (s % multiple == 0 or s == length - tile) and e - s == min(tile, length)
        total[s:e] += w
        margin = (overlap - blend) // 2
        if k > 0:
            assert not w[:margin].any()
        if k < len(spans) - 1:
            assert not w[len(w) - margin:].any()
    assert spans[-1][1] == length
    torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64))


def test_channels_and_batches():
    rgb = methods.build("n2c", 3, seed=0, net={"features": 4, "depth": 2})
    gray = _image(1, 50, 60)
    out = denoise_tiled(rgb, gray, tile=92, blend=8)
    assert out.shape == (1, 3, 50, 60)
    torch.testing.assert_close(out, rgb.denoise(gray.expand(-1, 3, -1, -1)), rtol=0, atol=1e-6)
    with pytest.raises(ImageError, match="1-channel"):
        denoise_tiled(methods.build("n2c", 1, net={"features": 4, "depth": 2}), _image(3, 20, 20))
    batch = torch.cat([_image(3, 50, 60, seed=s) for s in (1, 2)])
    torch.testing.assert_close(denoise_tiled(rgb, batch, tile=92, blend=8), rgb.denoise(batch), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kw,match", [
    ({"tile": 0}, "tile"), ({"tile": 64.0}, "tile"), ({"overlap": -1}, "overlap"), ({"overlap": True}, "overlap"),
    ({"blend": 20, "overlap": 10}, "blend"), ({"tile": 40, "overlap": 20}, "2·overlap"),
    ({"multiple": 0}, "multiple")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        denoise_tiled(lambda t: t, _image(1, 30, 30), **kw)


def test_bad_method_arguments():
    m = methods.build("n2c", 1, net={"features": 4, "depth": 2})
    with pytest.raises(ValueError, match="pooling factor 4"):
        denoise_tiled(m, _image(1, 30, 30), multiple=6)
    with pytest.raises(ValueError, match="2·overlap"):
        denoise_tiled(methods.build("n2c", 1), _image(1, 30, 30), tile=512)  # exact overlap 352
    with pytest.raises(TypeError):
        denoise_tiled(42, _image(1, 30, 30))
    with pytest.raises(ValueError, match="must return"):
        denoise_tiled(lambda t: t[..., 1:, :], _image(1, 30, 30))
