"""Networks. Methods (in :mod:`denoise_lib.methods`) are kept separate from networks."""
from .blindspot import BlindSpotUNet
from .unet import UNet

__all__ = ["UNet", "BlindSpotUNet"]
