"""Shared fixtures of the denoise_lib unit tests.

* No test may download: ``pooch.retrieve`` is replaced by a function that raises
  for every test (tests that check the offline error path replace it themselves).
* The download cache points to a temporary folder, the registry's record of
  verified files is cleared, and ``DENOISE_BUDGET`` / ``DENOISE_DEVICE`` are unset
  so that the environment of the machine cannot change a result.
* torch runs on one intra-op thread: the networks here are tiny, and on a machine
  shared with training jobs several OpenMP threads spin-wait for busy cores (a
  step of a 8-feature U-Net on 16×16 patches took ~800 ms with 2 threads, ~5 ms with 1).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from denoise_lib.data import registry

torch.set_num_threads(1)


class NetworkDisabled(RuntimeError):
    """Raised by the patched ``pooch.retrieve``: the tests never download."""


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    import pooch

    def no_download(url, *args, **kwargs):
        raise NetworkDisabled(f"tests must not download ({url})")

    monkeypatch.setattr(pooch, "retrieve", no_download)
    monkeypatch.setenv("DENOISE_LIB_CACHE", str(tmp_path_factory.getbasetemp() / "download-cache"))
    monkeypatch.delenv("DENOISE_BUDGET", raising=False)
    monkeypatch.delenv("DENOISE_DEVICE", raising=False)
    registry._verified.clear()
    yield
    registry._verified.clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real local mirror of the standard sets (``$DENOISE_LIB_DATA`` or ``../shared/data``).

    Fails (never skips) when it cannot be found: the data tests need Set12 01.png/02.png.
    """
    for root in registry.mirror_dirs():
        if (root / "Set12" / "01.png").is_file():
            return root
    pytest.fail("no local data mirror holding Set12/01.png: set DENOISE_LIB_DATA to the folder "
                "that holds the standard sets (e.g. /work/shared/data)")


@pytest.fixture
def set12_png(shared_data) -> Path:
    return shared_data / "Set12" / "01.png"


def make_mirror(tmp_path: Path, src: Path, folder: str = "Set12", corrupt: bool = False) -> Path:
    """A mirror folder ``tmp_path/mirror/<folder>/<src.name>`` holding a copy of ``src``.

    With ``corrupt``, a few bytes in the middle of the copy are inverted.
    """
    root = tmp_path / "mirror"
    (root / folder).mkdir(parents=True)
    dst = root / folder / src.name
    shutil.copyfile(src, dst)
    if corrupt:
        b = bytearray(dst.read_bytes())
        mid = len(b) // 2
        for i in range(mid, mid + 16):
            b[i] ^= 0xFF
        dst.write_bytes(bytes(b))
    return root


def random_images(n: int, size=(48, 48), channels: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand((1, channels, *size), generator=g) for _ in range(n)]


def smooth_images(n: int, size=(48, 48), channels: int = 1, seed: int = 0) -> list[torch.Tensor]:
    """Smooth synthetic images in [0.1, 0.9]: sums of a few low-frequency sinusoids."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    out = []
    for _ in range(n):
        img = np.zeros((channels, h, w))
        for c in range(channels):
            for _ in range(3):
                fy, fx, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
                img[c] += np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
        img = 0.5 + 0.4 * img / np.abs(img).max()
        out.append(torch.from_numpy(img.astype(np.float32))[None])
    return out
