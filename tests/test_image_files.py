"""image.read_image / read_alpha / image_info / write_image on files made on the fly, and the NumPy layout rule."""
from __future__ import annotations

import struct
import warnings
import zlib

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from denoise_lib.image import (ImageError, ImageInfo, as_image, image_info, read_alpha, read_image, to_numpy,
                               write_image)


def rng(seed=0):
    return np.random.default_rng(seed)


def u8(a):
    return torch.from_numpy(np.asarray(a, np.float32) / 255)


def u16(a):
    return torch.from_numpy(np.asarray(a, np.float32) / 65535)


def nchw(a: torch.Tensor) -> torch.Tensor:
    return (a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None]).contiguous()


def png16(path, a: np.ndarray, filters=(0,)):
    """A 16-bit PNG of ``a`` (uint16 HW / HWC), row r filtered with ``filters[r % len(filters)]``."""
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    raw = np.ascontiguousarray(a, ">u2").reshape(h, -1).view(np.uint8).astype(np.int16)
    bpp = 2 * c
    rows = []
    for r in range(h):
        x = raw[r]
        up = raw[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int16), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int16), up[:-bpp]])
        f = filters[r % len(filters)]
        if f == 4:
            pa, pb, pc = abs(up - upleft), abs(left - upleft), abs(left + up - 2 * upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        else:
            pred = [np.zeros_like(x), left, up, (left + up) // 2][f]
        rows.append(bytes([f]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
                     + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- colour models

def test_palette_png_loads_colours_not_indices(tmp_path):
    palette = [(200, 10, 30), (5, 250, 100), (0, 0, 255)]
    idx = rng().integers(0, 3, size=(6, 8), dtype=np.uint8)
    im = Image.fromarray(idx, mode="L").convert("P")
    im.putpalette([v for c in palette for v in c])
    im.putdata(idx.ravel().tolist())
    p = tmp_path / "pal.png"
    im.save(p)
    assert Image.open(p).mode == "P"
    t = read_image(p)
    assert t.shape == (1, 3, 6, 8)
    assert torch.equal(t, nchw(u8(np.array(palette, np.uint8)[idx])))
    assert image_info(p).channels == 3 and image_info(p).mode == "P"


def test_palette_png_with_transparency_warns_and_keeps_colours(tmp_path):
    im = Image.new("P", (4, 3))
    im.putpalette([10, 20, 30, 40, 50, 60])
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 1
    p = tmp_path / "palt.png"
    im.save(p, transparency=1)
    with pytest.warns(UserWarning, match="alpha"):
        t = read_image(p)
    assert torch.equal(t[0, :, 1, 1], u8([40, 50, 60])) and torch.equal(t[0, :, 0, 0], u8([10, 20, 30]))
    assert image_info(p).has_alpha
    a = read_alpha(p)
    assert float(a[0, 0, 1, 1]) == 0 and float(a[0, 0, 0, 0]) == 1


def test_cmyk_jpeg_of_white_loads_white(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 0, 0, 0)).save(p, quality=95)
    assert Image.open(p).mode == "CMYK"
    t = read_image(p)
    assert t.shape == (1, 3, 12, 16)
    assert float(t.min()) > 0.98


def test_cmyk_jpeg_of_cyan_loads_cyan(tmp_path):
    p = tmp_path / "cyan.jpg"
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(p, quality=95)
    t = read_image(p)
    assert float(t[0, 0].max()) < 0.05 and float(t[0, 1:].min()) > 0.95


@pytest.mark.parametrize("mode,white", [("YCbCr", (255, 128, 128)), ("LAB", (255, 128, 128))])
def test_ycbcr_and_lab_tiffs_become_rgb(tmp_path, mode, white):
    p = tmp_path / "img.tif"
    Image.new(mode, (8, 6), white).save(p)
    assert Image.open(p).mode == mode
    t = read_image(p)
    assert t.shape == (1, 3, 6, 8) and float(t.min()) > 0.99


def test_bilevel_png_loads_as_0_and_1(tmp_path):
    a = rng().integers(0, 2, size=(5, 7)).astype(bool)
    p = tmp_path / "bw.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode == "1"
    assert torch.equal(read_image(p), nchw(torch.from_numpy(a.astype(np.float32))))
    assert image_info(p).bit_depth == 1


# --------------------------------------------------------------------------- bit depth

@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_is_exact(tmp_path, suffix):
    a = rng(1).integers(0, 65536, size=(9, 11), dtype=np.uint16)
    a[0, 0], a[0, 1] = 1, 65534  # values that 8 bits would lose
    p = tmp_path / f"g16{suffix}"
    Image.fromarray(a).save(p)
    t = read_image(p)
    assert t.shape == (1, 1, 9, 11)
    assert np.array_equal(np.round(t[0, 0].double().numpy() * 65535).astype(np.uint16), a)
    assert image_info(p).bit_depth == 16


def test_16bit_rgb_tiff_is_exact(tmp_path):
    a = rng(2).integers(0, 65536, size=(6, 10, 3), dtype=np.uint16)
    p = tmp_path / "rgb16.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    t = read_image(p)
    assert torch.equal(t, nchw(u16(a)))
    info = image_info(p)
    assert (info.format, info.bit_depth, info.channels, info.has_alpha) == ("TIFF", 16, 3, False)


@pytest.mark.parametrize("filters", [(0,), (1,), (2,), (3,), (4,), (0, 1, 2, 3, 4)])
@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_png_is_exact_for_every_png_filter(tmp_path, filters, channels):
    a = rng(3).integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)
    p = png16(tmp_path / "c16.png", a, filters)
    with warnings.catch_warnings():
        warnings.simplefilter("error" if channels == 3 else "ignore")
        t = read_image(p)
    assert torch.equal(t, nchw(u16(a[..., :3])))
    if channels == 4:
        assert torch.equal(read_alpha(p)[0, 0], u16(a[..., 3]))


def test_16bit_gray_alpha_png_is_exact(tmp_path):
    a = rng(4).integers(0, 65536, size=(5, 6, 2), dtype=np.uint16)
    p = png16(tmp_path / "la16.png", a, (4,))
    with pytest.warns(UserWarning, match="alpha"):
        t = read_image(p)
    assert torch.equal(t, nchw(u16(a[..., 0])))
    assert torch.equal(read_alpha(p)[0, 0], u16(a[..., 1]))
    assert image_info(p) == ImageInfo("PNG", 16, 1, True, "LA;16", 1, (5, 6))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_min_is_white_tiff_is_inverted_but_not_its_alpha(tmp_path, dtype):
    top = np.iinfo(dtype).max
    g = np.array([[0, top], [top // 3, 1]], dtype)
    p = tmp_path / "mw.tif"
    tifffile.imwrite(p, np.dstack([g, g]), photometric="miniswhite", extrasamples=["unassalpha"])
    with pytest.warns(UserWarning, match="alpha"):
        t = read_image(p)
    scale = u8 if dtype is np.uint8 else u16
    assert torch.equal(t[0, 0], scale(top - g))
    assert torch.equal(read_alpha(p)[0, 0], scale(g))


def test_float_rgb_tiff_loads_and_out_of_range_is_refused(tmp_path):
    a = rng(5).random((4, 5, 3)).astype(np.float32)
    p = tmp_path / "f.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    assert torch.equal(read_image(p), nchw(torch.from_numpy(a)))
    tifffile.imwrite(p, a * 255, photometric="rgb")
    with pytest.raises(ImageError, match=r"f\.tif.*\[0, 1\]"):
        read_image(p)


# --------------------------------------------------------------------------- alpha

def test_rgba_png_warns_and_drops_alpha(tmp_path):
    a = rng(6).integers(0, 256, size=(5, 7, 4), dtype=np.uint8)
    p = tmp_path / "rgba.png"
    Image.fromarray(a).save(p)
    with pytest.warns(UserWarning, match="rgba.png: alpha channel dropped"):
        t = read_image(p)
    assert torch.equal(t, nchw(u8(a[..., :3])))
    assert torch.equal(read_alpha(p)[0, 0], u8(a[..., 3]))


def test_la_png_warns_and_gives_gray(tmp_path):
    a = rng(7).integers(0, 256, size=(5, 7, 2), dtype=np.uint8)
    p = tmp_path / "la.png"
    Image.fromarray(a).save(p)
    assert Image.open(p).mode == "LA"
    with pytest.warns(UserWarning, match="alpha"):
        t = read_image(p)
    assert torch.equal(t, nchw(u8(a[..., 0])))


def test_rgb_png_does_not_warn_and_has_no_alpha(tmp_path):
    p = tmp_path / "rgb.png"
    Image.fromarray(rng().integers(0, 256, size=(4, 4, 3), dtype=np.uint8)).save(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(p)
    assert read_alpha(p) is None and not image_info(p).has_alpha


# --------------------------------------------------------------------------- pages and frames

def gray_pages(n=3, shape=(5, 6)):
    return [np.full(shape, 40 * (k + 1), np.uint8) + np.arange(shape[1], dtype=np.uint8) for k in range(n)]


def test_multipage_tiff_is_refused_without_pages(tmp_path):
    p = tmp_path / "stack.tif"
    pages = gray_pages()
    with tifffile.TiffWriter(p) as w:
        for a in pages:
            w.write(a, photometric="minisblack")
    with pytest.raises(ImageError, match=r"stack\.tif holds 3 pages.*pages="):
        read_image(p)
    assert image_info(p).pages == 3
    assert torch.equal(read_image(p, pages=1), nchw(u8(pages[1])))
    every = read_image(p, pages="all")
    assert isinstance(every, list) and len(every) == 3
    for t, a in zip(every, pages):
        assert torch.equal(t, nchw(u8(a)))
    for bad in (3, -1, "first", True, 1.0):
        with pytest.raises(ImageError, match="pages"):
            read_image(p, pages=bad)


def test_multipage_16bit_rgb_tiff_pages(tmp_path):
    p = tmp_path / "rgb16stack.tif"
    pages = [rng(k).integers(0, 65536, size=(4, 5, 3), dtype=np.uint16) for k in range(2)]
    with tifffile.TiffWriter(p) as w:
        for a in pages:
            w.write(a, photometric="rgb")
    with pytest.raises(ImageError, match="2 pages"):
        read_image(p)
    assert torch.equal(read_image(p, pages=1), nchw(u16(pages[1])))


def test_animated_gif_is_refused_unless_pages(tmp_path):
    frames = [np.full((6, 8, 3), v, np.uint8) for v in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(p, save_all=True, append_images=ims[1:], duration=100, loop=0)
    with pytest.raises(ImageError, match="3 pages"):
        read_image(p)
    for k, f in enumerate(frames):
        t = read_image(p, pages=k)
        assert t.shape == (1, 3, 6, 8)
        assert torch.allclose(t, nchw(u8(f)), atol=1 / 255)
    assert len(read_image(p, pages="all")) == 3


def test_single_frame_gif_loads(tmp_path):
    colours = np.array([(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 0, 255)], np.uint8)
    idx = rng(8).integers(0, 4, size=(7, 9))
    p = tmp_path / "one.gif"
    Image.fromarray(colours[idx]).save(p)
    t = read_image(p)
    assert t.shape == (1, 3, 7, 9)
    assert torch.equal(t, nchw(u8(colours[idx])))


def test_gray_gif_loads_as_gray_values(tmp_path):
    a = (rng(9).integers(0, 4, size=(5, 5)) * 80).astype(np.uint8)
    p = tmp_path / "gray.gif"
    Image.fromarray(a).save(p)
    t = read_image(p)
    assert t.shape[1] in (1, 3)
    for c in range(t.shape[1]):
        assert torch.equal(t[0, c], u8(a))


# --------------------------------------------------------------------------- EXIF orientation

def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    a = np.zeros((16, 32, 3), np.uint8)
    a[:8] = 255  # top half white
    exif = Image.Exif()
    exif[274] = 6  # stored image must be turned 90° clockwise for display
    p = tmp_path / "rot.jpg"
    Image.fromarray(a).save(p, exif=exif, quality=95)
    t = read_image(p)
    assert t.shape == (1, 3, 32, 16)
    assert float(t[..., :, 10:].mean()) > 0.9 and float(t[..., :, :6].mean()) < 0.1  # white is now on the right
    assert image_info(p).size == (16, 32)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tifffile_orientation_matches_pillow(tmp_path, orientation):
    a = rng(orientation).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    tag = [(274, "H", 1, orientation, True)]
    p8, p16 = tmp_path / "o8.tif", tmp_path / "o16.tif"
    tifffile.imwrite(p8, a, photometric="rgb", extratags=tag)  # read by Pillow
    tifffile.imwrite(p16, a.astype(np.uint16) * 257, photometric="rgb", extratags=tag)  # read by tifffile
    t8, t16 = read_image(p8), read_image(p16)
    assert t8.shape == t16.shape == ((1, 3, 3, 5) if orientation < 5 else (1, 3, 5, 3))
    assert torch.allclose(t8, t16, atol=1e-6)
    if orientation == 1:
        assert torch.equal(t8, nchw(u8(a)))
    else:
        assert not torch.equal(t8[..., :3, :3], nchw(u8(a))[..., :3, :3])


# --------------------------------------------------------------------------- bad paths and files

def test_missing_file_is_file_not_found_and_image_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="not found"):
        image_info(tmp_path / "nope.png")


def test_empty_path_is_refused():
    with pytest.raises(ImageError, match="empty path"):
        read_image("")
    with pytest.raises(ImageError, match="empty path"):
        image_info("  ")


def test_folder_is_refused(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_empty_file_is_refused(tmp_path):
    p = tmp_path / "empty.png"
    p.touch()
    with pytest.raises(ImageError, match=r"empty\.png.*empty"):
        read_image(p)


@pytest.mark.parametrize("name,content", [("notes.txt", b"just some text\n" * 20),
                                          ("fake.jpg", b"\xff\xd8\xff" + b"\x00" * 50),
                                          ("fake.tif", b"II*\x00" + b"\x00" * 50)])
def test_non_image_file_is_refused(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageError, match=name.replace(".", r"\.")):
        read_image(p)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_file_is_refused(tmp_path, suffix):
    p = tmp_path / f"cut{suffix}"
    Image.fromarray(rng().integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(ImageError, match=f"cut\\{suffix}"):
        read_image(p)


def test_wrong_path_type_is_refused():
    with pytest.raises(ImageError, match="path"):
        read_image(np.zeros((4, 4)))


# --------------------------------------------------------------------------- write_image

@pytest.mark.parametrize("shape", [(9, 11), (9, 11, 3)])
def test_write_8bit_png_round_trips_exactly(tmp_path, shape):
    a = rng(10).integers(0, 256, size=shape, dtype=np.uint8)
    x = as_image(a)
    p = write_image(tmp_path / "o.png", x)
    assert np.array_equal(np.asarray(Image.open(p)), a)
    assert torch.equal(read_image(p), x)
    assert image_info(p).bit_depth == 8


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 3)])
def test_write_16bit_round_trips_exactly(tmp_path, suffix, shape):
    a = rng(11).integers(0, 65536, size=shape, dtype=np.uint16)
    x = as_image(a)
    p = write_image(tmp_path / f"o{suffix}", x, bit_depth=16)
    assert image_info(p).bit_depth == 16
    assert torch.equal(read_image(p), x)
    stored = tifffile.imread(p) if suffix != ".png" else None
    if stored is not None:
        assert np.array_equal(stored, a)


def test_write_accepts_chw_and_hw_tensors_and_clips(tmp_path):
    x = torch.tensor([[[-0.2, 0.5], [1.3, 1.0]]])
    write_image(tmp_path / "c.png", x)
    write_image(tmp_path / "h.png", x[0])
    for name in ("c.png", "h.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), [[0, 128], [255, 255]])


def test_write_like_keeps_the_bit_depth(tmp_path):
    src16 = tmp_path / "in16.png"
    Image.fromarray(rng().integers(0, 65536, size=(5, 5), dtype=np.uint16)).save(src16)
    src8 = tmp_path / "in8.png"
    Image.fromarray(rng().integers(0, 256, size=(5, 5), dtype=np.uint8)).save(src8)
    x = read_image(src16)
    assert image_info(write_image(tmp_path / "o16.png", x, like=src16)).bit_depth == 16
    assert image_info(write_image(tmp_path / "o16.tif", x, like=image_info(src16))).bit_depth == 16
    assert image_info(write_image(tmp_path / "o8.png", x, like=src8)).bit_depth == 8
    assert image_info(write_image(tmp_path / "o.png", x, like=src16, bit_depth=8)).bit_depth == 8
    assert torch.equal(read_image(tmp_path / "o16.png"), x)


def test_write_jpeg_refuses_16_bits_and_alpha(tmp_path):
    src16 = tmp_path / "in16.tif"
    tifffile.imwrite(src16, np.zeros((4, 4), np.uint16))
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ImageError, match="JPEG.*8 bits"):
        write_image(tmp_path / "o.jpg", x, bit_depth=16)
    with pytest.raises(ImageError, match="JPEG.*8 bits"):
        write_image(tmp_path / "o.jpeg", x, like=src16)
    with pytest.raises(ImageError, match="alpha"):
        write_image(tmp_path / "o.jpg", x, alpha=np.ones((4, 4)))
    assert not (tmp_path / "o.jpg").exists()
    write_image(tmp_path / "o.jpg", x)
    assert image_info(tmp_path / "o.jpg").format == "JPEG"


@pytest.mark.parametrize("suffix,bits", [(".png", 8), (".png", 16), (".tif", 8), (".tif", 16)])
def test_write_restores_alpha(tmp_path, suffix, bits):
    x = as_image(rng(12).integers(0, 256, size=(5, 6, 3), dtype=np.uint8))
    alpha = rng(13).integers(0, 256, size=(5, 6), dtype=np.uint8)
    p = write_image(tmp_path / f"a{suffix}", x, alpha=alpha, bit_depth=bits)
    info = image_info(p)
    assert info.has_alpha and info.channels == 3 and info.bit_depth == bits
    assert torch.equal(read_alpha(p)[0, 0], u8(alpha))
    with pytest.warns(UserWarning, match="alpha"):
        assert torch.equal(read_image(p), x)


def test_write_refuses_bad_requests(tmp_path):
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(ImageError, match="suffix"):
        write_image(tmp_path / "o.bmpx", x)
    with pytest.raises(ImageError, match="bit_depth"):
        write_image(tmp_path / "o.png", x, bit_depth=12)
    with pytest.raises(ImageError, match="batch"):
        write_image(tmp_path / "o.png", torch.rand(2, 1, 4, 4))
    with pytest.raises(ImageError, match="NaN"):
        write_image(tmp_path / "o.png", torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ImageError, match="alpha"):
        write_image(tmp_path / "o.png", x, alpha=np.ones((3, 4)))
    with pytest.raises(FileNotFoundError):
        write_image(tmp_path / "no" / "o.png", x)


# --------------------------------------------------------------------------- NumPy layout rule

def test_numpy_3x4x4_is_hwc_rgba_never_chw():
    with pytest.warns(UserWarning, match="alpha"):
        t = as_image(np.zeros((3, 4, 4), np.uint8))
    assert t.shape == (1, 3, 3, 4)


def test_numpy_chw_needs_channel_axis_0():
    a = rng(14).random((3, 5, 6)).astype(np.float32)
    with pytest.raises(ImageError, match="channel_axis=0"):
        as_image(a)
    assert torch.equal(as_image(a, channel_axis=0), torch.from_numpy(a)[None])


def test_numpy_hwc_with_three_rows_is_not_taken_for_chw():
    a = rng(15).random((3, 5, 3)).astype(np.float32)
    assert torch.equal(as_image(a), torch.from_numpy(a).permute(2, 0, 1)[None])
    assert torch.equal(as_image(a, channel_axis=0), torch.from_numpy(a)[None])


# --------------------------------------------------------------------------- properties

dtypes = st.sampled_from([np.uint8, np.uint16, np.float32])


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 97), w=st.integers(1, 97), c=st.sampled_from([1, 3]), dtype=dtypes,
       seed=st.integers(0, 2**32 - 1))
def test_as_image_gives_float32_nchw_in_unit_range(h, w, c, dtype, seed):
    g = np.random.default_rng(seed)
    shape = (h, w) if c == 1 else (h, w, c)
    if dtype is np.float32:
        a = g.random(shape, dtype=np.float32)
    else:
        a = g.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype, endpoint=True)
    t = as_image(a)
    assert t.dtype == torch.float32 and t.shape == (1, c, h, w)
    assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert np.allclose(to_numpy(t), a / (1 if dtype is np.float32 else np.iinfo(dtype).max), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 97), w=st.integers(1, 97), c=st.sampled_from([1, 3]), seed=st.integers(0, 2**32 - 1))
def test_to_numpy_of_as_image_round_trips_uint8(h, w, c, seed):
    a = np.random.default_rng(seed).integers(0, 256, size=(h, w) if c == 1 else (h, w, c), dtype=np.uint8)
    back = np.round(to_numpy(as_image(a)) * 255).astype(np.uint8)
    assert back.shape == a.shape and np.array_equal(back, a)


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), c=st.sampled_from([1, 3]), bits=st.sampled_from([8, 16]),
       suffix=st.sampled_from([".png", ".tif"]), seed=st.integers(0, 2**32 - 1))
def test_write_read_round_trips_at_the_bit_depth(tmp_path_factory, h, w, c, bits, suffix, seed):
    dtype = np.uint8 if bits == 8 else np.uint16
    a = np.random.default_rng(seed).integers(0, np.iinfo(dtype).max, size=(h, w) if c == 1 else (h, w, c),
                                             dtype=dtype, endpoint=True)
    p = write_image(tmp_path_factory.mktemp("rt") / f"x{suffix}", as_image(a), bit_depth=bits)
    assert torch.equal(read_image(p), as_image(a))
