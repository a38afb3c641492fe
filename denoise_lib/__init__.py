"""denoise_lib — the library of the course "Self-Supervised Image Denoising".

Conventions (used by every module): images are ``torch.float32`` tensors in
``(N, C, H, W)`` layout with values in [0, 1]; noise levels are in the same units
(σ = 25 on the 0–255 scale is ``25/255``). Notation: ``y`` noisy, ``x`` clean,
``n`` noise, ``f_θ`` the network.

Core modules: :mod:`.image` (conversion, validation), :mod:`.noise`, :mod:`.data`
(registry, training sets, patches, simulated moving frames), :mod:`.ops` (warping,
smoothing, local SSIM), :mod:`.masks` and :mod:`.subsample` (the masking and
sub-sampling operators of the methods), :mod:`.metrics`, :mod:`.models` (networks),
:mod:`.methods` (one file per method, one interface), :mod:`.train` (the training loop),
:mod:`.classical` (BM3D, NLM, TV) and :mod:`.bench` (comparison harness).
:mod:`.course` holds what only the course needs: notebook settings and checks,
theorem checks, measurements and plots.
"""
__version__ = "0.1.0"

from .image import ImageError, ImageInfo, as_image, image_info, read_alpha, read_image, to_numpy, write_image  # noqa: E402,E501
from .noise import Gaussian, Poisson, Speckle, parse_noise  # noqa: E402

__all__ = ["ImageError", "ImageInfo", "as_image", "image_info", "read_alpha", "read_image", "to_numpy", "write_image", "Gaussian", "Poisson", "Speckle",
           "parse_noise", "__version__"]
