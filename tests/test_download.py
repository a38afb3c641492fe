"""Downloads, offline: the real ``pooch.retrieve`` with a fake transfer (retries, rate limits, progress, threads)."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading

import numpy as np
import pytest
import requests
import skimage.io

from denoise_lib import data
from denoise_lib.data import registry
from denoise_lib.data.registry import DataError
from denoise_lib.image import as_image

HOST = "https://raw.githubusercontent.com/fake/repo/0123abcd"
N = 3


def _png(a: np.ndarray, tmp_path) -> bytes:
    path = tmp_path / "served.png"
    skimage.io.imsave(path, a, check_contrast=False)
    return path.read_bytes()


class FakeServer:
    """Stands in for pooch's HTTP downloader: serves PNG bytes or raises scripted errors.

    ``failures[name]`` is a list of exceptions (or factories) raised by the first calls
    for that file; ``hook(name)`` runs before each successful transfer.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files, self.failures, self.calls, self.threads = dict(files), {}, [], []
        self.hook = None
        self.lock = threading.Lock()

    def __call__(self, url, output_file, pooch):
        name = url.rsplit("/", 1)[1]
        with self.lock:
            self.calls.append(name)
            self.threads.append(threading.current_thread().name)
            pending = self.failures.get(name)
            err = pending.pop(0) if pending else None
        if err is not None:
            raise err() if callable(err) else err
        if self.hook:
            self.hook(name)
        with open(output_file, "wb") as f:
            f.write(self.files[name])


def _http_error(status: int, retry_after: str | None = None, url: str = f"{HOST}/img0.png"):
    def make():
        r = requests.Response()
        r.status_code, r.url = status, url
        if retry_after is not None:
            r.headers["Retry-After"] = retry_after
        return requests.HTTPError(f"{status} Client Error for url: {url}", response=r)
    return make


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """A fake registered set ``FakeSet`` of N gray PNGs, a fake server, no mirror, instant sleeps."""
    import pooch
    import pooch.core

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(5 + i, 7), dtype=np.uint8) for i in range(N)]
    files = {f"img{i}.png": _png(a, tmp_path) for i, a in enumerate(arrays)}
    entries = [registry.Entry(file=f"{i:02d}.png", width=7, height=5 + i, channels=1,
                              sha256=hashlib.sha256(files[f"img{i}.png"]).hexdigest(),
                              url=f"{HOST}/img{i}.png", source_sha256=None, pixel_sha256=None)
               for i in range(N)]
    ds = registry.Dataset("fakeset", "FakeSet", "test", 1, "a fake set")
    real_entries = registry._entries
    monkeypatch.setattr(registry, "_entries", lambda folder: entries if folder == "FakeSet" else real_entries(folder))
    monkeypatch.setitem(registry.DATASETS, "fakeset", ds)

    empty = tmp_path / "mirror"
    empty.mkdir()
    monkeypatch.setenv("DENOISE_LIB_DATA", str(empty))
    monkeypatch.setattr(registry, "mirror_dirs", lambda: [])
    monkeypatch.setenv("DENOISE_LIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DENOISE_PROGRESS", raising=False)
    monkeypatch.delenv("DENOISE_LIB_DOWNLOAD_WORKERS", raising=False)

    server = FakeServer(files)
    monkeypatch.setattr(pooch, "retrieve", pooch.core.retrieve)  # undo conftest's no-download stub
    monkeypatch.setattr(pooch.core, "choose_downloader", lambda url, progressbar=False: server)
    sleeps = []
    monkeypatch.setattr(registry, "_sleep", sleeps.append)

    class Fake:
        pass

    f = Fake()
    f.ds, f.entries, f.arrays, f.server, f.sleeps = ds, entries, arrays, server, sleeps
    f.cache = tmp_path / "cache" / "FakeSet"
    return f


def _equal(got, want):
    return len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


@pytest.mark.parametrize("api", ["fetch", "fetch_many"])
def test_transient_failures_are_retried_with_exponential_backoff(fake, api):
    fake.server.failures["img0.png"] = [requests.ConnectionError("reset"), requests.Timeout("slow")]
    e = fake.entries[0]
    got = registry.fetch(fake.ds, e) if api == "fetch" else registry.fetch_many(fake.ds, [e])[0]
    assert fake.server.calls == ["img0.png"] * 3
    assert len(fake.sleeps) == 2
    assert 1 <= fake.sleeps[0] <= 1 + registry.JITTER and 2 <= fake.sleeps[1] <= 2 * (1 + registry.JITTER)
    assert np.array_equal(got, fake.arrays[0])
    assert (fake.cache / "img0.png").is_file()


@pytest.mark.parametrize("status", [429, 403])
def test_persistent_rate_limit_gives_the_what_to_do_message(fake, status):
    fake.server.failures["img0.png"] = [_http_error(status)] * registry.ATTEMPTS
    with pytest.raises(DataError) as e:
        registry.fetch_many(fake.ds, fake.entries[:1])
    msg = str(e.value)
    assert "rate-limited" in msg and "raw.githubusercontent.com" in msg
    assert "DENOISE_LIB_DATA" in msg and "<folder>/FakeSet/00.png" in msg
    assert "DENOISE_LIB_CACHE" in msg and "Google Drive" in msg
    assert "run again" in msg and f"{registry.ATTEMPTS} attempts" in msg
    assert fake.server.calls == ["img0.png"] * registry.ATTEMPTS
    assert len(fake.sleeps) == registry.ATTEMPTS - 1


def test_retry_after_is_honoured_and_capped(fake, monkeypatch):
    monkeypatch.setattr(registry, "ATTEMPTS", 3)
    fake.server.failures["img0.png"] = [_http_error(429, "7"), _http_error(503, "3600")]
    assert np.array_equal(registry.fetch_many(fake.ds, fake.entries[:1])[0], fake.arrays[0])
    assert fake.sleeps[0] == pytest.approx(7) and fake.sleeps[1] == registry.MAX_RETRY_AFTER


def test_a_403_from_another_host_is_not_retried(fake, monkeypatch):
    other = "https://example.org/files/img0.png"
    monkeypatch.setattr(registry, "_entries", lambda folder: [dataclasses.replace(fake.entries[0], url=other)])
    fake.server.failures["img0.png"] = [_http_error(403, url=other)]
    with pytest.raises(DataError) as e:
        registry.fetch_many(fake.ds, fake.ds.entries)
    assert "rate-limited" not in str(e.value) and other in str(e.value)
    assert fake.server.calls == ["img0.png"] and not fake.sleeps


def test_persistent_connection_error_names_url_and_env_var_after_all_attempts(fake, monkeypatch):
    monkeypatch.setattr(registry, "ATTEMPTS", 3)
    fake.server.failures["img1.png"] = [requests.ConnectionError("Name or service not known")] * 3
    with pytest.raises(DataError) as e:
        registry.fetch_many(fake.ds, fake.entries[1:2])
    msg = str(e.value)
    assert fake.entries[1].url in msg and "FakeSet/01.png" in msg
    assert "DENOISE_LIB_DATA" in msg and "3 attempts" in msg and "rate" not in msg
    assert fake.server.calls == ["img1.png"] * 3
    assert [round(s) for s in fake.sleeps] == [1, 2]


def test_not_found_is_not_retried(fake):
    fake.server.failures["img0.png"] = [_http_error(404)]
    with pytest.raises(DataError, match="1 attempt"):
        registry.fetch_many(fake.ds, fake.entries[:1])
    assert fake.server.calls == ["img0.png"] and not fake.sleeps


def test_hash_mismatch_is_not_retried_and_leaves_no_file(fake, tmp_path):
    fake.server.files["img2.png"] = _png(np.zeros((7, 7), dtype=np.uint8), tmp_path)
    fake.cache.mkdir(parents=True)
    (fake.cache / "img2.png").write_bytes(b"stale")  # a corrupt earlier download
    with pytest.raises(DataError, match="does not match its sha256"):
        registry.fetch_many(fake.ds, fake.entries[2:])
    assert fake.server.calls == ["img2.png"] and not fake.sleeps
    assert not (fake.cache / "img2.png").exists()


def test_one_progress_bar_per_set_and_none_when_cached(fake, capfd, monkeypatch):
    import pooch

    logged = []
    handler = logging.Handler()
    handler.emit = logged.append
    monkeypatch.setattr(pooch.get_logger(), "handlers", [handler])
    got = data.load_dataset("fakeset")
    err = capfd.readouterr().err
    assert "FakeSet: downloading 3 files" in err and "3/3" in err
    assert not logged  # pooch's per-file log lines are silenced
    assert [tuple(t.shape) for t in got] == [(1, 1, 5 + i, 7) for i in range(N)]
    data.load_dataset("fakeset")
    assert capfd.readouterr().err == ""


def test_progress_bar_off_with_denoise_progress_0(fake, capfd, monkeypatch):
    monkeypatch.setenv("DENOISE_PROGRESS", "0")
    registry.fetch_many(fake.ds, fake.entries)
    assert "downloading" not in capfd.readouterr().err
    assert len(fake.server.calls) == N


def test_downloads_run_in_parallel_and_keep_entry_order(fake):
    barrier = threading.Barrier(N, timeout=10)
    fake.server.hook = lambda name: barrier.wait()  # breaks (and fails the test) unless N run at once
    got = registry.fetch_many(fake.ds, fake.entries[::-1], workers=N)
    assert _equal(got, fake.arrays[::-1])
    assert len(set(fake.server.threads)) == N


def test_workers_default_comes_from_the_environment(fake, monkeypatch):
    monkeypatch.setenv("DENOISE_LIB_DOWNLOAD_WORKERS", "1")
    registry.fetch_many(fake.ds, fake.entries)
    assert len(set(fake.server.threads)) == 1
    monkeypatch.delenv("DENOISE_LIB_DOWNLOAD_WORKERS")
    fake.server.calls.clear(), fake.server.threads.clear()
    for p in fake.cache.iterdir():
        p.unlink()
    barrier = threading.Barrier(N, timeout=10)
    fake.server.hook = lambda name: barrier.wait()
    registry.fetch_many(fake.ds, fake.entries)  # default 8 workers ≥ N
    assert len(set(fake.server.threads)) == N


def test_a_filled_cache_needs_no_download(fake):
    first = registry.fetch_many(fake.ds, fake.entries)
    assert sorted(fake.server.calls) == [f"img{i}.png" for i in range(N)]
    fake.server.calls.clear()
    registry._verified.clear()  # a new session: files are re-hashed, not re-downloaded
    fake.server.failures = {f"img{i}.png": [RuntimeError("offline")] for i in range(N)}
    assert _equal(registry.fetch_many(fake.ds, fake.entries), first)
    assert _equal(data.load_dataset("fakeset", limit=2), [as_image(a) for a in first[:2]])
    assert fake.server.calls == []


def test_a_corrupt_cached_file_is_downloaded_again(fake):
    registry.fetch_many(fake.ds, fake.entries[:1])
    (fake.cache / "img0.png").write_bytes(b"garbage")
    registry._verified.clear()
    assert np.array_equal(registry.fetch_many(fake.ds, fake.entries[:1])[0], fake.arrays[0])
    assert fake.server.calls == ["img0.png", "img0.png"]


def test_mirror_files_are_read_and_only_the_rest_downloaded(fake, monkeypatch, tmp_path, capfd):
    mirror = tmp_path / "mirror"
    (mirror / "FakeSet").mkdir()
    (mirror / "FakeSet" / "00.png").write_bytes(fake.server.files["img0.png"])
    monkeypatch.setattr(registry, "mirror_dirs", lambda: [mirror])
    assert _equal(registry.fetch_many(fake.ds, fake.entries), fake.arrays)
    assert sorted(fake.server.calls) == ["img1.png", "img2.png"]
    assert "FakeSet: downloading 2 files" in capfd.readouterr().err


@pytest.mark.parametrize("workers, env", [(0, None), (-2, None), (1.5, None), (None, "0"), (None, "many")])
def test_invalid_worker_count_raises_value_error(fake, monkeypatch, workers, env):
    if env is not None:
        monkeypatch.setenv("DENOISE_LIB_DOWNLOAD_WORKERS", env)
    with pytest.raises(ValueError, match="DENOISE_LIB_DOWNLOAD_WORKERS" if env else "workers"):
        registry.fetch_many(fake.ds, fake.entries, workers=workers)
    assert fake.server.calls == []
