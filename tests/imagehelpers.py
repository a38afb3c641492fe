"""Plain helper functions shared by the unit tests (images and a temporary data mirror).

They live here, not in conftest.py, because notebooks/ has a conftest.py of its own
and two modules named ``conftest`` cannot both be imported by name.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch


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


class Spy(torch.nn.Module):
    """Wraps a network and records its inputs and outputs (outputs keep their gradients).

    Inputs are stored as detached copies unless ``detach_inputs=False`` (then as given, so
    a test can ask whether they carry a graph).
    """

    def __init__(self, net, *, detach_inputs: bool = True):
        super().__init__()
        self.net, self.in_channels = net, net.in_channels
        self.detach_inputs = detach_inputs
        self.inputs, self.outputs = [], []

    def forward(self, x):
        out = self.net(x)
        if out.requires_grad:
            out.retain_grad()
        self.inputs.append(x.detach().clone() if self.detach_inputs else x)
        self.outputs.append(out)
        return out


class HostRoundTrip(AssertionError):
    """Raised by :func:`host_round_trip_guard` when code under test syncs with the host."""


class host_round_trip_guard:
    """Context manager: ``Tensor.item/cpu/numpy/tolist`` and ``float()/int()/bool()`` of a
    tensor raise :class:`HostRoundTrip` inside it (a training step must not sync)."""

    NAMES = ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__bool__", "__index__")

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch

    def __enter__(self):
        for what in self.NAMES:
            def refuse(*args, _what=what, **kwargs):
                raise HostRoundTrip(f"host round trip in a training step: Tensor.{_what}")
            self.monkeypatch.setattr(torch.Tensor, what, refuse)
        return self

    def __exit__(self, *exc):
        self.monkeypatch.undo()
