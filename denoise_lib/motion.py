"""Motion: warping images by displacement fields, and moving noisy sequences made from still images.

Self2Align (Wang 2022) trains a denoiser on pairs of noisy frames of a *moving* scene.
No such video data ships with the course, so this module simulates it: a still clean
image is the reference frame, and each further frame is the same image moved by a
random global shift, a small rotation and a smooth local (elastic) deformation, with
**independent** noise drawn on every frame.

Conventions used everywhere in this module (and by :mod:`denoise_lib.models.align`):

* A **flow** is a float32 tensor of shape ``(N, 2, H, W)`` in **pixels**. Channel 0
  is the horizontal component ``u`` (along the width, positive to the right), channel
  1 the vertical component ``v`` (along the height, positive downwards).
* :func:`warp` is a **backward** warp: ``warp(image, flow)[n, c, i, j] =
  image[n, c, i + v[n, i, j], j + u[n, i, j]]``, interpolated between pixel centres
  (pixel ``(i, j)`` sits at integer coordinates; ``align_corners=True`` in
  :func:`torch.nn.functional.grid_sample`). A constant flow ``(u, v) = (2, -1)``
  moves the content 2 pixels to the left and 1 pixel down.
* Ground-truth flows of :func:`moving_sequence` satisfy ``clean[t] ≈ warp(clean[0],
  flows[t])`` (exactly away from the borders, up to interpolation): frame ``t``
  shows at pixel ``p`` the scene point that the reference shows at ``p + flow_t(p)``.
  Aligning frame ``t`` back onto the reference needs the *inverse* field ``g`` with
  ``p + g(p) + flow_t(p + g(p)) = p`` — for a pure shift simply ``-flow_t``.

Functions:

* :func:`warp`, :func:`valid_mask` — the warp and where it samples inside the image;
* :func:`gaussian_smooth` — a separable, differentiable Gaussian filter;
* :func:`global_shift` — a classical integer-translation registration (exhaustive search);
* :func:`random_flow` — a random displacement field (shift + rotation + elastic);
* :func:`move` — a clean image moved by a flow, with real (mirrored) content
  entering at the borders instead of padding values;
* :func:`moving_sequence` — a noisy sequence with its clean frames and flows;
* :func:`misaligned_pairs` — the training set of Self2Align (and of "Noise2Noise on
  raw misaligned pairs"), of kind ``"pairs"``, holding no clean image;
* :func:`mismatch` — ε, the mean squared difference of two clean images.

**Default motion** (:data:`DEFAULT_MOTION`): a uniform shift of at most 3 px along
each axis, a rotation of at most 1° about the image centre (at most 2.2 px at the
corners of a 180×180 BSD400 image, 5 px at those of a 481×321 BSD68 image), and an
elastic field of about 1 px rms per component, smooth on a scale of 24 px.
Consecutive frames of a hand-held 25–30 fps video move by about this much; the values
were fixed from that, not tuned on any test result. (An earlier default of 2° was
lowered to 1° because it moves the corners of a 481×321 image by up to 10 px, more
than neighbouring frames move; the reason is the displacement, not a denoising score.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .image import ImageError, as_image

__all__ = ["warp", "valid_mask", "gaussian_smooth", "global_shift", "random_flow", "move", "MovingSequence",
           "moving_sequence", "misaligned_pairs", "mismatch", "DEFAULT_MOTION"]

#: Default motion between two neighbouring frames (see the module docstring).
DEFAULT_MOTION = dict(max_shift=3.0, max_rotation=1.0, elastic_amplitude=1.0, elastic_scale=24.0)

_PADDING = ("border", "zeros", "reflection")
_MODES = ("bilinear", "bicubic", "nearest")


def _check_flow(image: torch.Tensor, flow: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ImageError(f"warp expects an (N, C, H, W) image tensor, got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if not isinstance(flow, torch.Tensor) or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"a flow must be an (N, 2, H, W) tensor of displacements in pixels, got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    if flow.shape[0] not in (1, image.shape[0]) or flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow of shape {tuple(flow.shape)} does not fit an image of shape "
                         f"{tuple(image.shape)} (needs (N or 1, 2, H, W) with the image's H, W)")
    if not image.is_floating_point() or not flow.is_floating_point():
        raise ValueError("warp needs floating-point image and flow tensors")


def _sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """Pixel displacements → the normalised (x, y) sampling grid of ``grid_sample`` (N, H, W, 2)."""
    n, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    # align_corners=True: pixel 0 ↦ −1, pixel W−1 ↦ +1 (a 1-pixel axis maps to 0)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - (1.0 if w > 1 else 0.0)
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - (1.0 if h > 1 else 0.0)
    return torch.stack((gx, gy), dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor, *, mode: str = "bilinear",
         padding: str = "border") -> torch.Tensor:
    """Backward-warp ``image`` by a displacement field (differentiable in both arguments).

    ``out[n, c, i, j] = image[n, c, i + flow[n, 1, i, j], j + flow[n, 0, i, j]]``,
    interpolated by :func:`torch.nn.functional.grid_sample` (``align_corners=True``:
    pixel centres at integer coordinates, so a zero flow returns the image exactly).

    Args:
        image: (N, C, H, W) float tensor (any range; not clipped).
        flow: (N, 2, H, W) or (1, 2, H, W) float tensor of displacements **in pixels**;
            channel 0 horizontal (+ right), channel 1 vertical (+ down).
        mode: ``"bilinear"`` (default), ``"bicubic"`` (sharper; may overshoot the
            input range) or ``"nearest"``.
        padding: what a sample point outside the image reads: ``"border"`` (default:
            the nearest edge pixel, i.e. the edge is replicated), ``"zeros"`` or
            ``"reflection"``. Use :func:`valid_mask` to find those pixels.

    Returns:
        (N, C, H, W) tensor, same dtype and device as ``image``.

    Raises:
        ImageError: ``image`` is not a 4-d tensor. ValueError: flow shape mismatch,
        integer tensors, unknown ``mode`` or ``padding``.
    """
    _check_flow(image, flow)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if padding not in _PADDING:
        raise ValueError(f"padding must be one of {', '.join(_PADDING)}, got {padding!r}")
    flow = flow.to(image.dtype).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, _sample_grid(flow), mode=mode, padding_mode=padding, align_corners=True)


def gaussian_smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of standard deviation ``sigma`` pixels (reflect borders), differentiable.

    Args:
        x: (N, C, H, W) float tensor.
        sigma: ≥ 0; 0 returns ``x``. The kernel has radius ``ceil(3σ)`` (clipped to the image).

    Raises:
        ValueError: negative or non-finite ``sigma``, wrong rank.
    """
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number ≥ 0, got {sigma!r}")
    if x.ndim != 4:
        raise ValueError(f"gaussian_smooth expects (N, C, H, W), got {tuple(x.shape)}")
    if sigma == 0:
        return x
    n, c, h, w = x.shape
    r = int(math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = x.reshape(n * c, 1, h, w)
    rh, rw = min(r, h - 1), min(r, w - 1)
    if rw > 0:
        kw = k[r - rw:r + rw + 1]
        y = F.conv2d(F.pad(y, (rw, rw, 0, 0), mode="reflect"), (kw / kw.sum()).view(1, 1, 1, -1))
    if rh > 0:
        kh = k[r - rh:r + rh + 1]
        y = F.conv2d(F.pad(y, (0, 0, rh, rh), mode="reflect"), (kh / kh.sum()).view(1, 1, -1, 1))
    return y.reshape(n, c, h, w)


def global_shift(reference: torch.Tensor, moving: torch.Tensor, *, max_shift: int = 16,
                 smoothing: float = 1.0) -> torch.Tensor:
    """The integer translation that best aligns ``moving`` onto ``reference`` (exhaustive search).

    A classical global registration, for bringing large displacements within reach of
    the alignment network: minimises the mean squared difference of the two frames
    (Gaussian-smoothed by ``smoothing`` pixels, which suppresses noise) over the
    interior that every candidate shift ``|dx|, |dy| ≤ max_shift`` keeps inside both
    frames.

    Args:
        reference, moving: (1, C, H, W) float tensors (noisy frames are fine), with
            ``H, W > 2·max_shift``.
        max_shift: largest shift tried along each axis, in pixels (≥ 0).
        smoothing: σ of the Gaussian pre-smoothing in pixels (≥ 0).

    Returns:
        (1, 2, H, W) constant flow ``(dx, dy)`` with ``warp(moving, flow) ≈ reference``
        (convention of :func:`warp`).

    Raises:
        ValueError: shapes differ, a batch of more than one, or frames too small.
    """
    if reference.shape != moving.shape or reference.ndim != 4 or reference.shape[0] != 1:
        raise ValueError(f"global_shift needs two (1, C, H, W) frames of the same shape, got "
                         f"{tuple(reference.shape)} and {tuple(moving.shape)}")
    m = int(max_shift)
    h, w = reference.shape[-2:]
    if m < 0 or h <= 2 * m or w <= 2 * m:
        raise ValueError(f"max_shift must be ≥ 0 and < half the frame size, got {max_shift} for {h}×{w}")
    a = gaussian_smooth(reference, smoothing)
    b = gaussian_smooth(moving, smoothing)
    core = a[..., m:h - m, m:w - m]
    best = None
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            cost = float(((core - b[..., m + dy:h - m + dy, m + dx:w - m + dx]) ** 2).mean())
            if best is None or cost < best[0]:
                best = (cost, dx, dy)
    flow = torch.zeros((1, 2, h, w), dtype=reference.dtype, device=reference.device)
    flow[:, 0], flow[:, 1] = float(best[1]), float(best[2])
    return flow


def valid_mask(flow: torch.Tensor) -> torch.Tensor:
    """Where a warp by ``flow`` samples inside the image: (N, 1, H, W) bool.

    Pixel ``(i, j)`` is valid when ``0 ≤ i + v ≤ H − 1`` and ``0 ≤ j + u ≤ W − 1``
    (``flow`` as in :func:`warp`); elsewhere the warp reads padding values.
    """
    if not isinstance(flow, torch.Tensor) or flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"a flow must be an (N, 2, H, W) tensor, got "
                         f"{tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__}")
    n, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1) + flow[:, 1]
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w) + flow[:, 0]
    eps = 1e-4
    ok = (ys >= -eps) & (ys <= h - 1 + eps) & (xs >= -eps) & (xs <= w - 1 + eps)
    return ok[:, None]


def _check_motion(max_shift, max_rotation, elastic_amplitude, elastic_scale) -> None:
    for name, v in (("max_shift", max_shift), ("max_rotation", max_rotation),
                    ("elastic_amplitude", elastic_amplitude)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {v!r}")
    if not (isinstance(elastic_scale, (int, float)) and math.isfinite(elastic_scale) and elastic_scale >= 1):
        raise ValueError(f"elastic_scale must be a finite number ≥ 1 (pixels), got {elastic_scale!r}")


def random_flow(height: int, width: int, *, generator: torch.Generator | None = None,
                max_shift: float = DEFAULT_MOTION["max_shift"],
                max_rotation: float = DEFAULT_MOTION["max_rotation"],
                elastic_amplitude: float = DEFAULT_MOTION["elastic_amplitude"],
                elastic_scale: float = DEFAULT_MOTION["elastic_scale"]) -> torch.Tensor:
    """A random displacement field: global shift + rotation about the centre + elastic field.

    ``flow(p) = (R_α − I)(p − c) + t + e(p)`` with ``t`` uniform in
    ``[−max_shift, max_shift]²`` (pixels), ``α`` uniform in ``[−max_rotation,
    max_rotation]`` (degrees), ``c`` the image centre, and ``e`` a smooth field: i.i.d.
    ``N(0, elastic_amplitude²)`` values on a grid of spacing ``elastic_scale`` pixels,
    interpolated bicubically to every pixel (so ``e`` has about ``elastic_amplitude``
    pixels rms per component and varies on the scale ``elastic_scale``).

    Args:
        height, width: size of the field (≥ 1).
        generator: the source of randomness (CPU ``torch.Generator``); None uses the
            global RNG.
        max_shift, max_rotation, elastic_amplitude: ≥ 0; ``elastic_scale`` ≥ 1.

    Returns:
        (1, 2, H, W) float32 flow in pixels (convention of :func:`warp`).

    Raises:
        ValueError: a non-positive size or a bad motion parameter.
    """
    _check_motion(max_shift, max_rotation, elastic_amplitude, elastic_scale)
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"flow size must be ≥ 1×1, got {height}×{width}")
    h, w = int(height), int(width)
    u = torch.rand(3, generator=generator, dtype=torch.float64)
    tx, ty = (2 * u[:2] - 1) * max_shift
    alpha = math.radians(float(2 * u[2] - 1) * max_rotation)
    ys = torch.arange(h, dtype=torch.float64).view(h, 1) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float64).view(1, w) - (w - 1) / 2
    ca, sa = math.cos(alpha), math.sin(alpha)
    fx = (ca - 1) * xs - sa * ys + tx
    fy = sa * xs + (ca - 1) * ys + ty
    flow = torch.stack((fx.expand(h, w), fy.expand(h, w)))[None]
    gh, gw = math.ceil(h / elastic_scale) + 3, math.ceil(w / elastic_scale) + 3
    coarse = torch.randn((1, 2, gh, gw), generator=generator, dtype=torch.float64) * elastic_amplitude
    if elastic_amplitude > 0:
        # bicubic interpolation of the coarse grid; the fine grid covers the inner part
        # so that the field does not flatten towards the image edges
        fine = F.interpolate(coarse, scale_factor=elastic_scale, mode="bicubic", align_corners=False)
        off = int(round(1.5 * elastic_scale))
        flow = flow + fine[..., off:off + h, off:off + w]
    return flow.float()


def move(clean: torch.Tensor, flow: torch.Tensor, *, margin: int | None = None) -> torch.Tensor:
    """A clean image moved by ``flow``: ``warp`` with image content entering at the borders.

    The image is reflect-padded by ``margin`` pixels, warped bicubically (the sharpest
    interpolation ``grid_sample`` offers, so the moved frame is not blurred more than
    necessary) and cropped back, so that content which moves in from outside the
    frame is mirrored image content, not a replicated edge. The result is clipped to
    [0, 1] (bicubic interpolation overshoots slightly at edges).

    Args:
        clean: (N, C, H, W) float tensor in [0, 1].
        flow: (N or 1, 2, H, W) flow in pixels (:func:`warp` convention).
        margin: padding in pixels; default ``ceil(max |flow|) + 2``, at most
            ``min(H, W) − 1`` (a reflection cannot be wider than the image).

    Returns:
        (N, C, H, W) float tensor in [0, 1].
    """
    _check_flow(clean, flow)
    h, w = clean.shape[-2:]
    if margin is None:
        margin = int(math.ceil(float(flow.abs().max()))) + 2
    margin = max(0, min(int(margin), h - 1, w - 1))
    if margin == 0:
        return warp(clean, flow, mode="bicubic").clamp(0, 1)
    padded = F.pad(clean, (margin,) * 4, mode="reflect")
    fpad = F.pad(flow.to(clean.dtype), (margin,) * 4, mode="replicate")
    out = warp(padded, fpad.expand(clean.shape[0], -1, -1, -1), mode="bicubic")
    return out[..., margin:margin + h, margin:margin + w].clamp(0, 1)


@dataclass
class MovingSequence:
    """A simulated noisy sequence of a moving scene.

    Attributes:
        noisy: (T, C, H, W) noisy frames; frame 0 is the reference. Noise independent
            per frame, not clipped.
        clean: (T, C, H, W) clean frames (for measurement only; no self-supervised
            method may train on them). ``clean[0]`` is the still image itself.
        flows: (T, 2, H, W) ground-truth flows with ``clean[t] ≈ warp(clean[0], flows[t])``;
            ``flows[0]`` is zero.
    """

    noisy: torch.Tensor
    clean: torch.Tensor
    flows: torch.Tensor


def moving_sequence(image, noise, *, frames: int = 2, generator: torch.Generator | None = None,
                    seed: int | None = None, **motion) -> MovingSequence:
    """Simulate ``frames`` noisy frames of a moving scene from one still clean image.

    Frame 0 is the still image; frame ``t ≥ 1`` is :func:`move` of it by an
    independent :func:`random_flow` (each frame moves relative to the reference by the
    default motion of neighbouring frames). Noise is drawn independently for every
    frame from the same generator, after all the motion.

    Args:
        image: one clean image, anything :func:`denoise_lib.image.as_image` accepts
            (values in [0, 1]; a batch of one).
        noise: a :class:`~denoise_lib.noise.NoiseModel` or a spec such as ``"gaussian:25"``.
        frames: number of frames T ≥ 2.
        generator: CPU ``torch.Generator``; or ``seed`` to make one (exactly one of the
            two may be given; with neither, the global RNG is used).
        **motion: ``max_shift``, ``max_rotation``, ``elastic_amplitude``,
            ``elastic_scale`` of :func:`random_flow`.

    Returns:
        :class:`MovingSequence` (all CPU float32).

    Raises:
        ImageError: bad image or a batch of more than one. ValueError: ``frames < 2``,
        both ``generator`` and ``seed``, unknown or bad motion arguments.
    """
    from .noise import parse_noise

    x = as_image(image).cpu()
    if x.shape[0] != 1:
        raise ImageError(f"moving_sequence takes one image, got a batch of {x.shape[0]}")
    if not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an integer ≥ 2, got {frames!r}")
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    _check_kwargs(motion)
    model = parse_noise(noise)
    g = torch.Generator().manual_seed(int(seed)) if seed is not None else generator
    h, w = x.shape[-2:]
    flows = [torch.zeros((1, 2, h, w))] + [random_flow(h, w, generator=g, **motion) for _ in range(frames - 1)]
    clean = torch.cat([x] + [move(x, f) for f in flows[1:]])
    noisy = torch.cat([model(clean[t:t + 1], g) for t in range(frames)])
    return MovingSequence(noisy=noisy, clean=clean, flows=torch.cat(flows))


def _check_kwargs(motion: dict) -> None:
    unknown = set(motion) - set(DEFAULT_MOTION)
    if unknown:
        raise ValueError(f"unknown motion argument(s) {sorted(unknown)}; known: {', '.join(DEFAULT_MOTION)}")


def _motion_generator(seed: int, index: int) -> torch.Generator:
    # distinct from denoise_lib.data's noise generators (seed·1_000_003 + index)
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + index + 500_000_001)


def misaligned_pairs(images, noise, *, seed: int = 0, return_clean: bool = False, **motion):
    """The Self2Align training set: pairs of noisy frames of moving scenes (kind ``"pairs"``).

    For each clean still image ``x_i``: a random flow (:func:`random_flow`, generator
    seeded by ``(seed, i)``) moves it to ``x_i' = move(x_i, flow_i)``; the pair is the
    noisy reference ``y_i = x_i + n_i`` and the noisy moving frame ``z_i = x_i' + n_i'``
    with independent noise. The noise is drawn exactly as
    :meth:`denoise_lib.data.TrainingSet.from_clean` draws it for the same ``seed``
    (reference: ``add_noise(…, seed=2·seed)``, second frame: ``seed=2·seed + 1``), so
    the reference frames are the very noisy images every other learned method trains
    on, and Gaussian second frames carry the same noise fields as Noise2Noise's
    second draws: the only difference from Noise2Noise's pairs is the motion.

    Built with :meth:`TrainingSet.from_noisy(reference, moving)
    <denoise_lib.data.TrainingSet.from_noisy>`; it holds **no clean image**. Its
    ``noise`` attribute records the noise model.

    Args:
        images: list of (1, C, H, W) clean images in [0, 1] (sizes may differ; anything
            :func:`~denoise_lib.image.as_image` accepts per item).
        noise: a :class:`~denoise_lib.noise.NoiseModel` or spec string.
        seed: seeds the motion and the noise.
        return_clean: also return the clean moving frames and the flows (for
            measurements such as :func:`mismatch`; never for training).
        **motion: ``max_shift``, ``max_rotation``, ``elastic_amplitude``,
            ``elastic_scale`` (defaults :data:`DEFAULT_MOTION`).

    Returns:
        :class:`~denoise_lib.data.TrainingSet` of kind ``"pairs"`` (``noisy`` =
        reference frames, ``target`` = moving frames); with ``return_clean``, the
        tuple ``(set, moved_clean_list, flow_list)``.

    Raises:
        ValueError: empty list or bad motion arguments. ImageError: a bad image.
    """
    from .data import TrainingSet, add_noise
    from .noise import parse_noise

    if isinstance(images, torch.Tensor):
        images = [images[i:i + 1] for i in range(images.shape[0])] if images.ndim == 4 else [images]
    images = [as_image(x).cpu() for x in images]
    if not images:
        raise ValueError("misaligned_pairs needs at least one image")
    _check_kwargs(motion)
    model = parse_noise(noise)
    flows, moved = [], []
    for i, x in enumerate(images):
        flow = random_flow(*x.shape[-2:], generator=_motion_generator(seed, i), **motion)
        flows.append(flow)
        moved.append(move(x, flow))
    ref = add_noise(images, model, seed=2 * seed)
    mov = add_noise(moved, model, seed=2 * seed + 1)
    pairs = TrainingSet.from_noisy(ref, mov)
    pairs.noise = model
    return (pairs, moved, flows) if return_clean else pairs


def mismatch(a: torch.Tensor, b: torch.Tensor, *, mask: torch.Tensor | None = None,
             border: int = 0) -> float:
    """ε of two clean images: the mean squared difference per entry, over a valid region.

    ``mismatch(a, b) = (1/|Ω|·C) Σ_{p∈Ω} Σ_c (a[c, p] − b[c, p])²`` summed over the batch,
    where Ω is the set of pixels at least ``border`` pixels from every edge and inside
    ``mask`` (when given). With ``a = x`` the reference and ``b = x + ε`` the (aligned)
    moving clean frame it is ``‖ε‖²/d`` over Ω, the quantity that enters Self2Align's
    Eq. (3)–(4) (book, Part 6). Exclude warped-in borders with ``border`` (e.g. the
    largest displacement) or with ``mask = valid_mask(flow)`` of an alignment.

    Args:
        a, b: (N, C, H, W) float tensors of the same shape (clean images, [0, 1] units).
        mask: optional (N or 1, 1, H, W) bool tensor of pixels to include.
        border: width in pixels excluded at each edge (≥ 0).

    Returns:
        float (squared [0, 1] units).

    Raises:
        ValueError: shape mismatch, negative border, or an empty region.
    """
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"mismatch needs two (N, C, H, W) tensors of the same shape, got "
                         f"{getattr(a, 'shape', type(a))} and {getattr(b, 'shape', type(b))}")
    if int(border) < 0:
        raise ValueError(f"border must be ≥ 0, got {border}")
    n, c, h, w = a.shape
    keep = torch.zeros((1, 1, h, w), dtype=torch.bool, device=a.device)
    keep[..., border:h - border, border:w - border] = True
    keep = keep.expand(n, 1, h, w)
    if mask is not None:
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != (h, w):
            raise ValueError(f"mask must be (N or 1, 1, H, W) = (…, 1, {h}, {w}), got {tuple(mask.shape)}")
        keep = keep & mask.to(torch.bool).to(a.device)
    count = int(keep.sum()) * c
    if count == 0:
        raise ValueError("mismatch: the region is empty (border too wide or mask all False)")
    d2 = (a.double() - b.double()) ** 2
    return float((d2 * keep).sum() / count)
