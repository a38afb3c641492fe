"""Simulated moving scenes: random displacement fields, moved images, misaligned noisy pairs.

Self2Align (Wang 2022) trains on pairs of noisy frames of a *moving* scene. No such
video data ship with the course, so they are simulated: a still clean image is the
reference frame, and each further frame is the same image moved by a random global
shift, a small rotation and a smooth local (elastic) deformation, with
**independent** noise drawn on every frame. Flows follow the convention of
:func:`denoise_lib.ops.warp` (pixels; channel 0 horizontal, channel 1 vertical).

Ground-truth flows satisfy ``clean[t] ≈ warp(clean[0], flows[t])`` (exactly away from
the borders, up to interpolation): frame ``t`` shows at pixel ``p`` the scene point
that the reference shows at ``p + flow_t(p)``. Aligning frame ``t`` back onto the
reference needs the inverse field ``g`` with ``p + g(p) + flow_t(p + g(p)) = p`` — for
a pure shift simply ``−flow_t``.

* :func:`random_flow` — a random displacement field (shift + rotation + elastic);
* :func:`move` — a clean image moved by a flow, with mirrored image content entering
  at the borders instead of padding values;
* :func:`moving_sequence` — a noisy sequence with its clean frames and flows;
* :func:`misaligned_pairs` — the Self2Align training set, of kind ``"pairs"``,
  holding no clean image.

**Default motion** (:data:`DEFAULT_MOTION`): a uniform shift of at most 3 px along each
axis, a rotation of at most 1° about the image centre (at most 2.2 px at the corners
of a 180×180 image, 5 px at those of a 481×321 image), and an elastic field of about
1 px rms per component, smooth on a scale of 24 px — about the motion between
consecutive frames of a hand-held 25–30 fps video.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..image import ImageError, as_image
from ..noise import parse_noise
from ..ops import check_flow, warp
from . import TrainingSet, add_noise

__all__ = ["random_flow", "move", "MovingSequence", "moving_sequence", "misaligned_pairs", "DEFAULT_MOTION"]

#: Default motion between two neighbouring frames (see the module docstring).
DEFAULT_MOTION = dict(max_shift=3.0, max_rotation=1.0, elastic_amplitude=1.0, elastic_scale=24.0)


def _check_motion(max_shift, max_rotation, elastic_amplitude, elastic_scale) -> None:
    for name, v in (("max_shift", max_shift), ("max_rotation", max_rotation),
                    ("elastic_amplitude", elastic_amplitude)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {v!r}")
    if not (isinstance(elastic_scale, (int, float)) and math.isfinite(elastic_scale) and elastic_scale >= 1):
        raise ValueError(f"elastic_scale must be a finite number ≥ 1 (pixels), got {elastic_scale!r}")


def _check_kwargs(motion: dict) -> None:
    unknown = set(motion) - set(DEFAULT_MOTION)
    if unknown:
        raise ValueError(f"unknown motion argument(s) {sorted(unknown)}; known: {', '.join(DEFAULT_MOTION)}")


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
    interpolated bicubically to every pixel (about ``elastic_amplitude`` pixels rms per
    component, varying on the scale ``elastic_scale``).

    Args:
        height, width: size of the field (≥ 1).
        generator: the source of randomness (CPU ``torch.Generator``); None uses the
            global RNG.
        max_shift, max_rotation, elastic_amplitude: ≥ 0; ``elastic_scale`` ≥ 1.

    Returns:
        (1, 2, H, W) float32 CPU flow in pixels (convention of :func:`denoise_lib.ops.warp`).

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
        # the fine grid covers the inner part of the coarse one, so that the field does
        # not flatten towards the image edges
        fine = F.interpolate(coarse, scale_factor=elastic_scale, mode="bicubic", align_corners=False)
        off = int(round(1.5 * elastic_scale))
        flow = flow + fine[..., off:off + h, off:off + w]
    return flow.float()


def move(clean: torch.Tensor, flow: torch.Tensor, *, margin: int | None = None) -> torch.Tensor:
    """A clean image moved by ``flow``: a bicubic warp with image content entering at the borders.

    The image is reflect-padded by ``margin`` pixels, warped bicubically and cropped
    back, so that content moving in from outside the frame is mirrored image content,
    not a replicated edge. The result is clipped to [0, 1] (bicubic interpolation
    overshoots slightly at edges).

    Args:
        clean: (N, C, H, W) float tensor in [0, 1].
        flow: (N or 1, 2, H, W) flow in pixels (:func:`denoise_lib.ops.warp` convention).
        margin: padding in pixels; default ``ceil(max |flow|) + 2``, at most
            ``min(H, W) − 1`` (a reflection cannot be wider than the image).

    Returns:
        (N, C, H, W) float tensor in [0, 1].

    Raises:
        ImageError / ValueError: as :func:`denoise_lib.ops.warp`.
    """
    check_flow(clean, flow)
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
    independent :func:`random_flow` (each frame moves relative to the reference).
    Noise is drawn independently for every frame from the same generator, after all
    the motion.

    Args:
        image: one clean image, anything :func:`denoise_lib.image.as_image` accepts
            (values in [0, 1]; a batch of one).
        noise: a :class:`~denoise_lib.noise.NoiseModel` or a spec such as ``"gaussian:25"``.
        frames: number of frames T ≥ 2.
        generator: CPU ``torch.Generator``; or ``seed`` to make one (at most one of the
            two; with neither, the global RNG is used).
        **motion: ``max_shift``, ``max_rotation``, ``elastic_amplitude``,
            ``elastic_scale`` of :func:`random_flow`.

    Returns:
        :class:`MovingSequence` (all CPU float32).

    Raises:
        ImageError: bad image or a batch of more than one. ValueError: ``frames < 2``,
        both ``generator`` and ``seed``, unknown or bad motion arguments.
    """
    x = as_image(image).cpu()
    if x.shape[0] != 1:
        raise ImageError(f"moving_sequence takes one image, got a batch of {x.shape[0]}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
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


def _motion_generator(seed: int, index: int) -> torch.Generator:
    # distinct from the noise generators of add_noise (seed·1_000_003 + index)
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + index + 500_000_001)


def misaligned_pairs(images, noise, *, seed: int = 0, return_clean: bool = False, **motion):
    """The Self2Align training set: pairs of noisy frames of moving scenes (kind ``"pairs"``).

    For each clean still image ``x_i``: a random flow (:func:`random_flow`, generator
    seeded by ``(seed, i)``) moves it to ``x_i' = move(x_i, flow_i)``; the pair is the
    noisy reference ``y_i = x_i + n_i`` and the noisy moving frame ``z_i = x_i' + n_i'``
    with independent noise. The noise is drawn as
    :meth:`~denoise_lib.data.TrainingSet.from_clean` draws it for the same ``seed``
    (reference: ``add_noise(…, seed=2·seed)``, second frame: ``seed=2·seed + 1``), so
    the reference frames are the noisy images every other learned method trains on,
    and Gaussian second frames carry the same noise fields as Noise2Noise's second
    draws: the only difference from Noise2Noise's pairs is the motion. The set holds
    **no clean image**; its ``noise`` attribute records the noise model.

    Args:
        images: list of (1, C, H, W) clean images in [0, 1] (sizes may differ; anything
            :func:`~denoise_lib.image.as_image` accepts per item), or an (N, C, H, W) tensor.
        noise: a :class:`~denoise_lib.noise.NoiseModel` or spec string.
        seed: seeds the motion and the noise.
        return_clean: also return the clean moving frames and the flows (for
            measurements; never for training).
        **motion: ``max_shift``, ``max_rotation``, ``elastic_amplitude``,
            ``elastic_scale`` (defaults :data:`DEFAULT_MOTION`).

    Returns:
        :class:`~denoise_lib.data.TrainingSet` of kind ``"pairs"`` (``noisy`` =
        reference frames, ``target`` = moving frames); with ``return_clean``, the
        tuple ``(set, moved_clean_list, flow_list)``.

    Raises:
        ValueError: empty list or bad motion arguments. ImageError: a bad image.
    """
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
    pairs = TrainingSet("pairs", ref, mov, noise=model)
    return (pairs, moved, flows) if return_clean else pairs
