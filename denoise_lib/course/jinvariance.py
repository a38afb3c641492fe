"""The J-invariance measure D(f) of Noise2Same and a Monte-Carlo check of its bound (course material).

Xie, Wang & Ji (2020), "Noise2Same: optimizing a self-supervised bound for image
denoising". Notation of the book (:doc:`../book/00_notation`): ``y`` is the **noisy**
image, ``x`` the clean one, ``d`` the number of entries of an image. Noise2Same swaps
the letters (their ``x`` is noisy, ``y`` clean, ``m`` entries); every formula below is
translated.

* :func:`measure_d` — the J-invariance measure D(f), their Sec. 3.1, Eq. (5).
* :func:`bound_terms` — Monte-Carlo estimates of both sides of their Theorems 1 and 2
  (Eq. (6), (8)) for a fixed network, with bootstrap error bars
  (:meth:`BoundTerms.estimate`).
* :func:`train_in_chunks` — a planned training run interrupted every few steps to
  evaluate the network (the identity-collapse curve of Part 2).

Both take any callable ``f`` mapping a float NCHW tensor to a tensor of the same
shape (an ``nn.Module``, a method's ``predict``, a lambda). Neither changes the
train/eval mode of a module: call ``net.eval()`` first when it matters. Without a
``generator`` they draw from a fresh generator seeded with 0 (never from torch's
global RNG), so a call is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import masks
from ..invariance import Model, _call, _check_input

__all__ = ["measure_d", "DResult", "bound_terms", "BoundTerms", "train_in_chunks"]


def _generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator:
    return generator if generator is not None else torch.Generator(device=device).manual_seed(0)


class DResult(float):
    """The value of D(f) (a ``float``) with its Monte-Carlo details as attributes.

    Attributes:
        per_image: tensor (N·draws,) float64: ``‖f(y_{J^c})_J − f(y)_J‖² / |J|`` of
            each (image, mask draw); D is their mean.
        stderr: standard error of that mean (0.0 for a single value).
        pixels: total number of masked pixels used.
        passes: number of forward passes of ``f`` spent.
    """

    per_image: torch.Tensor
    stderr: float
    pixels: int
    passes: int

    def __new__(cls, per_image: torch.Tensor, pixels: int, passes: int):
        value = float(per_image.mean())
        obj = super().__new__(cls, value)
        n = per_image.numel()
        obj.per_image = per_image
        obj.stderr = float(per_image.std() / n ** 0.5) if n > 1 else 0.0
        obj.pixels, obj.passes = pixels, passes
        return obj


@torch.no_grad()
def measure_d(f: Model, y: torch.Tensor, fraction: float = 1e-4, sigma_m: float = 0.5, *,
              generator: torch.Generator | None = None, one_at_a_time: bool = False,
              normalize: bool = True, draws: int = 1, chunk: int = 16) -> DResult:
    """The J-invariance measure D(f) of Noise2Same (Xie et al. 2020, Sec. 3.1, Eq. (5)).

    Eq. (5), in the book's notation (y noisy; the paper writes x):

        D(f) = E_J E_y ‖ f(y_{J^c})_J − f(y)_J ‖² / |J|

    * ``‖·‖²`` is the **summed** squared Euclidean norm over the entries of J, and it is
      divided by ``|J|``, the number of masked **entries** (pixels × channels): D is a
      mean squared difference per masked entry. ``E_y`` is the mean over the images of
      the batch, ``E_J`` over ``draws`` independent masks per image.
    * J is drawn by stratified ("saturate") sampling (:func:`denoise_lib.masks.stratified_mask`)
      at a fraction of 0.01 % (1e-4) by default: one pixel per 100×100 cell, sparse
      enough that masked pixels barely influence each other's outputs. Images smaller
      than a cell get one masked pixel.
    * ``y_{J^c}`` is ``y`` with J replaced by Gaussian noise of standard deviation
      σ_m = 0.5 **on normalised data** ("random Gaussian noises (σ_m = 0.5)"); the
      replacement is unrelated to how ``f`` was trained.
    * D is "computed on the output of f before re-scaling back to [0, 255]": the
      paper's network sees and returns images normalised to zero mean and unit
      variance. With ``normalize=True`` (default) this function reproduces that on
      our [0, 1] data: with ``μ, s`` the mean and standard deviation of each image
      (over its unmasked entries, :func:`denoise_lib.masks.masked_mean`), the masked
      entries get ``μ + σ_m s n`` and the squared differences are divided by ``s²``
      (so D is the value of Eq. (5) for the network ``z ↦ (f(μ + s z) − μ)/s`` on the
      normalised image ``z``). With ``normalize=False`` the replacement is ``σ_m n``
      and D is in squared [0, 1] units.

    ``one_at_a_time=True`` keeps the same J and the same replacement values but
    replaces **one pixel per forward pass** (``|J|`` passes per image, batched by
    ``chunk``), removing the mutual influence among the pixels of J: for a network
    whose output at p does not depend on its input at p (a blind-spot network), D is
    then 0 up to floating-point rounding. The squared differences are accumulated in
    float64; each difference is a rounding error of ``f``'s dtype (~1e-7 relative in
    float32, so D ≲ 1e-12 for outputs of order 1). To reach float64 rounding, pass a
    float64 ``y`` to a float64 model (``net.double()``).

    Runs under ``torch.no_grad()``; the model's train/eval mode is left as it is.

    Args:
        f: model, float (N, C, H, W) → (N, C, H, W).
        y: noisy images, float (N, C, H, W); H, W ≥ 1.
        fraction: share of pixels in J, in (0, 1/4] (default 1e-4 = 0.01 %).
        sigma_m: standard deviation of the replacement noise (normalised units when
            ``normalize``), ≥ 0.
        generator: randomness of J and of the replacement (default: a fresh
            generator on ``y``'s device, seeded with 0).
        one_at_a_time: one masked pixel per forward pass (see above).
        normalize: reproduce the paper's normalised units (see above).
        draws: independent masks J per image (E_J), ≥ 1.
        chunk: images per forward pass in one-at-a-time mode.

    Returns:
        :class:`DResult`: a float (D) carrying ``per_image`` values, ``stderr``,
        ``pixels`` and ``passes``.

    Raises:
        TypeError: ``y`` not a float NCHW tensor. ValueError: bad ``fraction``,
            ``sigma_m``, ``draws`` or ``chunk``, or ``f`` changing the shape.
    """
    _check_input(y)
    if not sigma_m >= 0:
        raise ValueError(f"sigma_m must be ≥ 0, got {sigma_m!r}")
    if not isinstance(draws, int) or draws < 1 or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"draws and chunk must be positive integers, got {draws!r}, {chunk!r}")
    masks.cell_size(fraction)  # validates fraction
    generator = _generator(generator, y.device)
    n, c = y.shape[:2]
    base = _call(f, y)
    values, pixels, passes = [], 0, 1
    for _ in range(draws):
        mask = masks.stratified_mask(y.shape, fraction, generator=generator, device=y.device)
        repl = masks.gaussian(y, mask, sigma=sigma_m, relative=normalize, generator=generator)
        scale2 = (masks.masked_mean(y, mask)[1] ** 2).double() if normalize else torch.ones(
            (n, 1, 1, 1), dtype=torch.float64, device=y.device)
        if not one_at_a_time:
            out = _call(f, repl)
            passes += 1
            sq = ((out.double() - base.double()) ** 2 / scale2) * mask
            count = mask.sum((1, 2, 3)).double() * c
            values.append(sq.sum((1, 2, 3)) / count)
        else:
            b, _, i, j = torch.nonzero(mask, as_tuple=True)
            sums = torch.zeros(n, dtype=torch.float64, device=y.device)
            for start in range(0, b.numel(), chunk):
                bb, ii, jj = b[start:start + chunk], i[start:start + chunk], j[start:start + chunk]
                inp = y[bb].clone()
                k = torch.arange(bb.numel(), device=y.device)
                inp[k, :, ii, jj] = repl[bb, :, ii, jj]
                out = _call(f, inp)
                passes += 1
                d2 = ((out[k, :, ii, jj].double() - base[bb, :, ii, jj].double()) ** 2).sum(1)
                sums.index_add_(0, bb, d2 / scale2[bb, 0, 0, 0])
            count = mask.sum((1, 2, 3)).double() * c
            values.append(sums / count)
        pixels += int(mask.sum())
    return DResult(torch.cat(values).cpu(), pixels, passes)


@dataclass
class BoundTerms:
    """Per-image Monte-Carlo terms of Noise2Same's bound (Xie et al. 2020, Theorems 1–2, Eq. (6), (8)).

    For N held-out clean images ``x_i`` with fresh noisy observations ``y_i`` and M
    masks ``J_m`` (book notation, per-pixel means over the ``d = C·H·W`` entries):

    Attributes:
        A: (N,) float64, ``MSE(f(y_i), x_i)`` (supervised error).
        B: (N,) float64, ``MSE(y_i, x_i)`` (realised noise power).
        R: (N,) float64, ``MSE(f(y_i), y_i)`` (reconstruction term).
        Q: (N, M) float64, ``‖f(y_i)_{J_m} − f(ỹ_i^{J_m})_{J_m}‖² / |J_m|`` (invariance
            integrand; ``|J_m|`` counts entries, i.e. pixels × channels).
    """

    A: torch.Tensor
    B: torch.Tensor
    R: torch.Tensor
    Q: torch.Tensor

    @staticmethod
    def _sides(A, B, R, Q, lam):
        lhs = (A + B).mean(-1)
        q = Q.mean(-2)                                   # mean over images, per mask: (…, M)
        rhs = R.mean(-1) + lam * q.sqrt().mean(-1)       # E_J outside the root (Eq. 6–8)
        pooled = R.mean(-1) + lam * q.mean(-1).sqrt()    # pooled: E_J inside the root
        return lhs, rhs, pooled

    def estimate(self, lam: float, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
        """Both sides for weight ``lam`` and the gaps, with bootstrap intervals over images.

        ``lhs = mean_i (A_i + B_i)`` (ℓ, the supervised error plus the noise power);
        ``rhs = mean_i R_i + lam · mean_m sqrt(mean_i Q_im)`` (u_λ, Eq. (6)/(8) per pixel);
        ``rhs_pooled = mean_i R_i + lam · sqrt(mean_im Q_im)`` (ū_λ, the pooled form).
        Theorem 2 states ``lhs ≤ rhs ≤ rhs_pooled`` for ``lam = 2σ``; Theorem 1, on
        un-normalised data, for ``lam = 2s`` with ``s`` the standard deviation of the
        noisy data. Error bars: the images are resampled with replacement ``n_boot``
        times (masks kept), and the percentile interval of each gap is reported.

        Args:
            lam: weight λ ≥ 0 of the invariance term (in the units of the images).
            n_boot: bootstrap resamples. level: confidence level in (0, 1). seed: of the resampling.

        Returns:
            dict of floats: ``lhs, rhs, rhs_pooled, gap`` (= rhs − lhs), ``gap_lo, gap_hi``,
            ``gap_se`` (bootstrap standard deviation), ``gap_pooled, gap_pooled_lo, gap_pooled_hi``.

        Raises:
            ValueError: negative ``lam``, ``n_boot < 1`` or ``level`` outside (0, 1).
        """
        if not lam >= 0:
            raise ValueError(f"lam must be ≥ 0, got {lam!r}")
        if n_boot < 1 or not 0 < level < 1:
            raise ValueError("need n_boot ≥ 1 and 0 < level < 1")
        lhs, rhs, pooled = self._sides(self.A, self.B, self.R, self.Q, lam)
        n = self.A.numel()
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, n, (n_boot, n), generator=g)
        bl, br, bp = self._sides(self.A[idx], self.B[idx], self.R[idx], self.Q[idx], lam)
        a = (1 - level) / 2
        qs = torch.tensor([a, 1 - a], dtype=torch.float64)
        gap_q, pooled_q = torch.quantile(br - bl, qs), torch.quantile(bp - bl, qs)
        return {"lhs": float(lhs), "rhs": float(rhs), "rhs_pooled": float(pooled),
                "gap": float(rhs - lhs), "gap_lo": float(gap_q[0]), "gap_hi": float(gap_q[1]),
                "gap_se": float((br - bl).std()) if n_boot > 1 else 0.0,
                "gap_pooled": float(pooled - lhs), "gap_pooled_lo": float(pooled_q[0]),
                "gap_pooled_hi": float(pooled_q[1])}


@torch.no_grad()
def bound_terms(f: Model, x: torch.Tensor, noise, *, n_masks: int = 8, fraction: float = 0.005,
                replacement: str = "gaussian", generator: torch.Generator | None = None,
                batch_size: int = 8, **options) -> BoundTerms:
    """Monte-Carlo terms of both sides of Noise2Same's Theorems 1–2 for a fixed ``f``.

    Follows the book's recipe (Part 4, "Estimating both sides by Monte Carlo"): fresh
    noise ``y_i = noise(x_i)`` on held-out clean images; ``n_masks`` stratified masks
    ``J_m``, each shared by all images, with fresh replacement values per image
    (:func:`denoise_lib.masks.replace`, by default Noise2Same's Gaussian replacement
    with σ_r = 0.2 in units of the image's standard deviation); the per-image terms A,
    B, R, Q of :class:`BoundTerms`. Source: Xie et al. 2020, Theorem 1 (Eq. 6) and
    Theorem 2 (Eq. 8), translated (their x is our y).

    Cost: ``1 + n_masks`` forward passes over the N images (in batches of ``batch_size``).

    Args:
        f: model, float (N, C, H, W) → (N, C, H, W) (use ``net.eval()``).
        x: clean held-out images, float (N, C, H, W) in [0, 1] (one size).
        noise: a :class:`~denoise_lib.noise.NoiseModel` or spec (e.g. ``"gaussian:25"``).
        n_masks: M ≥ 1. fraction: mask fraction in (0, 1/4] (default 0.5 %).
        replacement: a strategy of :mod:`denoise_lib.masks`; **options are passed to it
            (default ``sigma=0.2`` for "gaussian").
        generator: randomness of the noise, masks and replacements (default: a fresh
            generator on ``x``'s device, seeded with 0).

    Returns:
        :class:`BoundTerms` (float64 on the CPU).

    Raises:
        TypeError: ``x`` not a float NCHW tensor. ValueError: bad ``n_masks``,
            ``fraction`` or strategy.
    """
    from ..noise import parse_noise

    _check_input(x)
    if not isinstance(n_masks, int) or n_masks < 1:
        raise ValueError(f"n_masks must be a positive integer, got {n_masks!r}")
    if replacement == "gaussian":
        options.setdefault("sigma", 0.2)
    generator = _generator(generator, x.device)
    model = parse_noise(noise)
    y = model(x, generator)
    fy = torch.cat([_call(f, y[i:i + batch_size]) for i in range(0, len(y), batch_size)])
    d64 = lambda t: t.double().flatten(1)  # noqa: E731
    A = ((d64(fy) - d64(x)) ** 2).mean(1)
    B = ((d64(y) - d64(x)) ** 2).mean(1)
    R = ((d64(fy) - d64(y)) ** 2).mean(1)
    Q = torch.empty((len(x), n_masks), dtype=torch.float64)
    c = x.shape[1]
    for m in range(n_masks):
        mask = masks.stratified_mask((1,) + tuple(x.shape[1:]), fraction, generator=generator, device=x.device)
        mask = mask.expand(len(x), -1, -1, -1)
        ty = masks.replace(y, mask, replacement, generator=generator, **options)
        fty = torch.cat([_call(f, ty[i:i + batch_size]) for i in range(0, len(ty), batch_size)])
        diff = ((fy.double() - fty.double()) ** 2) * mask
        Q[:, m] = (diff.sum((1, 2, 3)) / (mask.sum((1, 2, 3)).double() * c)).cpu()
    return BoundTerms(A.cpu(), B.cpu(), R.cpu(), Q)


def train_in_chunks(cfg, method, data, label: str, evaluate, *, chunks: int = 8):
    """Train run ``label`` of the notebook's plan in ``chunks`` pieces, evaluating after each.

    Every piece is one :meth:`denoise_lib.course.Settings.train` call with ``until=`` (the
    learning-rate schedule follows the whole run, and each piece is checkpointed in the
    run cache, so the result equals one uninterrupted training). Only the first piece's
    run-cache message is printed. With a seconds budget (no step count) the run is
    trained in one piece.

    Args:
        cfg: the notebook's :class:`~denoise_lib.course.Settings`.
        method, data, label: as :meth:`~denoise_lib.course.Settings.train`.
        evaluate: called with ``method`` after every piece; returns a tuple of numbers.
        chunks: number of pieces (≥ 1; fewer when the run has fewer steps).

    Returns:
        ``(history, rows)``: the last piece's :class:`~denoise_lib.train.History` and one
        tuple ``(step, *evaluate(method))`` per piece.

    Raises:
        ValueError: ``chunks < 1``; the errors of :meth:`~denoise_lib.course.Settings.train`.
    """
    import contextlib
    import io

    if not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"chunks must be a positive integer, got {chunks!r}")
    steps = cfg.budget_for(label).steps
    if steps:
        size = max(1, steps // chunks)
        stops = list(range(size, steps, size))[:chunks - 1] + [steps]
    else:
        stops = [None]
    rows, history = [], None
    for n, until in enumerate(stops):
        with contextlib.redirect_stdout(io.StringIO()) if n else contextlib.nullcontext():
            history = cfg.train(method, data, label, until=until)
        rows.append((history.steps, *evaluate(method)))
    return history, rows
