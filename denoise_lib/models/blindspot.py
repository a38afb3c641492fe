"""The blind-spot U-Net of Laine et al. (2019), "Improved self-supervised deep image denoising".

The output at a pixel ``p`` is a function of every input pixel **except** ``p``
(all channels of ``p`` are excluded), so a network trained to predict its own noisy
input cannot learn the identity (book, Part 3, "Blind-spot networks"). Construction
(paper §2, Fig. 1, and §4):

1. **Four rotations, one branch.** The input is rotated by 0°, 90°, 180° and 270°
   and the four copies are stacked on the **batch** axis, so one network (one set
   of weights) plays the four branches of Fig. 1.
2. **Upward-only receptive field.** The branch is the Noise2Noise U-Net
   (:class:`~denoise_lib.models.unet.UNetBody`) with every 3×3 convolution replaced
   by :class:`ShiftedConv2d` and every 2×2 max-pool by :class:`ShiftedMaxPool2d`;
   nearest up-sampling and the skip connections (concatenations) do not extend the
   receptive field and stay as they are. DEC_CONV1A/B output 96 channels (2f) and
   DEC_CONV1C is removed (§4). The receptive field of branch output ``(i, j)`` is
   then contained in the rows ``≤ i`` (the upper half-plane **including** row i).
3. **One more row.** The branch output is shifted down by one row (one zero row on
   top, bottom row dropped): output ``(i, j)`` now sees rows ``≤ i − 1`` only, so
   not ``(i, j)`` itself.
4. **Counter-rotate and combine.** Each branch is rotated back, the four are
   concatenated on the channel axis (4 × 2f = 384 for f = 48), and three 1×1
   convolutions 8f → 8f → 2f → ``out_channels`` (384 → 384 → 96 → n; LeakyReLU(0.1)
   after the first two) mix them. Their union covers the whole plane but ``p``.

Padding. Rotation needs a square, and the poolings need sides that are multiples of
``2**depth``: the input is padded at the bottom/right to an ``S × S`` square,
``S = 2**depth · ceil(max(H, W) / 2**depth)``, and the output is cropped back.
The padding is **zeros** by default. Reflection padding cannot be used without breaking
the blind spot: the reflected margin holds copies of the pixels near the bottom and
right edges (0-based row ``H + k`` is a copy of row ``H − 2 − k``), and the output at such a
pixel sees its own copy through the branch looking that way. ``padding="reflect"`` is
available to demonstrate exactly that (tests/test_blindspot.py measures the leak);
pixels farther than ``S − H`` rows and ``S − W`` columns from the bottom/right edge
stay blind either way, and inputs that are already ``S × S`` (training patches of 32,
64, … pixels) are not padded at all.

Receptive field and training patch size. One branch sees up to 13, 31, 71, 151 and 311
rows above its output for depth 1 … 5 (the exact number varies by a few tens of rows with
the position relative to the pooling grid; about half as many columns to each side); the
four branches together see a window about twice that size. When training patches are
much shorter than this, every training pixel sees the zero rows above the patch, and
the network can learn to rely on them: with depth 3 (71 rows) trained on 32² patches
for 250 steps we measured 24.9 dB on 32² crops but 6–8 dB on 64² and larger crops of
the same image, whereas depth 2 (31 rows) on 32² patches and depth 3 on 64² patches
behaved the same at every size. The paper trains its depth-5 network (311 rows) on
256² patches; keep the patch side at least about the branch height.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..image import crop_to, reflect_pad
from .unet import UNetBody

__all__ = ["BlindSpotUNet", "ShiftedConv2d", "ShiftedMaxPool2d", "shift_down", "influence",
           "depth_for_patch", "BRANCH_ROWS"]


#: Rows above its output that one branch sees, for depth 1 … 5 (module docstring).
BRANCH_ROWS = {1: 13, 2: 31, 3: 71, 4: 151, 5: 311}


def depth_for_patch(patch_size: int, max_depth: int = 5) -> int:
    """The deepest blind-spot U-Net whose branch field fits the training patches.

    A branch that sees many more rows than a training patch has learns to use the
    zero rows above the patch, and fails on larger images (module docstring). The
    rule keeps ``BRANCH_ROWS[depth] ≤ 1.25 · patch_size``: depth 2 for 32² patches,
    3 for 64², 4 for 128² and 5 (the paper's network, trained on 256²) from 256² up.

    Raises:
        ValueError: ``patch_size < 11`` (no depth fits) or ``max_depth`` outside 1 … 5.
    """
    if max_depth not in BRANCH_ROWS:
        raise ValueError(f"max_depth must lie in 1 … 5, got {max_depth}")
    fits = [d for d in range(1, max_depth + 1) if BRANCH_ROWS[d] <= 1.25 * patch_size]
    if not fits:
        raise ValueError(f"training patches of {patch_size} px are too small for a blind-spot U-Net")
    return max(fits)


def shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Shift an NCHW tensor down by ``rows``: ``rows`` zero rows on top, as many dropped at the bottom.

    Output row ``i`` holds input row ``i − rows`` (zeros for ``i < rows``); the shape is unchanged.
    Laine et al. (2019) §2 ("offset the feature maps") and Fig. 1 (the final one-pixel offset).
    """
    if rows <= 0:
        return x
    return F.pad(x[..., : x.shape[-2] - rows, :], (0, 0, rows, 0))


class ShiftedConv2d(nn.Conv2d):
    """A stride-1 k×k convolution whose receptive field extends upwards only (current row included).

    Laine et al. (2019) §2, "Convolution layers": zero-pad ``k // 2`` rows at the top,
    convolve with "same" zero padding, crop ``k // 2`` rows at the bottom. This
    implementation does the same in one step — ``2·(k//2)`` zero rows on top, ``k//2``
    zero columns left and right, no bottom padding, a "valid" convolution — which gives
    identical outputs (tests/test_blindspot.py compares the two) and skips the rows
    that would be cropped. Output ``(i, j)`` depends on input rows ``i − 2·(k//2) … i``
    and columns ``j − k//2 … j + k//2``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: odd kernel side k (3 in the paper).
        bias: add a learned bias.

    Shapes: ``(N, in_channels, H, W)`` → ``(N, out_channels, H, W)``, any H, W ≥ 1.

    Raises:
        ValueError: even kernel size (no centre row to align on).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True):
        if kernel_size % 2 != 1:
            raise ValueError(f"a shifted convolution needs an odd kernel size, got {kernel_size}")
        super().__init__(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size,
                         stride=1, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0] // 2
        return super().forward(F.pad(x, (k, k, 2 * k, 0)))


class ShiftedMaxPool2d(nn.Module):
    """2×2 max-pooling whose receptive field extends upwards only.

    Laine et al. (2019) §2, "Downsampling and upsampling layers": pad one zero row at
    the top and drop the bottom row, then pool. Output row ``r`` covers input rows
    ``2r − 1`` and ``2r``; after nearest 2× up-sampling, rows ``2r`` and ``2r + 1`` see
    rows ``2r − 1, 2r`` — never a row below themselves.

    Shapes: ``(N, C, H, W)`` → ``(N, C, H // 2, W // 2)``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(shift_down(x, 1), kernel_size=2)


def _shifted_conv3x3(cin: int, cout: int) -> ShiftedConv2d:
    return ShiftedConv2d(in_channels=cin, out_channels=cout, kernel_size=3, bias=True)


def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels=cin, out_channels=cout, kernel_size=1, stride=1, padding=0, bias=True)


class BlindSpotUNet(UNetBody):
    """Laine et al.'s (2019) blind-spot U-Net: output ``(n, :, i, j)`` never depends on input ``(n, :, i, j)``.

    See the module docstring for the construction (paper §2 and §4).

    Args:
        in_channels: C of the input (1 gray, 3 RGB).
        out_channels: channels of the output (default ``in_channels``); e.g. 9 for the
            mean and covariance factor of an RGB Gaussian (Laine et al. §3).
        features: encoder width f (48 in the paper); the decoder and DEC_CONV1A/B use
            2f (96), the combined branches 8f (384).
        depth: number of 2×2 poolings (5 in the paper).
        padding: ``"zeros"`` (default; exactly blind everywhere) or ``"reflect"``
            (not blind near the bottom/right edges of inputs that need padding; see the
            module docstring).

    Shapes:
        input ``(N, in_channels, H, W)`` float (float32 in the library; float64 works
        for exact gradient checks), any H, W ≥ 1; output ``(N, out_channels, H, W)``
        of the same dtype. Internally the network runs on a ``4N × S × S`` batch
        (``S ≥ max(H, W)``). Cost: 7.2× the multiply-adds of the Noise2Noise U-Net on
        the same square input (f = 48, depth 5: 1.24 M vs 0.17 M per pixel) — four branch
        passes, each 1.5× a U-Net because DEC_CONV1A/B are 96 wide instead of 64/32, plus
        the 384-channel 1×1 layers; a training step measured 6–9× an N2C step on one
        CPU core (tests/test_laine19.py).

    Raises:
        ValueError: non-positive sizes or unknown padding at construction; wrong input
            rank or channel count in :meth:`forward`.

    With f = 48 and depth = 5 the network has 1.27 M parameters for RGB → 9 outputs
    (1,269,129; gray → 2: 1,265,858), of which the three 1×1 layers hold 0.19 M.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, features: int = 48,
                 depth: int = 5, padding: str = "zeros"):
        out_channels = in_channels if out_channels is None else out_channels
        if out_channels < 1:
            raise ValueError("in_channels, out_channels, features and depth must be positive")
        if padding not in ("zeros", "reflect"):
            raise ValueError(f"padding must be 'zeros' or 'reflect', got {padding!r}")
        d = 2 * features
        super().__init__(in_channels, features, depth, dec1=(d, d), conv=_shifted_conv3x3,
                         pool=ShiftedMaxPool2d())
        self.out_channels, self.padding = out_channels, padding
        self.tail = nn.Sequential(                        # Laine et al. §4: 384 → 384 → 96 → n
            _conv1x1(4 * d, 4 * d), nn.LeakyReLU(negative_slope=0.1, inplace=True),
            _conv1x1(4 * d, d), nn.LeakyReLU(negative_slope=0.1, inplace=True),
            _conv1x1(d, out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal weights (std = gain/√fan_in, gain √2; gain 1 for the last layer), zero biases.

        As in the authors' public implementation (NVlabs/selfsupervised-denoising); the
        paper does not state it. Compared with PyTorch's default initialisation it
        trained faster in this library's short CPU budgets (+1.2 dB after 300 steps of
        the L2 variant, features = 16, depth = 2, RGB).
        """
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for m in convs:
            gain = 1.0 if m is convs[-1] else 2 ** 0.5
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            nn.init.normal_(m.weight, mean=0.0, std=gain / fan_in ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def padded_side(self, h: int, w: int) -> int:
        """Side S of the square the network runs on for an ``h × w`` input."""
        m = 2 ** self.depth
        return m * -(-max(h, w) // m)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"BlindSpotUNet expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        s = self.padded_side(h, w)
        if self.padding == "zeros":
            return F.pad(x, (0, s - w, 0, s - h))
        return reflect_pad(x, (s, s))[0]                   # pads H → S and W → S (H, W ≤ S)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """The un-rotated branch alone, after its one-row shift: ``(N, 2f, H, W)`` features.

        Its output at ``(i, j)`` sees input rows ``< i`` only (an upper half-plane); the
        rotated copies in :meth:`forward` provide the other three directions. For
        illustrations and tests (Laine et al. 2019, Fig. 1).
        """
        h, w = x.shape[-2:]
        return crop_to(shift_down(self.body(self._pad(x)), 1), (h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp = self._pad(x)
        n, (h, w) = x.shape[0], x.shape[-2:]
        rotated = torch.cat([torch.rot90(xp, k, dims=(2, 3)) for k in range(4)], dim=0)
        feats = shift_down(self.body(rotated), 1)          # each branch now excludes its centre row
        branches = feats.split(n, dim=0)
        combined = torch.cat([torch.rot90(b, -k, dims=(2, 3)) for k, b in enumerate(branches)], dim=1)
        return crop_to(self.tail(combined), (h, w))


def influence(fn, x: torch.Tensor, pixel: tuple[int, int]) -> torch.Tensor:
    """How strongly each input pixel influences the output at ``pixel``: ``|∂ Σ_c fn(x)[0, c, i, j] / ∂x|``.

    Args:
        fn: a network or any differentiable map ``(1, C, H, W) → (1, K, H, W)`` (e.g. a
            :class:`BlindSpotUNet` or its :meth:`~BlindSpotUNet.branch`).
        x: one input image ``(1, C, H, W)``; use float64 (and a float64 network) when exact
            zeros matter.
        pixel: ``(i, j)``.

    Returns:
        ``(H, W)`` tensor (dtype of ``x``): the absolute gradient summed over the input
        channels. A blind-spot network gives exactly 0 at ``pixel``.

    Raises:
        ValueError: ``x`` is not a single NCHW image or ``pixel`` lies outside it.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"influence takes one image (1, C, H, W), got {tuple(x.shape)}")
    i, j = pixel
    if not (0 <= i < x.shape[-2] and 0 <= j < x.shape[-1]):
        raise ValueError(f"pixel {pixel} is outside the {x.shape[-2]}×{x.shape[-1]} image")
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x)[0, :, i, j].sum(), x)
    return g.abs().sum(1)[0]
