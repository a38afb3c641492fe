"""denoise_lib.masks: stratified sampling and the replacement strategies."""
from __future__ import annotations

import math

import pytest
import torch

from denoise_lib import masks


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- stratified sampling -------------------------------------------------------------

@pytest.mark.parametrize("fraction,side", [(0.002, 22), (0.005, 14), (1 / 16, 4), (1e-4, 100), (0.25, 2)])
def test_cell_size(fraction, side):
    assert masks.cell_size(fraction) == side


@pytest.mark.parametrize("bad", [0, -0.1, 0.3, 1.0, float("nan"), "0.1"])
def test_bad_fraction_raises(bad):
    with pytest.raises(ValueError, match="fraction"):
        masks.stratified_mask((1, 1, 8, 8), bad, generator=gen())


def test_random_draws_need_an_explicit_generator():
    """No fall-back to torch's global RNG: every function that draws asks for a generator."""
    y, m = torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    for call in (lambda: masks.stratified_mask(y.shape, 0.25, generator=None),
                 lambda: masks.mask_batch(y, 0.25, "zero", generator=None),
                 lambda: masks.replace(y, m, "ups"), lambda: masks.replace(y, m, "random"),
                 lambda: masks.replace(y, m, "gaussian")):
        with pytest.raises(TypeError, match="generator"):
            call()
    masks.replace(y, m, "donut")                                # deterministic: no generator needed
    masks.replace(y, m, "zero")


@pytest.mark.parametrize("shape", [(64, 64), (61, 47), (100, 37)])
def test_one_pixel_per_cell_and_inside(shape):
    h, w = shape
    s = masks.cell_size(1 / 16)
    m = masks.stratified_mask((3, 2, h, w), 1 / 16, generator=gen(1))
    assert m.shape == (3, 1, h, w) and m.dtype == torch.bool
    counts = torch.zeros(3, -(-h // s), -(-w // s), dtype=torch.long)
    b, _, i, j = torch.nonzero(m, as_tuple=True)
    assert (i < h).all() and (j < w).all() and (i >= 0).all() and (j >= 0).all()
    counts.index_put_((b, i // s, j // s), torch.ones_like(b), accumulate=True)
    assert counts.max() == 1                                # never two in a cell
    full = counts[:, : h // s, : w // s]
    assert (full == 1).all()                                # every complete cell has one


def test_fraction_within_tolerance():
    m = masks.stratified_mask((200, 1, 64, 64), 0.002, generator=gen(2))
    realised = m.float().mean().item()
    assert abs(realised - 1 / 22 ** 2) < 0.1 / 22 ** 2      # expected exactly 1/s² (drop at the border)
    assert abs(realised - 0.002) < 0.0002


def test_every_pixel_is_equally_likely_including_partial_cells():
    # 30×30 with s = 4: the last row/column of cells is partial (30 = 7·4 + 2)
    m = masks.stratified_mask((4000, 1, 30, 30), 1 / 16, generator=gen(3)).float().mean(0)[0]
    assert abs(m.mean().item() - 1 / 16) < 0.003
    assert abs(m[28:, :].mean().item() - 1 / 16) < 0.01     # border pixels: same probability
    assert abs(m[:, 28:].mean().item() - 1 / 16) < 0.01


def test_never_empty_even_for_an_image_smaller_than_a_cell():
    m = masks.stratified_mask((500, 1, 5, 7), 1e-4, generator=gen(4))  # cell 100 ≫ 5×7
    per = m.flatten(1).sum(1)
    assert (per == 1).all()
    assert m.float().mean(0).min() > 0                      # the fallback pixel is spread out


def test_seeded_and_independent_of_values():
    a = masks.stratified_mask((2, 1, 32, 32), 0.01, generator=gen(5))
    b = masks.stratified_mask((2, 1, 32, 32), 0.01, generator=gen(5))
    assert torch.equal(a, b)
    # a constant image gets a mask like any other (the mask never looks at values)
    y = torch.full((2, 1, 32, 32), 0.5)
    masked, m = masks.mask_batch(y, 0.01, "zero", generator=gen(5))
    assert torch.equal(m, a) and m.flatten(1).sum(1).min() >= 1
    assert (masked[m.expand_as(masked)] == 0).all()


def test_coords_match_mask():
    b, i, j = masks.stratified_coords((2, 1, 20, 20), 0.05, generator=gen(6))
    m = masks.stratified_mask((2, 1, 20, 20), 0.05, generator=gen(6))
    assert torch.equal(torch.stack([b, i, j]), torch.nonzero(m)[:, [0, 2, 3]].T)


def test_grid_mask_phases_partition_the_image():
    total = sum(masks.grid_mask((1, 1, 9, 10), 3, p).long() for p in range(9))
    assert (total == 1).all()
    with pytest.raises(ValueError):
        masks.grid_mask((1, 1, 9, 10), 1, 0)


# --- replacements --------------------------------------------------------------------

def unique_image(b=2, c=1, h=11, w=13):
    """Values 0, 1, 2, ... scaled: every entry distinct."""
    return torch.arange(b * c * h * w, dtype=torch.float64).view(b, c, h, w) / (b * c * h * w)


def reflect(k, n):
    k = abs(k)
    period = 2 * (n - 1)
    k %= period
    return period - k if k >= n else k


@pytest.mark.parametrize("radius", [1, 2])
def test_ups_never_picks_the_centre_and_picks_a_neighbour(radius):
    y = unique_image(3, 2, 11, 13)
    m = masks.stratified_mask(y.shape, 1 / 16, generator=gen(7))
    m[:, :, 0, 0] = True                                       # corners exercise reflection
    m[:, :, -1, -1] = True
    out = masks.ups(y, m, radius=radius, generator=gen(8))
    b, _, i, j = torch.nonzero(m, as_tuple=True)
    _, _, h, w = y.shape
    for bb, ii, jj in zip(b.tolist(), i.tolist(), j.tolist()):
        got = out[bb, :, ii, jj]
        assert not torch.equal(got, y[bb, :, ii, jj])          # differs from the original
        sources = {(reflect(ii + di, h), reflect(jj + dj, w))
                   for di in range(-radius, radius + 1) for dj in range(-radius, radius + 1)}
        sources.discard((ii, jj))
        matches = [(si, sj) for si, sj in sources if torch.equal(got, y[bb, :, si, sj])]
        assert len(matches) == 1                                # all channels from one neighbour
        assert not m[bb, 0, matches[0][0], matches[0][1]]       # never another masked pixel
    assert torch.equal(out[~m.expand_as(out)], y[~m.expand_as(y)])


def test_ups_is_uniform_over_the_neighbourhood():
    y = unique_image(1, 1, 9, 9)
    m = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    m[0, 0, 4, 4] = True
    g = gen(9)
    picks = torch.stack([masks.ups(y, m, generator=g)[0, 0, 4, 4] for _ in range(4800)])
    vals, counts = torch.unique(picks, return_counts=True)
    assert len(vals) == 24                                      # 5×5 minus the centre
    assert y[0, 0, 4, 4] not in vals
    assert counts.min() > 120 and counts.max() < 290            # 200 expected each


def test_donut_is_the_mean_of_the_8_neighbours():
    y = torch.rand((2, 3, 10, 12), generator=gen(10), dtype=torch.float64)
    m = torch.zeros(2, 1, 10, 12, dtype=torch.bool)
    m[0, 0, 4, 5] = m[1, 0, 7, 2] = True
    m[1, 0, 0, 0] = True                                        # corner: reflected neighbours
    out = masks.donut(y, m)
    assert torch.allclose(out[0, :, 4, 5], (y[0, :, 3:6, 4:7].sum((1, 2)) - y[0, :, 4, 5]) / 8)
    assert torch.allclose(out[1, :, 7, 2], (y[1, :, 6:9, 1:4].sum((1, 2)) - y[1, :, 7, 2]) / 8)
    corner = (y[1, :, 1, 0] * 2 + y[1, :, 0, 1] * 2 + y[1, :, 1, 1] * 4) / 8
    assert torch.allclose(out[1, :, 0, 0], corner)
    assert torch.equal(out[~m.expand_as(out)], y[~m.expand_as(y)])


def test_donut_leaves_masked_neighbours_out():
    y = torch.rand((1, 1, 6, 6), generator=gen(11), dtype=torch.float64)
    m = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    m[0, 0, 2, 2] = m[0, 0, 2, 3] = True                        # two adjacent masked pixels
    out = masks.donut(y, m)
    want = (y[0, 0, 1:4, 1:4].sum() - y[0, 0, 2, 2] - y[0, 0, 2, 3]) / 7
    assert torch.allclose(out[0, 0, 2, 2], want)


def test_random_and_zero_and_gaussian():
    y = torch.rand((4, 1, 32, 32), generator=gen(12)) * 0.2 + 0.4
    m = masks.stratified_mask(y.shape, 1 / 16, generator=gen(13))
    sel = m.expand_as(y)
    r = masks.random_uniform(y, m, generator=gen(14))
    assert r[sel].min() >= 0 and r[sel].max() <= 1 and r[sel].std() > 0.2   # U(0,1): std 0.289
    assert (masks.zero(y, m)[sel] == 0).all()
    gvals = masks.gaussian(y, m, sigma=0.2, generator=gen(15))[sel]
    mean, std = masks.masked_mean(y, m)
    assert abs(gvals.mean() - mean.mean()) < 0.01
    assert abs(gvals.std() / std.mean() - 0.2) < 0.03
    absolute = masks.gaussian(y, m, sigma=0.2, relative=False, generator=gen(15))[sel]
    assert abs(absolute.mean()) < 0.02 and abs(absolute.std() - 0.2) < 0.02


def test_replacements_read_only_unmasked_pixels():
    """Changing y on the mask changes nothing in the replaced image (J-invariant masking)."""
    y = torch.rand((2, 2, 16, 16), generator=gen(16), dtype=torch.float64)
    m = masks.stratified_mask(y.shape, 0.25, generator=gen(17))      # dense: many adjacent masked pixels
    y2 = torch.where(m, torch.rand(y.shape, generator=gen(18), dtype=torch.float64), y)
    for s in masks.STRATEGIES:
        a = masks.replace(y, m, s, generator=gen(19))
        b = masks.replace(y2, m, s, generator=gen(19))
        assert torch.allclose(a, b, atol=1e-12, rtol=0), s


def test_unknown_strategy_and_bad_mask_raise():
    y = torch.rand(1, 1, 8, 8)
    m = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match="ups"):
        masks.replace(y, m, "median")
    with pytest.raises(ValueError, match="shape"):
        masks.replace(y, m[..., :4], "zero")
    with pytest.raises(TypeError):
        masks.replace(y, m.float(), "zero")
    with pytest.raises(ValueError, match="≥ 2"):
        masks.ups(torch.rand(1, 1, 1, 8), torch.ones(1, 1, 1, 8, dtype=torch.bool), generator=gen())


def test_masked_mse_is_normalised_by_the_masked_entries():
    g = gen(20)
    a, b = torch.rand((2, 3, 8, 8), generator=g), torch.rand((2, 3, 8, 8), generator=g)
    m = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    m[0, 0, 1, 1] = m[1, 0, 5, 6] = m[1, 0, 2, 7] = True
    want = (((a[0, :, 1, 1] - b[0, :, 1, 1]) ** 2).sum() + ((a[1, :, 5, 6] - b[1, :, 5, 6]) ** 2).sum()
            + ((a[1, :, 2, 7] - b[1, :, 2, 7]) ** 2).sum()) / (3 * 3)
    assert torch.allclose(masks.masked_mse(a, b, m), want)
    empty = masks.masked_mse(a, b, torch.zeros_like(m))            # count clamped: 0, not NaN
    assert empty == 0


def test_mask_batch_returns_input_and_mask_on_the_image_device():
    y = torch.rand(3, 1, 40, 40)
    masked, m = masks.mask_batch(y, 0.01, "ups", generator=gen(21))
    assert masked.shape == y.shape and masked.dtype == y.dtype and m.shape == (3, 1, 40, 40)
    assert math.isclose(m.float().mean().item(), 0.01, rel_tol=0.5)
    changed = (masked != y).any(1, keepdim=True)
    assert not (changed & ~m).any()


def test_fully_masked_neighbourhoods_fall_back_to_the_other_masked_pixels():
    """Only when every neighbour is masked are masked neighbours used (never the centre)."""
    y = unique_image(1, 1, 5, 6)
    m = torch.ones(1, 1, 5, 6, dtype=torch.bool)
    out = masks.ups(y, m, radius=1, generator=gen(22))
    assert (out != y).all()                                       # the centre is never its own source
    assert set(out.flatten().tolist()) <= set(y.flatten().tolist())
    d = masks.donut(y, m)
    ref = masks.donut(y, torch.zeros_like(m).index_put_((torch.tensor([0]), torch.tensor([0]),
                                                         torch.tensor([2]), torch.tensor([3])),
                                                        torch.tensor(True)))
    assert torch.allclose(d[0, 0, 2, 3], ref[0, 0, 2, 3])         # an interior pixel: the 8-neighbour mean


def test_stratified_mask_border_cells_chi_square():
    """Within a partial border cell, the masked position is uniform over its pixels (χ² test)."""
    n = 3000
    m = masks.stratified_mask((n, 1, 6, 6), 1 / 16, generator=gen(23))[:, 0]   # s = 4: cell (1, 1) is 2×2
    corner = m[:, 4:, 4:].reshape(n, 4)
    counts = corner.sum(0).double()
    assert (corner.sum(1) <= 1).all()
    expected = n / 16                                             # probability 1/s² per pixel
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 16.27                                           # χ²(4 dof) at p = 0.003


def _refuse(what):
    def f(*args, **kwargs):
        raise AssertionError(f"host round trip: {what}")
    return f


def test_training_path_has_no_host_round_trip_or_data_dependent_shape(monkeypatch):
    """stratified_mask, the replacements, mask_batch and masked_mse run with host transfers refused."""
    y = torch.rand((2, 3, 20, 24), generator=gen(24))
    small = torch.rand((2, 1, 5, 7), generator=gen(25))             # smaller than a cell: the fallback
    plain_getitem = torch.Tensor.__getitem__

    def getitem(self, idx):
        for i in idx if isinstance(idx, tuple) else (idx,):
            if isinstance(i, torch.Tensor) and i.dtype == torch.bool:
                raise AssertionError("boolean-mask indexing (data-dependent shape)")
        return plain_getitem(self, idx)

    for what in ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__bool__", "__index__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, what, _refuse(f"Tensor.{what}"))
    monkeypatch.setattr(torch, "nonzero", _refuse("torch.nonzero"))
    monkeypatch.setattr(torch.Tensor, "__getitem__", getitem)
    g = gen(26)
    m = masks.stratified_mask(y.shape, 1 / 16, generator=g, device=y.device)
    masks.stratified_mask(small.shape, 1e-4, generator=g)
    for s in masks.STRATEGIES:
        masks.replace(y, m, s, generator=g)
    masked, mask = masks.mask_batch(y, 0.01, "ups", generator=g)
    masks.mask_batch(small, 1e-4, "gaussian", generator=g)
    loss = masks.masked_mse(masked, y, mask)
    monkeypatch.undo()
    assert loss.ndim == 0 and torch.isfinite(loss)
