"""A registry of the standard denoising image sets: public URLs, sha256 hashes, local mirrors.

Each set is described by a manifest shipped with the package
(``denoise_lib/data/manifests/<Folder>.csv``, columns
``file,width,height,channels,sha256,source_repo,source_path,source_commit`` and,
for converted sets, ``source_sha256``). A file is found, in this order:

1. in a **local mirror**: the folder named by the environment variable
   ``DENOISE_LIB_DATA`` (one sub-folder per set, e.g. ``$DENOISE_LIB_DATA/Set12/01.png``,
   laid out as ``shared/data``), else ``../shared/data`` next to the repository or
   the working directory when it exists. Mirror files are PNG and must match the
   manifest's ``sha256``;
2. in the **download cache** (``DENOISE_LIB_CACHE``, default: pooch's user cache
   folder ``denoise_lib``), filled by :mod:`pooch` from
   ``https://raw.githubusercontent.com/<repo>/<commit>/<path>``. The download is
   verified against ``source_sha256`` (the original BMP/TIFF file) or ``sha256``
   (PNG sources). For ``BSD300_train``, whose source is a JPEG of unpublished hash,
   the decoded pixels are verified against ``pixel_sha256`` instead.

A hash mismatch or an undecodable file raises :class:`DataError` naming the file,
the expected and the actual hash, and how to fix it; nothing corrupt is returned.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["DataError", "Dataset", "DATASETS", "get", "mirror_dirs", "cache_dir", "fetch"]

MANIFESTS = Path(__file__).with_name("manifests")


class DataError(RuntimeError):
    """A data file is missing, corrupt or cannot be downloaded."""


@dataclass(frozen=True)
class Entry:
    file: str
    width: int
    height: int
    channels: int
    sha256: str
    url: str
    source_sha256: str | None
    pixel_sha256: str | None


@dataclass(frozen=True)
class Dataset:
    """One registered image set.

    Attributes:
        name: registry name (lower case, e.g. ``"set12"``).
        folder: sub-folder name in a mirror (e.g. ``"Set12"``).
        role: ``"test"`` or ``"train"``.
        channels: 1 (gray) or 3 (RGB).
        description: one line, with the reference.
    """

    name: str
    folder: str
    role: str
    channels: int
    description: str

    @property
    def entries(self) -> list[Entry]:
        return _entries(self.folder)

    @property
    def files(self) -> list[str]:
        return [e.file for e in self.entries]


def _url(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


@lru_cache(maxsize=None)
def _entries(folder: str) -> list[Entry]:
    path = MANIFESTS / f"{folder}.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [Entry(file=r["file"], width=int(r["width"]), height=int(r["height"]),
                  channels=int(r["channels"]), sha256=r["sha256"],
                  url=_url(r["source_repo"], r["source_commit"], r["source_path"]),
                  source_sha256=r.get("source_sha256") or None,
                  pixel_sha256=r.get("pixel_sha256") or None) for r in rows]


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("set12", "Set12", "test", 1, "12 classic gray test images (Zhang et al. 2017, DnCNN)"),
    Dataset("bsd68", "BSD68", "test", 1, "68 gray Berkeley test images (Roth & Black 2009)"),
    Dataset("cbsd68", "CBSD68", "test", 3, "colour versions of BSD68 (Zhang et al. 2018, FFDNet)"),
    Dataset("set14", "Set14", "test", 3, "14 colour images (Zeyde et al. 2010)"),
    Dataset("bsd300", "BSD300_test", "test", 3,
            "the 100 BSD300 test images (Martin et al. 2001; test set of Laine et al. 2019)"),
    Dataset("kodak24", "Kodak24", "test", 3, "Kodak Lossless True Color Image Suite, 24 images"),
    Dataset("mcmaster", "McMaster", "test", 3, "18 colour 500×500 images (McMaster, via FFDNet)"),
    Dataset("bsd400", "BSD400", "train", 1, "400 gray 180×180 training crops (DnCNN's Train400)"),
    Dataset("bsd300_train", "BSD300_train", "train", 3,
            "199 colour BSD300 training images (Martin et al. 2001), disjoint from the test sets"),
]}
_ALIASES = {"bsd300_test": "bsd300", "kodak": "kodak24", "cbsd400": "bsd300_train",
            "bsd300-train": "bsd300_train", "bsd300-test": "bsd300"}


def get(name: str) -> Dataset:
    """The :class:`Dataset` registered as ``name`` (case-insensitive; folder names work too).

    Raises:
        KeyError: unknown name; the message lists the registered names.
    """
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in DATASETS:
        return DATASETS[key]
    for d in DATASETS.values():
        if d.folder.lower() == key:
            return d
    raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(sorted(DATASETS))}")


def mirror_dirs() -> list[Path]:
    """Local mirror folders, in the order they are searched.

    ``$DENOISE_LIB_DATA`` first (if set), then ``../shared/data`` relative to the
    repository that holds this package and to the working directory (and its parent).
    Only existing folders are returned.
    """
    cands = []
    env = os.environ.get("DENOISE_LIB_DATA")
    if env:
        cands.append(Path(env).expanduser())
    repo = Path(__file__).resolve().parents[2]
    cwd = Path.cwd()
    cands += [repo.parent / "shared" / "data", cwd.parent / "shared" / "data",
              cwd.parent.parent / "shared" / "data"]
    out = []
    for c in cands:
        c = c.resolve()
        if c.is_dir() and c not in out:
            out.append(c)
    return out


def cache_dir() -> Path:
    """Where downloads go: ``$DENOISE_LIB_CACHE`` or pooch's OS cache folder ``denoise_lib``."""
    env = os.environ.get("DENOISE_LIB_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch
    return Path(pooch.os_cache("denoise_lib"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _decode(path: Path) -> np.ndarray:
    import skimage.io
    try:
        return np.asarray(skimage.io.imread(path))
    except Exception as e:
        raise DataError(f"cannot decode {path}: {type(e).__name__}: {e}. "
                        "Delete the file so that it is fetched again.") from e


_verified: set[tuple[str, str]] = set()


def fetch(dataset: Dataset, entry: Entry) -> np.ndarray:
    """Return one verified image of a registered set as a uint8 array (H×W or H×W×3).

    Raises:
        DataError: hash mismatch in the mirror or cache, undecodable file, or a
            failed download (offline and no mirror); the message says where it
            looked and which environment variable to set.
    """
    for root in mirror_dirs():
        path = root / dataset.folder / entry.file
        if path.is_file():
            key = (str(path), entry.sha256)
            if key not in _verified:
                got = sha256_file(path)
                if got != entry.sha256:
                    raise DataError(
                        f"corrupt file in the local mirror: {path}\n  expected sha256 {entry.sha256}\n"
                        f"  got               {got}\nReplace the file or unset DENOISE_LIB_DATA.")
                _verified.add(key)
            return _check_shape(_decode(path), entry, path)
    return _download(dataset, entry)


def _check_shape(a: np.ndarray, entry: Entry, path) -> np.ndarray:
    want = (entry.height, entry.width) + ((entry.channels,) if entry.channels == 3 else ())
    if entry.channels == 3 and a.ndim == 2:  # e.g. Set14 "bridge": a gray BMP stored as RGB
        a = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 4:  # drop an alpha channel
        a = a[..., :3]
    if a.shape != want:
        raise DataError(f"{path}: decoded shape {a.shape}, manifest says {want}")
    return a


def _download(dataset: Dataset, entry: Entry) -> np.ndarray:
    import pooch

    known = entry.source_sha256 or (None if entry.pixel_sha256 else entry.sha256)
    fname = Path(entry.url).name
    folder = cache_dir() / dataset.folder
    try:
        path = Path(pooch.retrieve(entry.url, known_hash=f"sha256:{known}" if known else None,
                                   fname=fname, path=folder, progressbar=False))
    except ValueError as e:  # pooch's hash mismatch
        raise DataError(f"downloaded {entry.url} does not match its sha256: {e}") from e
    except Exception as e:
        searched = ", ".join(str(p) for p in mirror_dirs()) or "none found"
        raise DataError(
            f"{dataset.folder}/{entry.file} is not in a local mirror (searched: {searched}) and "
            f"could not be downloaded from {entry.url}: {type(e).__name__}: {e}\n"
            "Set DENOISE_LIB_DATA to a folder holding the sets (one sub-folder per set), "
            "or go online once to fill the cache.") from e
    a = _check_shape(_decode(path), entry, path)
    if entry.pixel_sha256:
        got = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
        if got != entry.pixel_sha256:
            path.unlink(missing_ok=True)
            raise DataError(f"decoded pixels of {entry.url} do not match pixel_sha256 "
                            f"{entry.pixel_sha256} (got {got}); the download was removed")
    return a
