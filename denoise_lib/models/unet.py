"""The U-Net of Lehtinen et al. (2018), "Noise2Noise", appendix A.1 (Table 2 there).

Layout (n input channels, m outputs; every 3×3 convolution is followed by
LeakyReLU(0.1) except the last one, which is linear)::

    ENC_CONV0, ENC_CONV1  48          (full resolution)
    POOL1 .. POOL5        2×2 max-pool, each after one 48-channel convolution
    ENC_CONV6             48          (1/32 resolution)
    UPSAMPLE5 .. 1        nearest 2×, concatenated with the skip of the same size
    DEC_CONV5A/B .. 2A/B  96, 96
    DEC_CONV1A/B/C        64, 32, m

About 1.0 M parameters for RGB. Inputs are reflect-padded to a multiple of 32 and
cropped back, so any size works.
"""
from __future__ import annotations

import torch
from torch import nn

from ..image import crop_to, reflect_pad

__all__ = ["UNet", "UNetBody", "conv3x3"]


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    """A 3×3, stride-1, zero-padded convolution with bias (arguments passed by keyword)."""
    return nn.Conv2d(in_channels=cin, out_channels=cout, kernel_size=3, stride=1, padding=1, bias=True)


class _Block(nn.Sequential):
    """Convolutions ``channels[0] → channels[1] → …``, each followed by LeakyReLU(0.1).

    ``conv(cin, cout)`` makes each convolution (default :func:`conv3x3`; the blind-spot
    network passes its shifted convolution).
    """

    def __init__(self, *channels: int, conv=conv3x3):
        layers = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers += [conv(cin, cout), nn.LeakyReLU(negative_slope=0.1, inplace=True)]
        super().__init__(*layers)


class UNetBody(nn.Module):
    """The encoder–decoder of the Noise2Noise U-Net, up to DEC_CONV1B (no output layer).

    Shared by :class:`UNet` and :class:`~denoise_lib.models.blindspot.BlindSpotUNet`,
    which differ only in the convolution and pooling layers plugged in and in the
    widths of DEC_CONV1A/B (Lehtinen et al. 2018, Table 2; Laine et al. 2019, §4).

    Args:
        in_channels: C of the input.
        features: encoder width f (48 in the paper); decoder convolutions use 2f.
        depth: number of 2×2 poolings (5 in the paper).
        dec1: output widths of DEC_CONV1A and DEC_CONV1B ((64, 32) in N2N, (96, 96)
            in Laine et al.).
        conv: factory ``conv(cin, cout)`` of the 3×3 convolutions.
        pool: the 2×2 down-sampling module (default ``nn.MaxPool2d(kernel_size=2)``).

    :meth:`body` takes an input whose sides are multiples of ``2**depth`` (no padding
    here) and returns ``(N, dec1[-1], H, W)``.
    """

    def __init__(self, in_channels: int, features: int, depth: int, dec1: tuple[int, int] = (64, 32),
                 conv=conv3x3, pool: nn.Module | None = None):
        super().__init__()
        if in_channels < 1 or depth < 1 or features < 1:
            raise ValueError("in_channels, out_channels, features and depth must be positive")
        self.in_channels, self.depth = in_channels, depth
        f, d = features, 2 * features
        self.enc0 = _Block(in_channels, f, f, conv=conv)               # ENC_CONV0, ENC_CONV1
        self.enc = nn.ModuleList([_Block(f, f, conv=conv) for _ in range(depth)])  # ENC_CONV2..6
        self.pool = pool if pool is not None else nn.MaxPool2d(kernel_size=2)
        # decoder level k (deepest first): input = upsampled + skip
        dec = []
        for k in range(depth - 1):
            cin = (f if k == 0 else d) + f
            dec.append(_Block(cin, d, d, conv=conv))                   # DEC_CONVkA, DEC_CONVkB
        self.dec = nn.ModuleList(dec)
        self.dec1 = _Block((f if depth == 1 else d) + in_channels, *dec1, conv=conv)  # DEC_CONV1A, 1B

    def body(self, xp: torch.Tensor) -> torch.Tensor:
        """Encoder and decoder on an input whose sides are multiples of ``2**depth``."""
        skips = [xp]
        h = self.pool(self.enc0(xp))
        for i, block in enumerate(self.enc):
            if i < self.depth - 1:
                skips.append(h)
                h = self.pool(block(h))
            else:
                h = block(h)
        for block in self.dec:
            h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1))
        h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        return self.dec1(torch.cat([h, skips.pop()], dim=1))


class UNet(UNetBody):
    """Noise2Noise U-Net (Lehtinen et al. 2018, Table 2), any input size, 1 or 3 channels.

    Args:
        in_channels: C of the input (1 gray, 3 RGB; other positive values are allowed,
            e.g. an extra noise-level map).
        out_channels: channels of the output (default: ``in_channels``).
        features: width of the encoder (48 in the paper); the decoder uses 2×.
        depth: number of 2×2 poolings (5 in the paper; inputs are padded to 2**depth).
        residual: if True the network predicts a correction added to the input
            (needs ``out_channels == in_channels``); the paper's network is plain
            (False), which is the default.

    Shapes:
        input ``(N, in_channels, H, W)`` float32, any H, W ≥ 1;
        output ``(N, out_channels, H, W)`` float32.

    Raises:
        ValueError: on wrong input rank or channel count (message names the shapes).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, features: int = 48,
                 depth: int = 5, residual: bool = False):
        out_channels = in_channels if out_channels is None else out_channels
        if out_channels < 1:
            raise ValueError("in_channels, out_channels, features and depth must be positive")
        if residual and out_channels != in_channels:
            raise ValueError("a residual U-Net needs out_channels == in_channels")
        super().__init__(in_channels, features, depth, dec1=(64, 32))
        self.out_channels, self.residual = out_channels, residual
        self.head = nn.Conv2d(in_channels=32, out_channels=out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        xp, size = reflect_pad(x, 2 ** self.depth)
        out = crop_to(self.head(self.body(xp)), size)
        return out + x if self.residual else out
