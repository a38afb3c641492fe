"""Networks. Methods (in :mod:`denoise_lib.methods`) are kept separate from networks.

:class:`BlindSpotUNet` is imported on first use, so that notebooks which only use the
U-Net do not load (and, through :func:`denoise_lib.course.provenance`, depend on)
:mod:`denoise_lib.models.blindspot`.
"""
from .unet import UNet

__all__ = ["UNet", "BlindSpotUNet"]


def __getattr__(name: str):
    if name == "BlindSpotUNet":
        from .blindspot import BlindSpotUNet

        return BlindSpotUNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
