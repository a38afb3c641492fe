"""Property-based checks (hypothesis) of every method's ``denoise`` on random sizes and channels.

Every registered method, untrained (its weights do not change the contract), must turn a
noisy image of any size from 1×1 to 97×97, grey or RGB, into a float32 tensor of the
same shape, finite, on the CPU — the blind-spot and U-Net networks pad internally — or
refuse the input with a clear ``ValueError`` before any work. Classical denoisers and
image conversion have their own property tests (test_bad_input.py, test_image_files.py).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from denoise_lib import methods
from denoise_lib.methods import PerImageMethod

NET = {"features": 8, "depth": 2}
NAMES = methods.available()
_cache: dict = {}


def model(name, channels):
    key = (name, channels)
    if key not in _cache:
        kw = {"iterations": 2} if issubclass(methods.method_class(name), PerImageMethod) else {}
        _cache[key] = methods.build(name, channels=channels, noise="gaussian:25", patch_size=32, net=NET, **kw)
    return _cache[key]


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 97), w=st.integers(1, 97), channels=st.sampled_from([1, 3]),
       seed=st.integers(0, 2 ** 16))
def test_denoise_keeps_shape_dtype_and_finiteness(name, h, w, channels, seed):
    m = model(name, channels)
    y = torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(seed))
    out = m.denoise(y)
    assert out.shape == y.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["n2c", "laine19-pme", "nb2nb"])
@settings(max_examples=8, deadline=None, database=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), n=st.integers(1, 3), batch_size=st.integers(1, 4))
def test_batches_give_the_same_result_as_single_images(name, h, w, n, batch_size):
    m = model(name, 1)
    y = torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(h * 100 + w))
    together = m.denoise(y, batch_size=batch_size)
    one_by_one = torch.cat([m.denoise(y[i:i + 1]) for i in range(n)])
    assert torch.allclose(together, one_by_one, atol=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_batch_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="batch_size"):
        model("n2c", 1).denoise(torch.rand(1, 1, 8, 8), batch_size=bad)


def test_rgb_input_to_a_grey_network_is_refused_clearly():
    with pytest.raises(ValueError, match="channel"):
        model("n2c", 1).denoise(torch.rand(1, 3, 8, 8))
