"""Images for training and testing: registered sets, folders, scikit-image samples, patches.

Every loader returns a list of float32 tensors of shape ``(1, C, H, W)`` in [0, 1]
(sizes differ between images, so they are not stacked).

* :func:`load` — one entry point: a registry name (``"set12"``, ``"bsd400"``, … see
  :data:`denoise_lib.data.registry.DATASETS`), ``"skimage"`` / ``"skimage-gray"`` /
  ``"skimage-rgb"`` (images shipped with scikit-image: the offline default), or a
  path to a folder of images.
* :class:`TrainingSet` — a **fixed** noisy training set: the noise is drawn once
  when it is built, one draw per image for self-supervised methods,
  two independent draws for Noise2Noise, and clean images only for Noise2Clean.
* :class:`PatchSampler` — random aligned crops with the 8 flips/rotations.
* :func:`add_noise` — seeded noisy test observations, reproducible image by image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..image import ImageError, as_image, read_image, reflect_pad
from ..noise import NoiseModel, parse_noise
from . import registry
from .registry import DATASETS, DataError

__all__ = ["Batch", "load", "load_dataset", "load_folder", "sample_images", "TrainingSet", "PatchSampler",
           "add_noise", "DATASETS", "DataError", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm"}

#: scikit-image sample images used as the embedded offline default (all ship with
#: the package; no download). Natural-image content only (no synthetic charts).
SKIMAGE_GRAY = ("camera", "coins", "moon", "brick", "grass", "gravel", "text", "page")
SKIMAGE_RGB = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def _select(images: list, limit: int | None) -> list:
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be ≥ 1, got {limit}")
        images = images[:limit]
    return images


def load_dataset(name: str, *, channels: int | None = None, limit: int | None = None) -> list[torch.Tensor]:
    """Load a registered set, verified against its sha256 hashes.

    Args:
        name: registry name, e.g. ``"set12"``, ``"bsd68"``, ``"cbsd68"``, ``"set14"``,
            ``"bsd300"``, ``"kodak24"``, ``"mcmaster"``, ``"bsd400"``, ``"bsd300_train"``.
        channels: convert to 1 (BT.601 luma) or 3 channels; default keeps the set's own.
        limit: keep the first ``limit`` images (manifest order).

    Files missing from the local mirrors and the cache are downloaded in parallel,
    with retries and one progress bar (:func:`~denoise_lib.data.registry.fetch_many`).

    Returns:
        list of (1, C, H, W) float32 tensors in [0, 1].

    Raises:
        KeyError: unknown name. DataError: missing, corrupt or undownloadable file
            (offline or rate-limited: the message says what to do).
        ValueError: ``DENOISE_LIB_DOWNLOAD_WORKERS`` is not an integer ≥ 1.
    """
    ds = registry.get(name)
    entries = _select(ds.entries, limit)
    return [as_image(a, channels=channels) for a in registry.fetch_many(ds, entries)]


def load_folder(path: str | Path, *, channels: int | None = None, limit: int | None = None,
                pages=None) -> list[torch.Tensor]:
    """Load every image file of a folder (sorted by name; sub-folders ignored).

    Args:
        pages: for multi-page files (TIFF stacks, animated GIF): a page index, or
            ``"all"`` to load every page as its own image (see :func:`~denoise_lib.image.read_image`).

    Raises:
        FileNotFoundError: the folder does not exist or holds no image file.
        ImageError: a file cannot be decoded, or is multi-page and ``pages`` is None
            (the message names it).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"image folder not found: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    out = []
    for f in _select(files, limit):
        img = read_image(f, channels=channels, pages=pages)
        out.extend(img if isinstance(img, list) else [img])
    return out


def sample_images(names=None, *, channels: int | None = None, limit: int | None = None) -> list[torch.Tensor]:
    """scikit-image's bundled sample images (the offline default; no download).

    Args:
        names: names of ``skimage.data`` functions; default :data:`SKIMAGE_GRAY` when
            ``channels == 1``, :data:`SKIMAGE_RGB` when ``channels == 3``, both otherwise.
        channels: 1 or 3 to convert; default keeps each image's own.

    Raises:
        ValueError: an unknown name.
    """
    import skimage.data

    if names is None:
        names = SKIMAGE_GRAY if channels == 1 else SKIMAGE_RGB if channels == 3 else SKIMAGE_GRAY + SKIMAGE_RGB
    out = []
    for n in _select(list(names), limit):
        fn = getattr(skimage.data, n, None)
        if fn is None or not callable(fn):
            raise ValueError(f"skimage.data has no image {n!r}")
        out.append(as_image(fn(), channels=channels))
    return out


def load(source: str | Path, *, channels: int | None = None, limit: int | None = None) -> list[torch.Tensor]:
    """Load images from a registry name, ``"skimage[-gray|-rgb]"``, or a folder path.

    Returns:
        list of (1, C, H, W) float32 tensors in [0, 1].

    Raises:
        FileNotFoundError: neither a registered name nor an existing folder.
        DataError / ImageError: as the specific loaders.
    """
    s = str(source)
    key = s.strip().lower()
    if not key:
        raise FileNotFoundError("empty image source: give a registered set name, skimage, or a folder path")
    if key in ("skimage", "skimage-gray", "skimage-rgb"):
        c = {"skimage-gray": 1, "skimage-rgb": 3}.get(key)
        imgs = sample_images(None, channels=c, limit=limit)
        return [as_image(i, channels=channels) for i in imgs]
    try:
        registry.get(s)
    except KeyError:
        if Path(s).expanduser().is_dir():
            return load_folder(Path(s).expanduser(), channels=channels, limit=limit)
        raise FileNotFoundError(
            f"{s!r} is neither a registered data set ({', '.join(sorted(DATASETS))}, skimage, "
            "skimage-gray, skimage-rgb) nor an existing folder of images") from None
    return load_dataset(s, channels=channels, limit=limit)


@dataclass
class Batch:
    """One training mini-batch (float32 NCHW, all tensors on the same device).

    Attributes:
        noisy: the network input ``y``, shape (B, C, h, w).
        target: a second noisy observation ``y'`` of the same clean patch
            (``requires == "pairs"``), else None.
        clean: the clean patch ``x`` (``requires == "clean"`` only), else None.
        step: the global training step (for schedules such as ramped weights).
        progress: the fraction of the training budget used before this step, in [0, 1]
            (set by :func:`denoise_lib.train.fit`, by steps or by time, whichever is
            further; None outside the loop). Schedules that span the whole training,
            such as Neighbor2Neighbor's γ ramp, use it.
        generator: the source of every random draw a method makes in its loss (masks,
            sub-samplers, re-noising signs), a ``torch.Generator`` on the device of
            ``noisy``. :func:`~denoise_lib.train.fit` passes its own generator, which it
            seeds and checkpoints; a batch built by hand gets a fresh one seeded with 0.
            Methods never draw from torch's global RNG.
    """

    noisy: torch.Tensor
    target: torch.Tensor | None = None
    clean: torch.Tensor | None = None
    step: int = 0
    progress: float | None = None
    generator: torch.Generator | None = None

    def __post_init__(self):
        if self.generator is None:
            self.generator = torch.Generator(device=self.noisy.device).manual_seed(0)


def _generator(seed: int, index: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + index)


def add_noise(images: list[torch.Tensor], noise: NoiseModel | str, *, seed: int = 0) -> list[torch.Tensor]:
    """Noisy observations of clean images, reproducible per image.

    Image ``i`` uses a generator seeded with ``(seed, i)``, so a result does not
    depend on how many images come before it. Noise is drawn on the CPU.

    Args:
        images: list of (1, C, H, W) (or (N, C, H, W)) float32 tensors in [0, 1].
        noise: a :class:`~denoise_lib.noise.NoiseModel` or a spec such as ``"gaussian:25"``.

    Returns:
        list of float32 tensors of the same shapes (not clipped).
    """
    model = parse_noise(noise)
    return [model(as_image(x).cpu(), _generator(seed, i)) for i, x in enumerate(images)]


@dataclass
class TrainingSet:
    """A fixed set of training observations (the noise is drawn once, at construction).

    Attributes:
        kind: ``"single"`` (one noisy draw per image; self-supervised), ``"pairs"``
            (two independent draws; Noise2Noise) or ``"clean"`` (a noisy draw and its
            clean image; Noise2Clean).
        noisy: list of (1, C, H, W) noisy images.
        target: second draws (``"pairs"``) else None.
        clean: clean images (``"clean"``) else None. Self-supervised sets never hold them.
        noise: the noise model used, or None for user-supplied noisy images.
    """

    kind: str
    noisy: list[torch.Tensor]
    target: list[torch.Tensor] | None = None
    clean: list[torch.Tensor] | None = None
    noise: NoiseModel | None = None

    def __post_init__(self):
        if self.kind not in ("single", "pairs", "clean"):
            raise ValueError(f"kind must be 'single', 'pairs' or 'clean', got {self.kind!r}")
        if not self.noisy:
            raise ValueError("a training set needs at least one image")
        if self.clean is not None and self.kind != "clean":
            raise ValueError(f"a {self.kind!r} training set cannot hold clean images (only 'clean' sets do)")
        need = {"pairs": self.target, "clean": self.clean}.get(self.kind, self.noisy)
        if need is None or len(need) != len(self.noisy):
            raise ValueError(f"a {self.kind!r} training set needs as many "
                             f"{'targets' if self.kind == 'pairs' else 'clean images'} as noisy images")
        chans = sorted({int(y.shape[1]) for y in self.noisy})
        if len(chans) > 1:
            raise ImageError(f"a training set needs one channel count, got images with {chans} channels; "
                             "convert them first (data.load(..., channels=1 or 3))")
        for i, y in enumerate(self.noisy):
            for other in (self.target, self.clean):
                if other is not None and other[i].shape != y.shape:
                    raise ImageError(f"training image {i}: shapes {tuple(y.shape)} and "
                                     f"{tuple(other[i].shape)} differ")

    @property
    def channels(self) -> int:
        return int(self.noisy[0].shape[1])

    @classmethod
    def from_clean(cls, images: list[torch.Tensor], noise: NoiseModel | str, kind: str = "single",
                   *, seed: int = 0) -> "TrainingSet":
        """Draw the noise once for a list of clean images.

        ``kind="single"`` keeps only the noisy draw; ``"pairs"`` draws a second,
        independent observation (seed offset by one); ``"clean"`` keeps the clean images.

        Raises:
            ValueError: unknown kind, empty list. ImageError: bad image.
        """
        model = parse_noise(noise)
        images = [as_image(x) for x in images]
        noisy = add_noise(images, model, seed=2 * seed)
        target = add_noise(images, model, seed=2 * seed + 1) if kind == "pairs" else None
        clean = images if kind == "clean" else None
        return cls(kind, noisy, target, clean, model)

    @classmethod
    def from_noisy(cls, noisy: list, target: list | None = None) -> "TrainingSet":
        """Wrap user-supplied noisy images (and optional second observations of the same scenes)."""
        noisy = [as_image(y, allow_range=True) for y in noisy]
        if target is None:
            return cls("single", noisy)
        return cls("pairs", noisy, [as_image(t, allow_range=True) for t in target])

    def for_method(self, requires: str) -> "TrainingSet":
        """The view of this set that a method with ``requires`` may see.

        A "clean" set can serve every method (its noisy draws alone serve "single");
        a "pairs" set serves "pairs" and "single". Clean images are dropped for
        anything but "clean".

        Raises:
            ValueError: the set does not hold what the method needs.
        """
        if requires == self.kind:
            return self
        if requires == "single":
            return TrainingSet("single", self.noisy, noise=self.noise)
        raise ValueError(f"a method that needs {requires!r} data cannot train on a {self.kind!r} set")


class PatchSampler:
    """Random aligned patches from a :class:`TrainingSet`, with flips and rotations.

    Each sample picks an image with probability proportional to its number of
    patch positions, a uniform position, and one of the 8 dihedral transforms
    (when ``augment``); the same crop and transform apply to ``noisy``, ``target``
    and ``clean``. For pairs, input and target are swapped with probability ½.
    All randomness comes from one ``torch.Generator``, saved by :meth:`state_dict`.

    Args:
        data: the training set (moved to ``device`` once).
        patch_size: side of the square patches; smaller images are reflect-padded.
        batch_size: patches per batch.
        augment: apply random flips/rotations.
        seed: seed of the sampler's generator.
        device: where batches live.

    Raises:
        ValueError: patch_size or batch_size < 1.
    """

    def __init__(self, data: TrainingSet, patch_size: int, batch_size: int, *, augment: bool = True,
                 seed: int = 0, device: torch.device | str = "cpu"):
        if patch_size < 1 or batch_size < 1:
            raise ValueError("patch_size and batch_size must be ≥ 1")
        self.kind, self.patch, self.batch_size, self.augment = data.kind, patch_size, batch_size, augment
        fields = [data.noisy, data.target, data.clean]
        self.fields = [None if f is None else [self._fit(x).to(device) for x in f] for f in fields]
        sizes = [(x.shape[-2] - patch_size + 1) * (x.shape[-1] - patch_size + 1) for x in self.fields[0]]
        self.weights = torch.tensor(sizes, dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(int(seed))

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < self.patch or w < self.patch:
            x, _ = reflect_pad(x, (self.patch if h < self.patch else 1, self.patch if w < self.patch else 1))
        return x

    def __call__(self, step: int = 0) -> Batch:
        g, p = self.generator, self.patch
        idx = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=g).tolist()
        u = torch.rand((self.batch_size, 2), generator=g, dtype=torch.float64).tolist()
        t = torch.randint(0, 8, (self.batch_size,), generator=g).tolist() if self.augment else [0] * self.batch_size
        swap = torch.rand(self.batch_size, generator=g).lt(0.5).tolist()
        out = [[] for _ in self.fields]
        for b, i in enumerate(idx):
            h, w = self.fields[0][i].shape[-2:]
            r, c = int(u[b][0] * (h - p + 1)), int(u[b][1] * (w - p + 1))
            for k, f in enumerate(self.fields):
                if f is not None:
                    out[k].append(_dihedral(f[i][..., r:r + p, c:c + p], t[b]))
            if self.kind == "pairs" and swap[b]:
                out[0][-1], out[1][-1] = out[1][-1], out[0][-1]
        noisy, target, clean = (torch.cat(o) if o else None for o in out)
        return Batch(noisy=noisy, target=target, clean=clean, step=step)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """The t-th of the 8 flips/rotations (t in 0..7) of an NCHW tensor."""
    if t >= 4:
        x = x.flip(-1)
    return torch.rot90(x, t % 4, dims=(-2, -1)) if t % 4 else x
