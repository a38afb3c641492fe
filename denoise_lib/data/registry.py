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
   folder ``denoise_lib``; in Colab, a mounted Google Drive folder keeps downloads
   between sessions), filled by :mod:`pooch` from
   ``https://raw.githubusercontent.com/<repo>/<commit>/<path>``. The download is
   verified against ``source_sha256`` (the original BMP/TIFF file) or ``sha256``
   (PNG sources). For ``BSD300_train``, whose source is a JPEG of unpublished hash,
   the decoded pixels are verified against ``pixel_sha256`` instead.

Downloads (:func:`fetch_many`, used by :func:`denoise_lib.data.load_dataset`) run in
parallel threads (``DENOISE_LIB_DOWNLOAD_WORKERS``, default 8) behind one tqdm bar
per set on stderr (off when ``DENOISE_PROGRESS=0``). A connection error, a timeout,
an HTTP 5xx or a rate limit (HTTP 429, a 403 from raw.githubusercontent.com, or any
``Retry-After`` header) is retried :data:`ATTEMPTS` times with exponential back-off
(:data:`BACKOFF` s, doubled each time, plus up to :data:`JITTER` of it at random;
``Retry-After`` is honoured up to :data:`MAX_RETRY_AFTER` s). A persistent rate limit
raises :class:`DataError` saying to wait and run again (finished files stay in the
cache) or to point ``DENOISE_LIB_DATA`` at a downloaded copy; any other failure
says where it looked, the URL and which variable to set.

A hash mismatch or an undecodable file raises :class:`DataError` naming the file,
the expected and the actual hash, and how to fix it; it is not retried, a bad
download is removed, and nothing corrupt is returned.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

__all__ = ["DataError", "Dataset", "DATASETS", "get", "mirror_dirs", "cache_dir", "fetch", "fetch_many"]

MANIFESTS = Path(__file__).with_name("manifests")

#: attempts per file (1 = no retry).
ATTEMPTS = 5
#: first back-off delay in seconds; doubled after each failed attempt (1, 2, 4, 8 s).
BACKOFF = 1.0
#: random extra delay, as a fraction of the back-off delay.
JITTER = 0.1
#: longest ``Retry-After`` wait honoured, in seconds.
MAX_RETRY_AFTER = 60.0
#: default number of parallel downloads (env ``DENOISE_LIB_DOWNLOAD_WORKERS``).
DEFAULT_WORKERS = 8
_sleep = time.sleep


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


def _from_mirror(dataset: Dataset, entry: Entry) -> np.ndarray | None:
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
    return None


def _known(entry: Entry) -> str | None:
    return entry.source_sha256 or (None if entry.pixel_sha256 else entry.sha256)


def _target(dataset: Dataset, entry: Entry) -> Path:
    return cache_dir() / dataset.folder / Path(entry.url).name


def _cached(dataset: Dataset, entry: Entry) -> Path | None:
    """The cached download of ``entry`` when present and matching its hash (no network)."""
    path = _target(dataset, entry)
    if not path.is_file():
        return None
    known = _known(entry)
    if known:
        key = (str(path), known)
        if key not in _verified:
            if sha256_file(path) != known:
                return None  # re-downloaded (pooch replaces it)
            _verified.add(key)
    return path


def fetch(dataset: Dataset, entry: Entry) -> np.ndarray:
    """Return one verified image of a registered set as a uint8 array (H×W or H×W×3).

    Looks in the local mirrors, then the download cache, then downloads (with retries).

    Raises:
        DataError: hash mismatch in the mirror or cache, undecodable file, or a
            failed download (offline, rate-limited, no mirror); the message says
            where it looked and which environment variable to set.
    """
    a = _from_mirror(dataset, entry)
    if a is not None:
        return a
    path = _cached(dataset, entry)
    if path is not None:
        return _finish(entry, path)
    with _quiet_pooch():
        return _download(dataset, entry)


def fetch_many(dataset: Dataset, entries, *, workers: int | None = None,
               progress: bool | None = None) -> list[np.ndarray]:
    """Return verified images of a registered set, in the order of ``entries``.

    Mirror and cached files are read directly; the others are downloaded in
    parallel, with retries, behind one progress bar for the set.

    Args:
        dataset: the set the entries belong to.
        entries: its :class:`Entry` rows (e.g. ``dataset.entries[:10]``).
        workers: parallel downloads; default ``$DENOISE_LIB_DOWNLOAD_WORKERS`` or 8.
        progress: show a tqdm bar on stderr while downloading; default yes unless
            ``DENOISE_PROGRESS`` is ``0``.

    Returns:
        list of uint8 arrays (H×W or H×W×3), one per entry.

    Raises:
        ValueError: ``workers`` (or the environment variable) is not an integer ≥ 1.
        DataError: as :func:`fetch`; the first failed file stops the downloads not
            yet started (finished ones stay in the cache).
    """
    entries = list(entries)
    workers = _workers(workers)
    out: list[np.ndarray | None] = [None] * len(entries)
    todo = []
    for i, e in enumerate(entries):
        a = _from_mirror(dataset, e)
        if a is None:
            path = _cached(dataset, e)
            if path is None:
                todo.append(i)
                continue
            a = _finish(e, path)
        out[i] = a
    if not todo:
        return out
    from tqdm.std import tqdm

    if progress is None:
        progress = os.environ.get("DENOISE_PROGRESS", "1").strip() != "0"
    n = len(todo)
    with _quiet_pooch(), tqdm(total=n, desc=f"{dataset.folder}: downloading {n} file{'s' * (n != 1)}",
                              unit="file", file=sys.stderr, disable=not progress) as bar:
        pool = ThreadPoolExecutor(max_workers=min(workers, n), thread_name_prefix="denoise_lib-download")
        try:
            jobs = {pool.submit(_download, dataset, entries[i]): i for i in todo}
            for job in as_completed(jobs):
                out[jobs[job]] = job.result()
                bar.update()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def _workers(workers: int | None) -> int:
    src = "workers"
    if workers is None:
        src, workers = "DENOISE_LIB_DOWNLOAD_WORKERS", os.environ.get("DENOISE_LIB_DOWNLOAD_WORKERS",
                                                                      DEFAULT_WORKERS)
    try:
        n = int(workers)
        ok = n >= 1 and float(workers) == n
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{src} must be an integer ≥ 1 (parallel downloads), got {workers!r}")
    return n


@contextmanager
def _quiet_pooch():
    """Silence pooch's per-file log lines (the progress bar replaces them)."""
    import pooch

    log = pooch.get_logger()
    level = log.level
    log.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        log.setLevel(level)


def _check_shape(a: np.ndarray, entry: Entry, path) -> np.ndarray:
    want = (entry.height, entry.width) + ((entry.channels,) if entry.channels == 3 else ())
    if entry.channels == 3 and a.ndim == 2:  # e.g. Set14 "bridge": a gray BMP stored as RGB
        a = np.repeat(a[..., None], 3, axis=-1)
    elif a.ndim == 3 and a.shape[-1] == 4:  # drop an alpha channel
        a = a[..., :3]
    if a.shape != want:
        raise DataError(f"{path}: decoded shape {a.shape}, manifest says {want}")
    return a


def _finish(entry: Entry, path: Path) -> np.ndarray:
    a = _check_shape(_decode(path), entry, path)
    if entry.pixel_sha256:
        got = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
        if got != entry.pixel_sha256:
            path.unlink(missing_ok=True)
            raise DataError(f"decoded pixels of {entry.url} ({path}) do not match pixel_sha256 "
                            f"{entry.pixel_sha256} (got {got}); the download was removed")
    return a


def _download(dataset: Dataset, entry: Entry) -> np.ndarray:
    return _finish(entry, _retrieve(dataset, entry))


def _retrieve(dataset: Dataset, entry: Entry) -> Path:
    """Download one file into the cache with pooch, retrying transient failures."""
    import pooch
    import requests

    known = _known(entry)
    target = _target(dataset, entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    attempt = 0
    while True:
        attempt += 1
        try:
            return Path(pooch.retrieve(entry.url, known_hash=f"sha256:{known}" if known else None,
                                       fname=target.name, path=target.parent, progressbar=False))
        except ValueError as e:
            if isinstance(e, requests.RequestException):  # e.g. InvalidURL
                raise _failure(dataset, entry, e, attempt) from e
            target.unlink(missing_ok=True)
            raise DataError(f"downloaded {entry.url} does not match its sha256: {e}\n"
                            "The download was removed. If this persists, the source changed: use a "
                            "local mirror (DENOISE_LIB_DATA).") from e
        except Exception as e:
            status, retry_after = _http_info(e)
            limited = retry_after is not None or status == 429 or (
                status == 403 and urlsplit(entry.url).hostname == "raw.githubusercontent.com")
            transient = limited or (status is not None and (status >= 500 or status == 408)) or (
                status is None and isinstance(e, (requests.ConnectionError, requests.Timeout,
                                                  requests.exceptions.ChunkedEncodingError,
                                                  ConnectionError, TimeoutError)))
            if not transient or attempt >= ATTEMPTS:
                raise (_rate_limited if limited else _failure)(dataset, entry, e, attempt) from e
            delay = BACKOFF * 2 ** (attempt - 1)
            delay += random.uniform(0, JITTER * delay)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            _sleep(delay)


def _http_info(exc: BaseException) -> tuple[int | None, float | None]:
    """(HTTP status, Retry-After seconds) of the response behind an exception; None where unknown."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        resp = getattr(exc, "response", None)
        if resp is not None:
            try:
                status = int(resp.status_code)
            except (AttributeError, TypeError, ValueError):
                status = None
            headers = getattr(resp, "headers", None) or {}
            return status, _retry_after(headers.get("Retry-After"))
        exc = exc.__cause__ or exc.__context__
    return None, None


def _retry_after(value) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _attempts(n: int) -> str:
    return f"{n} attempt{'s' * (n != 1)}"


def _rate_limited(dataset: Dataset, entry: Entry, e: Exception, attempt: int) -> DataError:
    host = urlsplit(entry.url).hostname
    return DataError(
        f"{host} rate-limited anonymous downloads: {dataset.folder}/{entry.file} could not be fetched "
        f"from {entry.url} after {_attempts(attempt)} ({type(e).__name__}: {e}).\n"
        f"Wait a few minutes and run again: files already downloaded stay in the cache "
        f"({cache_dir()}), so a rerun only fetches the rest.\n"
        f"Or download the set once and set DENOISE_LIB_DATA to a folder laid out as "
        f"<folder>/<SetName>/<file>.png (here <folder>/{dataset.folder}/{entry.file}).\n"
        "Set DENOISE_LIB_CACHE to a persistent folder (in Colab, e.g. a mounted Google Drive "
        "folder) to keep downloads between sessions.")


def _failure(dataset: Dataset, entry: Entry, e: Exception, attempt: int) -> DataError:
    searched = ", ".join(str(p) for p in mirror_dirs()) or "none found"
    return DataError(
        f"{dataset.folder}/{entry.file} is not in a local mirror (searched: {searched}) and "
        f"could not be downloaded from {entry.url} after {_attempts(attempt)}: {type(e).__name__}: {e}\n"
        "Set DENOISE_LIB_DATA to a folder holding the sets (one sub-folder per set), "
        "or go online once to fill the cache (DENOISE_LIB_CACHE).")
