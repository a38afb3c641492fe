"""The data set-up every training notebook shares: one fixed noisy training set, a test set
with fixed test noise, and the mean PSNR over it.

In a notebook::

    cfg = course.setup(notebook="02_j_invariance")
    ex = course.experiment(cfg, Gaussian(25 / 255), kind="single")
    ex.training            # data.TrainingSet: one noisy draw per BSD400 image
    ex.test_noisy          # Set12 with the test noise (seed 1000), the same in every notebook
    ex.mean_psnr(outputs)  # mean 8-bit PSNR of a list of outputs against ex.test_clean

The sizes follow the budget: ``smoke`` uses 8 training images and 2 test images cropped to
96×96 (a check that the code runs, not a result); ``quick`` and ``full`` use every image of
both sets, so all notebooks report numbers on the same test images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import data, metrics
from ..noise import NoiseModel, parse_noise

__all__ = ["Experiment", "experiment", "TEST_NOISE_SEED"]

TEST_NOISE_SEED = 1000  # the test noise of every notebook (training noise uses the notebook's seed)
SMOKE_TRAIN, SMOKE_TEST, SMOKE_CROP = 8, 2, 96


@dataclass
class Experiment:
    """A notebook's data: see the module docstring.

    Attributes:
        noise: the noise model of both training and test images.
        train_clean: list of (1, C, H, W) float32 clean training images in [0, 1]
            (methods other than Noise2Clean never see them).
        training: the fixed noisy training set (:class:`denoise_lib.data.TrainingSet`).
        test_clean, test_noisy: lists of (1, C, H, W) float32 test images; the noisy ones
            are not clipped.
        test_name: registry name of the test set.
    """

    noise: NoiseModel
    train_clean: list
    training: data.TrainingSet
    test_clean: list
    test_noisy: list
    test_name: str

    def mean_psnr(self, outputs) -> float:
        """Mean PSNR (dB, peak 1, outputs clipped to [0, 1]) of ``outputs`` against ``test_clean``.

        Raises:
            ValueError: ``outputs`` does not hold one image per test image.
        """
        outputs = list(outputs)
        if len(outputs) != len(self.test_clean):
            raise ValueError(f"{len(outputs)} outputs for {len(self.test_clean)} test images")
        return float(np.mean([metrics.psnr(o, x) for o, x in zip(outputs, self.test_clean)]))

    def mean_ssim(self, outputs) -> float:
        """Mean SSIM (scikit-image, data range 1) of ``outputs`` against ``test_clean``."""
        outputs = list(outputs)
        if len(outputs) != len(self.test_clean):
            raise ValueError(f"{len(outputs)} outputs for {len(self.test_clean)} test images")
        return float(np.mean([metrics.ssim(o, x) for o, x in zip(outputs, self.test_clean)]))

    def describe(self) -> str:
        """One line: training and test set sizes and the PSNR of the noisy test input."""
        t = self.training
        return (f"training: {len(t.noisy)} images of {tuple(t.noisy[0].shape[-2:])} ({t.kind}, noise drawn once); "
                f"test: {len(self.test_clean)} {self.test_name} images; noisy input "
                f"{self.mean_psnr(self.test_noisy):.2f} dB")


def experiment(cfg, noise, *, kind: str = "single", train: str = "bsd400", test: str = "set12",
               channels: int | None = None, train_limit: int | None = None,
               test_limit: int | None = None) -> Experiment:
    """Load the training and test images of a notebook and draw their noise once.

    Args:
        cfg: the notebook's :class:`~denoise_lib.course.Settings` (budget and seed).
        noise: a :class:`~denoise_lib.noise.NoiseModel` or spec (``"gaussian:25"``).
        kind: ``"single"`` (self-supervised), ``"pairs"`` (Noise2Noise) or ``"clean"``
            (Noise2Clean); see :meth:`denoise_lib.data.TrainingSet.from_clean`.
        train, test: registry names. channels: convert both sets to 1 or 3 channels.
        train_limit, test_limit: at most this many images (``None``: the budget's default,
            every image except in ``smoke``).

    Returns:
        an :class:`Experiment`. Training noise uses ``cfg.seed``, test noise
        :data:`TEST_NOISE_SEED`.

    Raises:
        ValueError: bad noise spec or kind; FileNotFoundError/DataError as :func:`denoise_lib.data.load`.
    """
    model = parse_noise(noise)
    smoke = cfg.name == "smoke"
    if smoke:
        train_limit = min(train_limit or SMOKE_TRAIN, SMOKE_TRAIN)
        test_limit = min(test_limit or SMOKE_TEST, SMOKE_TEST)
    train_clean = data.load(train, channels=channels, limit=train_limit)
    test_clean = data.load(test, channels=channels, limit=test_limit)
    if smoke:
        test_clean = [x[..., :SMOKE_CROP, :SMOKE_CROP].contiguous() for x in test_clean]
    training = data.TrainingSet.from_clean(train_clean, model, kind=kind, seed=cfg.seed)
    test_noisy = data.add_noise(test_clean, model, seed=TEST_NOISE_SEED)
    return Experiment(model, train_clean, training, test_clean, test_noisy, test)

