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

from pathlib import Path

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
