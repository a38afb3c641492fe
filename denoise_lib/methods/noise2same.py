"""Noise2Same: a self-supervised upper bound that does not need J-invariance.

Xie, Wang & Ji (2020), "Noise2Same: optimizing a self-supervised bound for image
denoising", Sec. 4, Eq. (7). **Notation**: the paper writes ``x`` for the noisy image
and ``y`` for the clean one; this library (and the book, :doc:`../book/00_notation`)
uses ``y`` for the noisy image and ``x`` for the clean one. Translated, Eq. (7) reads

    L(f) = (1/d) E_y ‖f(y) − y‖² + λ_inv E_J [ E_y ‖f(y)_J − f(y_{J^c})_J‖² / |J| ]^{1/2}

with ``d`` the number of entries of an image and ``y_{J^c}`` the image with the
entries in J replaced. One training step:

1. two forward passes through **the same** network: ``f(y)`` and ``f(y_{J^c})``,
   with **no stop-gradient** on either (the invariance term is differentiated through
   both);
2. ``rec = mean (f(y) − y)²`` over all entries (the reconstruction term);
3. ``inv = sqrt( Σ_{J} (f(y)_J − f(y_{J^c})_J)² / (|J|·C) )`` over the masked entries
   of the batch (the invariance term; the root is taken of the batch mean, as in the
   paper's code);
4. ``loss = rec + λ_inv · inv``.

J is a stratified mask of 0.5 % of the pixels (one per 14×14 cell, as the paper's
code), replaced by Gaussian noise ``N(0, 0.2²)`` in the units of data normalised to
zero mean and unit variance (the paper's code; :func:`denoise_lib.masks.gaussian`,
``relative=True``, gives the same values on [0, 1] data), or by the donut average.
The reference code draws the mask of each channel independently; here, as everywhere
in the library (:mod:`denoise_lib.masks`), a mask is per pixel and shared by the channels.

λ_inv and its unit (Sec. 4.1–4.2; book Part 4, Theorems 1–2). The weight carries
the unit of the image values, because the reconstruction term is a squared error and
the invariance term the root of one:

* Theorem 2 (Eq. (8)): ``λ_inv = 2σ``, σ the noise standard deviation **in the units
  the network sees** (25/255 for σ = 25 on [0, 1] images).
* Theorem 1 (Eq. (6)): ``λ_inv = 2`` for data **normalised to unit variance** (the
  paper's default, "By default, we set λ_inv = 2 according to Theorem 1", Sec. 4.1).
  Undoing the normalisation (book Part 4, "In raw units, Theorem 1 is Theorem 2 with
  σ replaced by s") gives ``λ_inv = 2·s`` on un-normalised data, with ``s`` the
  standard deviation of the noisy pixel values; ``s ≥ σ`` (zero-mean noise), so the
  bound still holds, more loosely.

This library works on [0, 1] images that are not normalised, so the default is
Theorem 1's weight in those units, ``"2std"``, the same as the registry's
(:func:`denoise_lib.methods.build`). The literal number 2 is right only for
normalised data; on [0, 1] data it weights the invariance term ``1/s`` times more
than Theorem 1 does (``s`` is well below 1 for natural images; the Part 4 notebook
measures it and trains with both).

* ``"2std"`` (default) — ``2·std(y)`` over all entries of each noisy training batch
  (detached): Theorem 1's ``2·s`` with ``s`` estimated on the batch. A batch's
  standard deviation includes the noise, so the weight stays near or above Theorem
  2's ``2σ``.
* ``"2sigma"`` — ``2σ`` from the ``noise`` argument (Theorem 2); needs a fixed-σ
  Gaussian noise model.
* a number — used as it is, in the units of the images. For Theorem 1 with fixed
  data-set constants (the book's reading of it), pass
  :func:`theorem1_weight` ``(training.noisy)``, 2 × the standard deviation of all noisy
  training pixels. For data you normalised yourself to unit variance, ``2.0`` is the
  paper's value.

Inference is one plain forward pass ``f(y)`` (the paper's default; no masking at
test time).
"""
from __future__ import annotations

import torch

from .. import masks
from ..noise import Gaussian, NoiseModel, parse_noise
from .base import Batch, Method

__all__ = ["Noise2Same", "theorem1_weight"]

_REPLACEMENTS = ("gaussian", "donut")


def theorem1_weight(images) -> float:
    """Theorem 1's weight in the units of ``images``: ``2·s``, ``s`` the standard deviation of their values.

    Xie et al. (2020), Theorem 1 (Eq. (6)) states the bound with ``λ_inv = 2`` for data
    normalised by fixed constants to unit variance; in the original units the same bound
    has ``λ_inv = 2·s`` (book, Part 4). Use it as a fixed ``lambda_inv`` computed once
    from the noisy training images.

    Args:
        images: a float tensor, or a list of float tensors (e.g. ``TrainingSet.noisy``),
            of **noisy** images; every entry counts once.

    Returns:
        ``2 · std`` (population standard deviation over all entries), a Python float.

    Raises:
        ValueError: no image, or fewer than two entries in all.
    """
    items = [images] if isinstance(images, torch.Tensor) else list(images)
    if not items:
        raise ValueError("theorem1_weight needs at least one image")
    n = sum(int(t.numel()) for t in items)
    if n < 2:
        raise ValueError("theorem1_weight needs at least two pixel values")
    # two passes in float64: exact enough for millions of entries, no concatenated copy
    total = sum(float(t.detach().double().sum()) for t in items)
    mean = total / n
    var = sum(float(((t.detach().double() - mean) ** 2).sum()) for t in items) / n
    return 2.0 * var ** 0.5


class Noise2Same(Method):
    """Noise2Same (Xie et al. 2020, Eq. (7)): reconstruction + λ_inv × sqrt(invariance MSE).

    Args:
        net: network mapping (N, C, H, W) → (N, C, H, W).
        lambda_inv: ``"2std"`` (default: 2 × the standard deviation of each noisy
            batch, Theorem 1 (Eq. (6)) in the units of the data), ``"2sigma"``
            (Theorem 2 (Eq. (8)): 2σ from ``noise``) or a positive float in the units of
            the images (``2.0`` is the paper's weight for data normalised to unit
            variance; :func:`theorem1_weight` gives Theorem 1's fixed weight for
            [0, 1] data). See the module docstring.
        fraction: share of masked pixels, in (0, 1/4]; default 0.005 (0.5 %).
        replacement: ``"gaussian"`` (default; N(0, σ_r²) in normalised units) or ``"donut"``.
        sigma_r: standard deviation of the Gaussian replacement in units of the image's
            standard deviation (default 0.2, the paper's code).
        noise: the noise model of the training data (a
            :class:`~denoise_lib.noise.NoiseModel` or spec string); needed only for
            ``lambda_inv="2sigma"``. :func:`denoise_lib.methods.build` passes it.

    ``requires = "single"``. Masks and replacement values are drawn from
    ``batch.generator``.

    Raises:
        ValueError: ``lambda_inv="2sigma"`` without a fixed-σ Gaussian ``noise`` (no
            noise model, Poisson or speckle noise, or σ drawn from a range); a
            non-positive or unknown ``lambda_inv``; an unknown replacement; a bad
            ``fraction`` or negative ``sigma_r``.
    """

    name = "noise2same"
    requires = "single"
    cost_note = "two forward/backward passes of the same network (y and the masked y): 2× N2C"

    def __init__(self, net, lambda_inv: float | str = "2std", fraction: float = 0.005,
                 replacement: str = "gaussian", sigma_r: float = 0.2,
                 noise: NoiseModel | str | None = None):
        super().__init__(net)
        masks.cell_size(fraction)
        if replacement not in _REPLACEMENTS:
            raise ValueError(f"Noise2Same replacement must be one of {', '.join(_REPLACEMENTS)}, "
                             f"got {replacement!r}")
        if not sigma_r >= 0:
            raise ValueError(f"sigma_r must be ≥ 0, got {sigma_r!r}")
        self.noise = parse_noise(noise) if noise is not None else None
        self.lambda_spec = lambda_inv
        self.lambda_value = self._resolve_lambda(lambda_inv, self.noise)
        self.fraction, self.replacement, self.sigma_r = float(fraction), replacement, float(sigma_r)

    @staticmethod
    def _resolve_lambda(spec, noise) -> float | None:
        """The fixed λ_inv (None for the per-batch ``"2std"``)."""
        if isinstance(spec, str):
            key = spec.strip().lower()
            if key == "2std":
                return None
            if key == "2sigma":
                if noise is None:
                    raise ValueError('lambda_inv="2sigma" needs the noise level: pass noise=Gaussian(σ) '
                                     '(or a spec such as "gaussian:25")')
                if not isinstance(noise, Gaussian):
                    raise ValueError(f'lambda_inv="2sigma" needs Gaussian noise of known σ (Theorem 2); '
                                     f'{noise.spec} noise has no single σ. Set lambda_inv to a number '
                                     f'or "2std"')
                lo, hi = noise.sigma_range
                if lo != hi:
                    raise ValueError(f'lambda_inv="2sigma" needs one σ, but {noise.spec} draws σ per image; '
                                     f'set lambda_inv to a number (e.g. 2 * {noise.sigma:.4g}) or "2std"')
                return 2.0 * lo
            raise ValueError(f'lambda_inv must be a positive number, "2sigma" or "2std", got {spec!r}')
        try:
            value = float(spec)
        except (TypeError, ValueError):
            raise ValueError(f'lambda_inv must be a positive number, "2sigma" or "2std", got {spec!r}') from None
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"lambda_inv must be positive and finite, got {spec!r}")
        return value

    def lambda_for(self, y: torch.Tensor) -> torch.Tensor | float:
        """λ_inv for a batch ``y`` (a float, or a detached scalar tensor for ``"2std"``)."""
        if self.lambda_value is not None:
            return self.lambda_value
        return 2.0 * y.detach().std(unbiased=False)

    def terms(self, y: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The loss terms on a noisy batch ``y`` (float (B, C, H, W)), with gradients.

        Args:
            y: noisy batch. generator: source of the mask J and of the replacement
                values (mask first, then replacement; in training ``batch.generator``).

        Returns:
            ``{"rec": mean (f(y) − y)², "inv_mse": masked mean of (f(y) − f(y_{J^c}))²,
            "inv": sqrt(inv_mse), "rec_masked": masked mean of (f(y_{J^c}) − y)²}``,
            all scalar tensors. ``rec_masked`` is the Noise2Self loss of the same pass,
            logged for comparison only.

        Raises:
            TypeError: no generator.
        """
        options = {"sigma": self.sigma_r} if self.replacement == "gaussian" else {}
        masked, mask = masks.mask_batch(y, self.fraction, self.replacement, generator=generator, **options)
        out = self.net(y)
        out_masked = self.net(masked)
        rec = torch.mean((out - y) ** 2)
        inv_mse = masks.masked_mse(out, out_masked, mask)
        # clamp: sqrt has an infinite slope at 0 (a network invariant on J would give NaN gradients)
        inv = torch.sqrt(inv_mse.clamp_min(1e-12))
        rec_masked = masks.masked_mse(out_masked, y, mask)
        return {"rec": rec, "inv_mse": inv_mse, "inv": inv, "rec_masked": rec_masked}

    def loss(self, batch: Batch):
        """``rec + λ_inv · inv`` (module docstring).

        Logs rec, inv, inv_mse, rec_masked (detached scalar tensors) and lambda_inv (a
        float, or a detached scalar tensor for ``"2std"``).
        """
        y = batch.noisy
        t = self.terms(y, batch.generator)
        lam = self.lambda_for(y)
        loss = t["rec"] + lam * t["inv"]
        logs = {k: v.detach() for k, v in t.items()}
        logs["lambda_inv"] = lam
        return loss, logs
