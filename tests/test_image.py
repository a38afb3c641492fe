"""image.as_image / read_image / to_numpy / reflect_pad / crop_to (files: test_image_files.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from denoise_lib.image import ImageError, as_image, crop_to, read_image, reflect_pad, to_numpy


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- accepted layouts

def test_uint8_hwc_rgb_becomes_1x3xhxw_float32_over_255():
    a = rng().integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    t = as_image(a)
    assert t.shape == (1, 3, 7, 5) and t.dtype == torch.float32
    expected = torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert torch.equal(t, expected)
    assert float(t[0, 2, 4, 1]) == pytest.approx(a[4, 1, 2] / 255)


def test_uint16_is_scaled_by_65535():
    a = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    t = as_image(a)
    assert t.shape == (1, 1, 2, 2)
    assert torch.allclose(t[0, 0], torch.tensor(a.astype(np.float64) / 65535, dtype=torch.float32))
    assert float(t.max()) == 1.0


def test_hw_gray_becomes_1x1xhxw():
    a = rng().random((6, 9)).astype(np.float32)
    t = as_image(a)
    assert t.shape == (1, 1, 6, 9)
    assert torch.equal(t[0, 0], torch.from_numpy(a))


def test_float64_numpy_becomes_float32():
    a = rng().random((4, 4))
    t = as_image(a)
    assert t.dtype == torch.float32 and torch.allclose(t[0, 0].double(), torch.from_numpy(a))


def test_chw_tensor_gets_a_batch_axis():
    x = torch.rand(3, 8, 6, generator=torch.Generator().manual_seed(0))
    t = as_image(x)
    assert t.shape == (1, 3, 8, 6)
    assert torch.equal(t[0], x)


def test_nchw_float32_tensor_passes_through_without_copy():
    x = torch.rand(2, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    t = as_image(x)
    assert t is x


def test_uint8_tensor_is_scaled():
    x = torch.tensor([[0, 255], [51, 102]], dtype=torch.uint8)
    t = as_image(x)
    assert torch.allclose(t[0, 0], x.float() / 255)


def test_alpha_channel_is_dropped_with_a_warning():
    a = rng().integers(0, 256, size=(5, 6, 4), dtype=np.uint8)
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        t = as_image(a)
    assert t.shape == (1, 3, 5, 6)
    assert torch.equal(t, as_image(a[..., :3]))


def test_numpy_layout_follows_channel_axis_not_sizes():
    with pytest.warns(UserWarning, match="alpha"):
        assert as_image(np.zeros((3, 4, 4), np.uint8)).shape == (1, 3, 3, 4)  # H=3, W=4, RGBA
    a = rng().random((3, 8, 6)).astype(np.float32)
    with pytest.raises(ImageError, match="channel_axis=0"):
        as_image(a)  # HWC with 6 channels; the hint names CHW
    assert torch.equal(as_image(a, channel_axis=0), torch.from_numpy(a)[None])
    b = rng().random((4, 5, 1)).astype(np.float32)
    assert torch.equal(as_image(b, channel_axis=2), torch.from_numpy(b[..., 0])[None, None])


def test_channel_axis_none_accepts_only_2d():
    a = rng().random((4, 5)).astype(np.float32)
    assert torch.equal(as_image(a, channel_axis=None)[0, 0], torch.from_numpy(a))
    with pytest.raises(ImageError, match="channel_axis=None"):
        as_image(np.zeros((4, 5, 3), np.float32), channel_axis=None)
    with pytest.raises(ImageError, match="out of range"):
        as_image(np.zeros((4, 5, 3), np.float32), channel_axis=3)


def test_numpy_rank4_is_an_nchw_batch():
    a = rng().random((2, 3, 4, 5)).astype(np.float32)
    assert torch.equal(as_image(a), torch.from_numpy(a))


def test_bool_and_big_endian_numpy_arrays():
    m = np.array([[True, False], [False, True]])
    assert torch.equal(as_image(m)[0, 0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    be = np.array([[0, 65535], [257, 1]], dtype=">u2")
    assert torch.equal(as_image(be), as_image(be.astype(np.uint16)))


# --------------------------------------------------------------------------- rejected input

@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise(bad_value):
    a = np.full((4, 4), 0.5, dtype=np.float32)
    a[1, 2] = bad_value
    with pytest.raises(ImageError, match="NaN or infinite"):
        as_image(a)
    with pytest.raises(ImageError):
        as_image(a, allow_range=True)  # allow_range never lets NaN/inf through


def test_non_finite_tensor_raises():
    x = torch.full((1, 1, 4, 4), 0.5)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ImageError):
        as_image(x)


@pytest.mark.parametrize("shape", [(16,), (1, 1, 1, 4, 4), (2,) * 6])
def test_wrong_rank_numpy_raises(shape):
    with pytest.raises(ImageError, match="rank"):
        as_image(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("shape", [(16,), (1, 1, 1, 4, 4)])
def test_wrong_rank_tensor_raises(shape):
    with pytest.raises(ImageError, match="rank"):
        as_image(torch.zeros(shape))


@pytest.mark.parametrize("channels", [2, 5])
def test_two_or_five_channels_raise(channels):
    with pytest.raises(ImageError):
        as_image(np.zeros((8, 8, channels), dtype=np.float32))  # HWC
    with pytest.raises(ImageError):
        as_image(np.zeros((1, channels, 8, 8), dtype=np.float32))  # NCHW
    with pytest.raises(ImageError):
        as_image(torch.zeros(channels, 8, 8))  # CHW tensor
    with pytest.raises(ImageError):
        as_image(torch.zeros(1, channels, 8, 8))  # NCHW tensor


def test_0_255_floats_raise_with_a_hint():
    a = rng().random((8, 8)).astype(np.float32) * 255
    with pytest.raises(ImageError, match="255"):
        as_image(a)


def test_slightly_negative_floats_raise_without_allow_range():
    a = np.full((4, 4), 0.5, dtype=np.float32)
    a[0, 0] = -0.2
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        as_image(a)


def test_allow_range_accepts_noisy_values():
    a = np.array([[-0.3, 0.5], [1.4, 0.9]], dtype=np.float32)
    t = as_image(a, allow_range=True)
    assert torch.equal(t[0, 0], torch.from_numpy(a))


@pytest.mark.parametrize("a", [np.zeros((4, 4), dtype=np.complex64), np.zeros((4, 4), dtype=np.uint32),
                               np.zeros((4, 4), dtype=np.int32), np.zeros((4, 4), dtype=np.int8)])
def test_unsupported_numpy_dtypes_raise(a):
    with pytest.raises(ImageError, match="dtype"):
        as_image(a)


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64, torch.int64])
def test_unsupported_tensor_dtypes_raise(dtype):
    with pytest.raises(ImageError, match="dtype"):
        as_image(torch.zeros((1, 1, 4, 4), dtype=dtype))


def test_empty_image_raises():
    with pytest.raises(ImageError, match="empty"):
        as_image(np.zeros((0, 5), dtype=np.float32))


def test_list_input_raises():
    with pytest.raises(ImageError, match="list"):
        as_image([np.zeros((4, 4), dtype=np.float32)])


# --------------------------------------------------------------------------- channel conversion

def test_channels_3_replicates_gray():
    a = rng().random((5, 7)).astype(np.float32)
    t = as_image(a, channels=3)
    assert t.shape == (1, 3, 5, 7)
    for c in range(3):
        assert torch.equal(t[0, c], torch.from_numpy(a))


def test_channels_1_on_rgb_is_bt601_luma():
    a = rng(1).random((5, 7, 3)).astype(np.float32)
    t = as_image(a, channels=1)
    luma = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    assert t.shape == (1, 1, 5, 7)
    assert np.allclose(t[0, 0].numpy(), luma, atol=1e-6)


def test_channels_must_be_1_or_3():
    with pytest.raises(ImageError):
        as_image(np.zeros((4, 4), dtype=np.float32), channels=2)


# --------------------------------------------------------------------------- to_numpy

def test_to_numpy_inverts_as_image_for_rgb_and_gray():
    rgb = rng(2).random((5, 6, 3)).astype(np.float32)
    gray = rng(3).random((5, 6)).astype(np.float32)
    assert np.array_equal(to_numpy(as_image(rgb)), rgb)
    assert np.array_equal(to_numpy(as_image(gray)), gray)


def test_to_numpy_rejects_a_batch():
    with pytest.raises(ImageError):
        to_numpy(torch.zeros(2, 1, 4, 4))


# --------------------------------------------------------------------------- read_image

def test_read_image_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError):
        read_image(tmp_path / "nope.png")


def test_read_image_garbage_file(tmp_path):
    p = tmp_path / "garbage.png"
    p.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(ImageError, match="garbage.png"):
        read_image(p)


def test_read_image_round_trips_a_png(tmp_path):
    import skimage.io

    a = rng(4).integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    p = tmp_path / "rgb.png"
    skimage.io.imsave(p, a, check_contrast=False)
    t = read_image(p)
    assert t.shape == (1, 3, 9, 11)
    assert torch.equal(t, as_image(a))
    assert read_image(p, channels=1).shape == (1, 1, 9, 11)


# --------------------------------------------------------------------------- reflect_pad / crop_to

@pytest.mark.parametrize("h,w", [(1, 1), (5, 3), (37, 53), (32, 32), (1, 40), (33, 2)])
def test_reflect_pad_and_crop_round_trip(h, w):
    x = torch.rand((2, 3, h, w), generator=torch.Generator().manual_seed(h * 100 + w))
    xp, size = reflect_pad(x, 32)
    assert size == (h, w)
    assert xp.shape[-2] % 32 == 0 and xp.shape[-1] % 32 == 0
    assert xp.shape[-2] - h < 32 and xp.shape[-1] - w < 32  # the smallest multiple
    assert torch.equal(xp[..., :h, :w], x)
    assert torch.equal(crop_to(xp, size), x)
    # padding only copies existing values, per image and channel
    for n in range(2):
        for c in range(3):
            assert torch.isin(xp[n, c], x[n, c]).all()


def test_reflect_pad_is_a_reflection():
    x = torch.rand((1, 1, 37, 53), generator=torch.Generator().manual_seed(0))
    xp, _ = reflect_pad(x, 32)
    assert xp.shape == (1, 1, 64, 64)
    # reflection without repeating the edge row/column: row 37+k is row 35-k
    for k in range(27):
        assert torch.equal(xp[0, 0, 37 + k, :53], x[0, 0, 35 - k])
    for k in range(11):
        assert torch.equal(xp[0, 0, :37, 53 + k], x[0, 0, :, 51 - k])


def test_reflect_pad_of_a_single_pixel_is_constant():
    x = torch.tensor([[[[0.25]]]])
    xp, _ = reflect_pad(x, 32)
    assert xp.shape == (1, 1, 32, 32) and torch.all(xp == 0.25)
