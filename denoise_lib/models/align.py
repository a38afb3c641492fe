"""An image alignment network in the spirit of Self2Align's IAN (Wang 2022, Sec. 4.1, Fig. 3).

The network takes a reference frame and a moving frame (both noisy), predicts a
2-channel displacement field in pixels, and warps the moving frame onto the reference
with ``grid_sample`` (:func:`denoise_lib.ops.warp`; the flow convention is there:
channel 0 horizontal, channel 1 vertical, ``aligned(p) = moving(p + flow(p))``).

Layout (C image channels; widths for the defaults ``features=16``, ``radius=3``,
``window=5``, ``width=32``, ``levels=3``)::

    features   shared by both frames: 3×3 conv (C→16) + LReLU,            (H/2 × W/2, 16 ch)
               4×4 conv stride 2 (→16) + LReLU, 3×3 conv (→16) + LReLU
    attention  local cross-attention (a cost volume read as attention): for every
               reference feature q(p) and every offset d with |d_x|, |d_y| ≤ r
               (half-resolution pixels, K = (2r+1)² = 49 offsets), the matching score
               s_d(p) = −β · mean over a 5×5 window of ‖q − k(· + d)‖²/D (block matching
               on learned features; β = 100·e^b, b learned, init 0); weights
               a = softmax_d(s) and the attention flow Σ_d a_d · d (a soft arg-max)
    CBAM       channel + spatial attention (Woo et al. 2018) on [scores, q, attention flow]
    enc–dec    3×3 conv (→32) + LReLU; levels × [4×4 conv stride 2 (32) + LReLU] (the
               paper's encoder blocks); decoder per level: 3×3 conv + LReLU, ×2 bilinear
               up-sampling, skip concatenation, 3×3 conv + LReLU; tail 3×3 conv (→16) + LReLU
    flow       half-resolution flow = γ · attention flow + head(tail), with the gate
               γ = 10·g (g a scalar) and the 3×3 head (16→2) both **zero-initialised**;
               ×2 bilinear up-sampling, values converted to full-resolution pixels.

At initialisation the flow is exactly zero (identity warp). Training (Self2Align's L2
alignment loss between the warped moving frame and the reference, noisy frames only)
opens the gate and learns the features and the residual flow. Displacements up to
about ``2·radius`` = 6 pixels are reached by the attention directly; the
encoder–decoder can add to them.

Relation to the paper's IAN: kept are an attention block (the paper's CBAM, here
applied after the cross-attention), an encoder of 4×4 stride-2 convolutions with 32
channels and LReLU, a decoder of 3×3 convolutions, ×2 up-sampling and skip
connections, a decreasing tail, a two-channel flow and grid sampling. Changed: the
paper stacks the frames at the input and leaves the network to discover the
displacement, with ten decoder blocks; here the block-matching attention supplies the
displacement directly, so that a small network learns to align within a few hundred
training steps on a CPU.

Inputs of any size work: they are reflect-padded to a multiple of ``2**(levels+1)``
and the flow is cropped back (:func:`denoise_lib.image.reflect_pad`, ``crop_to``).
"""
from __future__ import annotations

import torch
from torch import nn

from ..image import crop_to, reflect_pad
from ..ops import warp

__all__ = ["AlignNet", "CBAM", "local_attention"]


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


def _conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels=cin, out_channels=cout, kernel_size=3, stride=1, padding=1)


def _down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels=cin, out_channels=cout, kernel_size=4, stride=2, padding=1)


class CBAM(nn.Module):
    """Convolutional block attention module (Woo et al. 2018): channel then spatial attention.

    Channel attention: ``x · σ(MLP(avgpool x) + MLP(maxpool x))`` (shared 2-layer MLP);
    spatial attention: ``x · σ(conv7×7([mean_c x, max_c x]))``.

    Args:
        channels: C of the input.
        hidden: width of the MLP (default ``max(channels // 8, 4)``).

    Shapes: (N, C, H, W) → (N, C, H, W).
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(channels // 8, 4)
        self.mlp = nn.Sequential(nn.Conv2d(in_channels=channels, out_channels=hidden, kernel_size=1),
                                 nn.ReLU(inplace=True),
                                 nn.Conv2d(in_channels=hidden, out_channels=channels, kernel_size=1))
        self.spatial = nn.Conv2d(in_channels=2, out_channels=1, kernel_size=7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.mlp(x.mean(dim=(2, 3), keepdim=True)) + self.mlp(x.amax(dim=(2, 3), keepdim=True))
        x = x * torch.sigmoid(a)
        s = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(s))


def local_attention(query: torch.Tensor, key: torch.Tensor, radius: int,
                    beta: torch.Tensor | float = 1.0, window: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Local cross-attention of ``query`` over ``key`` shifted by every offset within ``radius``.

    The score of offset ``d`` at position ``p`` is a block-matching cost,
    ``s_d(p) = −β · mean_{p' in window(p)} ‖q(p') − k(p' + d)‖² / D``, and the attention
    flow is the expected offset ``Σ_d softmax_d(s)(p) · d`` (a soft arg-max). With the
    convention of :func:`denoise_lib.ops.warp`, ``warp(key, flow) ≈ query``.

    Args:
        query, key: (N, D, h, w) feature maps.
        radius: r ≥ 1; offsets ``d = (dx, dy)`` with ``|dx|, |dy| ≤ r`` (K = (2r+1)²),
            ordered row-major (dy outer, dx inner). Keys outside the map are zero.
        beta: inverse temperature (float or scalar tensor, > 0).
        window: odd side of the averaging window of the cost (1: per position).

    Returns:
        ``(scores, flow)``: scores (N, K, h, w) and the flow (N, 2, h, w) as (dx, dy) in
        feature-map pixels.
    """
    n, d, h, w = query.shape
    k = 2 * radius + 1
    padded = nn.functional.pad(key, (radius,) * 4)
    # one product per offset: cheaper in time and memory than unfolding D·K channels
    scores = torch.stack([-((query - padded[:, :, i:i + h, j:j + w]) ** 2).mean(1)
                          for i in range(k) for j in range(k)], dim=1)              # (N, K, h, w)
    if window > 1:  # aggregate the matching cost over a window (block matching)
        scores = nn.functional.avg_pool2d(scores, kernel_size=window, stride=1, padding=window // 2,
                                          count_include_pad=False)
    scores = scores * beta
    weights = torch.softmax(scores, dim=1)
    offs = torch.arange(-radius, radius + 1, dtype=query.dtype, device=query.device)
    dy, dx = torch.meshgrid(offs, offs, indexing="ij")
    flow = torch.stack([(weights * dx.reshape(1, -1, 1, 1)).sum(1),
                        (weights * dy.reshape(1, -1, 1, 1)).sum(1)], dim=1)
    return scores, flow


class AlignNet(nn.Module):
    """Alignment network: (reference, moving) noisy frames → (moving warped onto reference, flow).

    Args:
        channels: C of each frame (1 gray, 3 RGB).
        features: width D of the shared feature extractor (16).
        radius: attention radius in half-resolution pixels (3: offsets up to 6 px).
        width: width of the encoder–decoder (32, as the paper's encoder).
        levels: stride-2 convolutions of the encoder (3: down to H/16 overall).
        attention: apply the CBAM block before the encoder–decoder.
        mode: interpolation of the warp in :meth:`forward` (``"bilinear"`` or ``"bicubic"``).
        window: side of the window over which the matching cost is averaged (odd, 5).
        beta: initial inverse temperature of the attention (100; learned on a log scale).

    Shapes:
        ``forward(reference, moving)``: two (N, C, H, W) float tensors, any H, W ≥ 1;
        returns ``(aligned, flow)``: (N, C, H, W) and (N, 2, H, W), flow in pixels with
        ``aligned = ops.warp(moving, flow, mode=mode)`` (border padding).

    Raises:
        ValueError: bad settings; wrong rank or channel count, or frames of different shapes.
    """

    def __init__(self, channels: int = 1, features: int = 16, radius: int = 3, width: int = 32,
                 levels: int = 3, attention: bool = True, mode: str = "bilinear", window: int = 5,
                 beta: float = 100.0):
        super().__init__()
        if min(channels, features, radius, width, levels) < 1:
            raise ValueError("channels, features, radius, width and levels must be positive")
        if mode not in ("bilinear", "bicubic"):
            raise ValueError(f"mode must be 'bilinear' or 'bicubic', got {mode!r}")
        self.in_channels, self.radius, self.levels, self.mode = channels, radius, levels, mode
        if window < 1 or window % 2 == 0 or not beta > 0:
            raise ValueError(f"window must be odd and ≥ 1 and beta > 0, got {window}, {beta}")
        self.window, self.beta0 = window, float(beta)
        self.features = nn.Sequential(_conv3(channels, 16), _act(), _down(16, features), _act(),
                                      _conv3(features, features), _act())
        cin = (2 * radius + 1) ** 2 + features + 2
        self.cbam = CBAM(cin) if attention else nn.Identity()
        self.inp = nn.Sequential(_conv3(cin, width), _act())
        self.enc = nn.ModuleList([nn.Sequential(_down(width, width), _act()) for _ in range(levels)])
        self.pre = nn.ModuleList([nn.Sequential(_conv3(width, width), _act()) for _ in range(levels)])
        self.post = nn.ModuleList([nn.Sequential(_conv3(2 * width, width), _act()) for _ in range(levels)])
        self.tail = nn.Sequential(_conv3(width, 16), _act())
        self.flow_head = _conv3(16, 2)
        nn.init.zeros_(self.flow_head.weight)
        nn.init.zeros_(self.flow_head.bias)
        self.gate = nn.Parameter(torch.zeros(()))
        self.log_beta = nn.Parameter(torch.zeros(()))

    #: the gate is ``GATE_SCALE · gate``: a 10× larger effective Adam step, so that the
    #: attention flow is switched on within tens of steps rather than ~1/lr steps.
    GATE_SCALE = 10.0

    def _check(self, reference: torch.Tensor, moving: torch.Tensor) -> None:
        for name, t in (("reference", reference), ("moving", moving)):
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != self.in_channels:
                raise ValueError(f"AlignNet expects (N, {self.in_channels}, H, W) frames; {name} has shape "
                                 f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        if reference.shape != moving.shape:
            raise ValueError(f"reference {tuple(reference.shape)} and moving {tuple(moving.shape)} "
                             "frames must have the same shape")

    def flow(self, reference: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        """The (N, 2, H, W) flow, in pixels, that aligns ``moving`` onto ``reference``."""
        self._check(reference, moving)
        n = reference.shape[0]
        both, size = reflect_pad(torch.cat([reference, moving], dim=0), 2 ** (self.levels + 1))
        feats = self.features(both)
        q, k = feats[:n], feats[n:]
        scores, att_flow = local_attention(q, k, self.radius, self.beta0 * self.log_beta.exp(), self.window)
        h = self.inp(self.cbam(torch.cat([scores, q, att_flow], dim=1)))
        skips = []
        for block in self.enc:
            skips.append(h)
            h = block(h)
        for pre, post in zip(self.pre, self.post):
            h = nn.functional.interpolate(pre(h), scale_factor=2, mode="bilinear", align_corners=False)
            h = post(torch.cat([h, skips.pop()], dim=1))
        half = self.GATE_SCALE * self.gate * att_flow + self.flow_head(self.tail(h))        # half-resolution pixels
        flow = 2.0 * nn.functional.interpolate(half, scale_factor=2, mode="bilinear", align_corners=False)
        return crop_to(flow, size)

    def forward(self, reference: torch.Tensor, moving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flow = self.flow(reference, moving)
        return warp(moving, flow, mode=self.mode), flow
