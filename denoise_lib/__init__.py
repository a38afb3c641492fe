"""denoise_lib — the library of the course "Self-Supervised Image Denoising".

Conventions (used by every module): images are ``torch.float32`` tensors in
``(N, C, H, W)`` layout with values in [0, 1]; noise levels are in the same units
(σ = 25 on the 0–255 scale is ``25/255``). Notation: ``y`` noisy, ``x`` clean,
``n`` noise, ``f_θ`` the network.

Modules: :mod:`.image` (conversion, validation), :mod:`.noise`, :mod:`.data`,
:mod:`.metrics`, :mod:`.models` (networks), :mod:`.methods` (one file per method,
one interface), :mod:`.train` (the training loop), :mod:`.classical` (BM3D, NLM,
TV), :mod:`.bench` (comparison harness), :mod:`.course` (notebook settings and
notebook checks).
"""
__version__ = "0.1.0"

from .image import ImageError, as_image, read_image, to_numpy  # noqa: E402
from .noise import Gaussian, Poisson, Speckle, parse_noise  # noqa: E402

__all__ = ["ImageError", "as_image", "read_image", "to_numpy", "Gaussian", "Poisson", "Speckle",
           "parse_noise", "__version__"]
