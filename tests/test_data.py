"""Data: the registry (manifests, mirrors, hashes, offline errors), loaders, noise, training sets, patches."""
from __future__ import annotations

import hashlib
import re
import shutil
import socket

import numpy as np
import pytest
import requests
import torch

from imagehelpers import make_mirror, random_images
from denoise_lib import data
from denoise_lib.data import PatchSampler, TrainingSet, registry
from denoise_lib.data.registry import DATASETS, DataError
from denoise_lib.image import ImageError, read_image
from denoise_lib.noise import Gaussian

SIGMA = 25 / 255

# --------------------------------------------------------------------------- registry

EXPECTED_COUNTS = {"Set12": 12, "BSD68": 68, "CBSD68": 68, "Set14": 14, "BSD300_test": 100,
                   "BSD400": 400, "BSD300_train": 199, "Kodak24": 24, "McMaster": 18}
HEX64 = re.compile(r"[0-9a-f]{64}")


def test_every_expected_set_is_registered():
    assert sorted(d.folder for d in DATASETS.values()) == sorted(EXPECTED_COUNTS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_manifest_rows_urls_and_hashes(name):
    ds = DATASETS[name]
    entries = ds.entries
    assert len(entries) == EXPECTED_COUNTS[ds.folder]
    assert len(set(ds.files)) == len(entries)
    for e in entries:
        assert e.url.startswith("https://raw.githubusercontent.com/"), e.url
        assert HEX64.fullmatch(e.sha256), (e.file, e.sha256)
        for h in (e.source_sha256, e.pixel_sha256):
            assert h is None or HEX64.fullmatch(h), (e.file, h)
        assert e.width > 0 and e.height > 0 and e.channels == ds.channels
        assert e.file.endswith(".png")


def test_registry_names_are_case_insensitive_and_aliases_work():
    assert registry.get("SET12") is DATASETS["set12"]
    assert registry.get("BSD300_test") is DATASETS["bsd300"]
    assert registry.get("kodak") is DATASETS["kodak24"]


def test_unknown_registry_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="set12"):
        registry.get("set13")


def test_mirror_dirs_puts_denoise_lib_data_first(monkeypatch, tmp_path):
    monkeypatch.setenv("DENOISE_LIB_DATA", str(tmp_path))
    dirs = registry.mirror_dirs()
    assert dirs[0] == tmp_path.resolve()
    assert len(dirs) == len(set(dirs))


def test_load_set12_from_the_local_mirror_verifies_sha256(monkeypatch, shared_data):
    monkeypatch.setenv("DENOISE_LIB_DATA", str(shared_data))
    hashed = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda p: hashed.append(p) or real(p))
    imgs = data.load("set12", limit=2)
    assert len(imgs) == 2
    for img, e in zip(imgs, DATASETS["set12"].entries):
        assert img.shape == (1, 1, 256, 256) and img.dtype == torch.float32
        assert 0 <= float(img.min()) and float(img.max()) <= 1
        path = shared_data / "Set12" / e.file
        assert (str(path), e.sha256) in registry._verified
        assert torch.equal(img, read_image(path))
    assert [p.name for p in hashed] == ["01.png", "02.png"]
    # a second load does not hash again
    data.load("set12", limit=1)
    assert len(hashed) == 2


def test_corrupt_mirror_file_raises_data_error_with_both_hashes(monkeypatch, tmp_path, set12_png):
    root = make_mirror(tmp_path, set12_png, corrupt=True)
    monkeypatch.setenv("DENOISE_LIB_DATA", str(root))
    bad = root / "Set12" / "01.png"
    with pytest.raises(DataError) as e:
        data.load_dataset("set12", limit=1)
    msg = str(e.value)
    assert str(bad.resolve()) in msg
    assert DATASETS["set12"].entries[0].sha256 in msg
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in msg
    assert not registry._verified


def test_missing_file_offline_raises_data_error_naming_file_and_env_var(monkeypatch, tmp_path):
    root = tmp_path / "mirror"
    (root / "Set12").mkdir(parents=True)
    monkeypatch.setenv("DENOISE_LIB_DATA", str(root))
    monkeypatch.setattr(registry, "mirror_dirs", lambda: [root])
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise requests.ConnectionError("no network")

    import pooch
    monkeypatch.setattr(pooch, "retrieve", offline)
    monkeypatch.setattr(registry, "_sleep", lambda s: None)
    with pytest.raises(DataError) as e:
        data.load("set12", limit=1)
    msg = str(e.value)
    assert "Set12/01.png" in msg
    assert "DENOISE_LIB_DATA" in msg
    assert str(root) in msg
    assert calls == [DATASETS["set12"].entries[0].url] * registry.ATTEMPTS  # retried, then the message


def test_download_hash_mismatch_raises_data_error(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "mirror_dirs", lambda: [])

    def mismatch(url, *args, **kwargs):
        raise ValueError("SHA256 hash of downloaded file does not match the known hash")

    import pooch
    monkeypatch.setattr(pooch, "retrieve", mismatch)
    with pytest.raises(DataError, match="does not match its sha256"):
        data.load("set12", limit=1)


def test_download_path_passes_the_manifest_hash_to_pooch(monkeypatch, tmp_path, set12_png):
    """A (simulated) download: pooch gets the URL and the sha256 and its file is decoded."""
    monkeypatch.setattr(registry, "mirror_dirs", lambda: [])
    copy = tmp_path / "01.png"
    shutil.copyfile(set12_png, copy)
    seen = {}

    def fake_retrieve(url, known_hash=None, fname=None, path=None, **kwargs):
        seen.update(url=url, known_hash=known_hash)
        return str(copy)

    import pooch
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    (img,) = data.load("set12", limit=1)
    e = DATASETS["set12"].entries[0]
    assert seen == {"url": e.url, "known_hash": f"sha256:{e.sha256}"}
    assert torch.equal(img, read_image(set12_png))


def test_download_with_pixel_hash_is_verified_and_removed_on_mismatch(monkeypatch, tmp_path, shared_data):
    """BSD300_train sources are JPEGs of unpublished hash: decoded pixels are checked instead."""
    monkeypatch.setattr(registry, "mirror_dirs", lambda: [])
    ds = DATASETS["bsd300_train"]
    e0, e1 = ds.entries[0], ds.entries[1]
    good = tmp_path / "good.png"
    shutil.copyfile(shared_data / ds.folder / e0.file, good)
    # a file whose pixels are those of another image, but with the shape of e0
    import skimage.io
    other = skimage.io.imread(shared_data / ds.folder / e0.file)[::-1].copy()
    bad = tmp_path / "bad.png"
    skimage.io.imsave(bad, other, check_contrast=False)
    served = {}

    def fake_retrieve(url, known_hash=None, **kwargs):
        assert known_hash is None  # no published hash for the JPEG
        return str(served["path"])

    import pooch
    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    served["path"] = good
    a = registry.fetch(ds, e0)
    assert a.shape == (e0.height, e0.width, 3) and a.dtype == np.uint8
    served["path"] = bad
    with pytest.raises(DataError, match="pixel_sha256"):
        registry.fetch(ds, e0)
    assert not bad.exists()  # the bad download was removed
    assert e1.pixel_sha256 != e0.pixel_sha256


# --------------------------------------------------------------------------- folders and samples

def test_load_folder_reads_gray_and_rgb_pngs(tmp_path):
    import skimage.io

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(9, 13), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(11, 7, 3), dtype=np.uint8)
    skimage.io.imsave(tmp_path / "a_gray.png", gray, check_contrast=False)
    skimage.io.imsave(tmp_path / "b_rgb.png", rgb, check_contrast=False)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    imgs = data.load_folder(tmp_path)
    assert [tuple(i.shape) for i in imgs] == [(1, 1, 9, 13), (1, 3, 11, 7)]
    assert torch.equal(imgs[0][0, 0], torch.from_numpy(gray.astype(np.float32) / 255))
    assert torch.equal(imgs[1][0], torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1))
    assert [i.shape[1] for i in data.load_folder(tmp_path, channels=1)] == [1, 1]
    assert len(data.load_folder(tmp_path, limit=1)) == 1
    # load() accepts the folder path too
    assert all(torch.equal(a, b) for a, b in zip(data.load(str(tmp_path)), imgs))


def test_load_folder_empty_or_missing_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image files"):
        data.load_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        data.load_folder(tmp_path / "does-not-exist")


def test_load_folder_with_a_corrupt_png_names_it(tmp_path):
    import skimage.io

    skimage.io.imsave(tmp_path / "good.png", np.zeros((4, 4), dtype=np.uint8), check_contrast=False)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(ImageError, match="broken.png"):
        data.load_folder(tmp_path)


def test_load_unknown_name_raises_file_not_found():
    with pytest.raises(FileNotFoundError, match="neither a registered"):
        data.load("nonexistent")


def test_load_limit_must_be_positive():
    with pytest.raises(ValueError):
        data.load("skimage-gray", limit=0)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_sample_images_gray_work_offline(no_network):
    imgs = data.sample_images(channels=1)
    assert len(imgs) == len(data.SKIMAGE_GRAY)
    for img in imgs:
        assert img.ndim == 4 and img.shape[:2] == (1, 1) and img.dtype == torch.float32
        assert 0 <= float(img.min()) and float(img.max()) <= 1


def test_load_skimage_rgb_and_gray_offline(no_network):
    rgb = data.load("skimage-rgb", limit=2)
    assert len(rgb) == 2 and all(i.shape[1] == 3 for i in rgb)
    gray = data.load("skimage", channels=1, limit=3)
    assert len(gray) == 3 and all(i.shape[1] == 1 for i in gray)


def test_sample_images_unknown_name():
    with pytest.raises(ValueError, match="no image"):
        data.sample_images(["not_an_image"])


# --------------------------------------------------------------------------- add_noise

def test_add_noise_is_reproducible_image_by_image():
    a, b, c = random_images(3, size=(16, 16))
    big = torch.rand((1, 1, 30, 20), generator=torch.Generator().manual_seed(5))
    first = data.add_noise([a, b, c], "gaussian:25", seed=3)
    again = data.add_noise([a, b, c], "gaussian:25", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    # image i's noise does not depend on the images before (or after) it
    other = data.add_noise([big, b], "gaussian:25", seed=3)
    assert torch.equal(other[1], first[1])
    assert torch.equal(data.add_noise([a], "gaussian:25", seed=3)[0], first[0])
    # different seed, different noise; different index, different noise
    assert not torch.equal(data.add_noise([a, b, c], "gaussian:25", seed=4)[1], first[1])
    same_twice = data.add_noise([a, a], "gaussian:25", seed=3)
    assert not torch.equal(same_twice[0], same_twice[1])


def test_add_noise_accepts_models_and_keeps_shapes():
    imgs = random_images(2, size=(8, 12), channels=3)
    out = data.add_noise(imgs, Gaussian(0.1), seed=0)
    assert [o.shape for o in out] == [i.shape for i in imgs]


# --------------------------------------------------------------------------- TrainingSet

@pytest.fixture
def clean4():
    return random_images(4, size=(48, 48), seed=11)


def test_single_set_holds_no_clean_images(clean4):
    ts = TrainingSet.from_clean(clean4, "gaussian:25", "single", seed=1)
    assert ts.kind == "single" and ts.clean is None and ts.target is None
    assert len(ts.noisy) == 4 and ts.channels == 1
    assert isinstance(ts.noise, Gaussian)


def test_pairs_are_two_independent_draws(clean4):
    ts = TrainingSet.from_clean(clean4, "gaussian:25", "pairs", seed=1)
    assert ts.clean is None and len(ts.target) == 4
    d = torch.cat([(t - y).flatten() for y, t in zip(ts.noisy, ts.target)]).double()
    n = d.numel()
    var = 2 * SIGMA ** 2
    assert abs(float(d.var()) - var) < 5 * var * (2 / n) ** 0.5
    assert abs(float(d.mean())) < 5 * (var / n) ** 0.5
    for y, t, x in zip(ts.noisy, ts.target, clean4):
        assert not torch.equal(y, t)
        # both are noisy observations of the same clean image
        assert abs(float((y - x).std()) - SIGMA) < 0.1 * SIGMA
        assert abs(float((t - x).std()) - SIGMA) < 0.1 * SIGMA


def test_clean_set_holds_the_clean_images(clean4):
    ts = TrainingSet.from_clean(clean4, "gaussian:25", "clean", seed=1)
    assert ts.target is None
    assert all(torch.equal(a, b) for a, b in zip(ts.clean, clean4))


def test_first_noisy_draw_is_identical_across_kinds(clean4):
    sets = [TrainingSet.from_clean(clean4, "gaussian:25", k, seed=7) for k in ("single", "pairs", "clean")]
    for i in range(4):
        assert torch.equal(sets[0].noisy[i], sets[1].noisy[i])
        assert torch.equal(sets[0].noisy[i], sets[2].noisy[i])
    other_seed = TrainingSet.from_clean(clean4, "gaussian:25", "single", seed=8)
    assert not torch.equal(other_seed.noisy[0], sets[0].noisy[0])
    # the second draw of seed s is not the first draw of seed s + 1 or s − 1
    for s in (6, 8):
        nxt = TrainingSet.from_clean(clean4, "gaussian:25", "single", seed=s)
        assert not torch.equal(nxt.noisy[0], sets[1].target[0])


def test_for_method_single_drops_clean_images(clean4):
    ts = TrainingSet.from_clean(clean4, "gaussian:25", "clean")
    view = ts.for_method("single")
    assert view.kind == "single" and view.clean is None and view.target is None
    assert all(torch.equal(a, b) for a, b in zip(view.noisy, ts.noisy))
    assert ts.for_method("clean") is ts
    pairs = TrainingSet.from_clean(clean4, "gaussian:25", "pairs")
    assert pairs.for_method("single").target is None


@pytest.mark.parametrize("kind,requires", [("single", "clean"), ("single", "pairs"), ("pairs", "clean"),
                                           ("clean", "pairs")])
def test_a_set_cannot_serve_a_method_needing_more(clean4, kind, requires):
    ts = TrainingSet.from_clean(clean4, "gaussian:25", kind)
    with pytest.raises(ValueError, match=requires):
        ts.for_method(requires)


@pytest.mark.parametrize("kind", ["single", "pairs"])
def test_self_supervised_sets_never_pass_clean_images_on(clean4, kind):
    """The protocol: only "clean" sets may hand clean images to a method.

    A set built by hand with ``clean=`` but another kind must either be refused or
    drop them: here neither the view for the method nor its batches may carry them.
    """
    noisy = data.add_noise(clean4, "gaussian:25", seed=0)
    target = data.add_noise(clean4, "gaussian:25", seed=1) if kind == "pairs" else None
    try:
        ts = TrainingSet(kind, noisy, target=target, clean=clean4)
    except ValueError:
        return  # refused at construction: fine
    view = ts.for_method(kind)
    leaks = view.clean is not None
    assert not leaks, f"a {kind!r} view of the set still holds clean images"
    leaks = PatchSampler(view, 8, 2, seed=0)().clean is not None
    assert not leaks, f"batches of a {kind!r} set carry clean patches"


def test_training_set_validation(clean4):
    with pytest.raises(ValueError):
        TrainingSet.from_clean(clean4, "gaussian:25", "triples")
    with pytest.raises(ValueError):
        TrainingSet("single", [])
    with pytest.raises(ValueError):
        TrainingSet("pairs", clean4)  # no targets
    with pytest.raises(ImageError):
        TrainingSet("clean", clean4[:1], clean=[clean4[0][..., :10, :10]])


def test_from_noisy_accepts_values_outside_the_unit_range():
    y = torch.full((1, 1, 8, 8), 1.3)
    assert TrainingSet.from_noisy([y]).kind == "single"
    assert TrainingSet.from_noisy([y], [y - 1.5]).kind == "pairs"


# --------------------------------------------------------------------------- PatchSampler

def orientations(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 flips/rotations of an NCHW tensor (computed here, not with the library's helper)."""
    out = []
    for base in (x, x.transpose(-2, -1)):
        for k in range(4):
            out.append(torch.rot90(base, k, dims=(-2, -1)))
    return out


def locate(patch: torch.Tensor, full: torch.Tensor, p: int):
    """All (orientation, row, col) where ``patch`` is a p×p crop of ``full`` under one of 8 transforms."""
    hits = []
    h, w = full.shape[-2:]
    for r in range(h - p + 1):
        for c in range(w - p + 1):
            for t, o in enumerate(orientations(full[..., r:r + p, c:c + p])):
                if torch.equal(o, patch):
                    hits.append((t, r, c))
    return hits


@pytest.mark.parametrize("kind", ["single", "pairs", "clean"])
def test_batch_shapes(kind):
    ts = TrainingSet.from_clean(random_images(3, size=(20, 24), channels=3), "gaussian:25", kind)
    b = PatchSampler(ts, patch_size=8, batch_size=5, seed=0)(step=7)
    assert b.noisy.shape == (5, 3, 8, 8) and b.step == 7
    assert (b.target is not None) == (kind == "pairs")
    assert (b.clean is not None) == (kind == "clean")
    for t in (b.target, b.clean):
        assert t is None or t.shape == b.noisy.shape


def test_clean_patches_are_aligned_with_their_noisy_patches():
    imgs = [torch.rand((1, 1, 10, 12), generator=torch.Generator().manual_seed(21)),
            torch.rand((1, 1, 9, 9), generator=torch.Generator().manual_seed(22))]
    ts = TrainingSet.from_clean(imgs, "gaussian:25", "clean", seed=2)
    residuals = [y - x for y, x in zip(ts.noisy, ts.clean)]
    p = 6
    b = PatchSampler(ts, patch_size=p, batch_size=24, seed=3)()
    seen_t, seen_img = set(), set()
    for k in range(24):
        patch_res = b.noisy[k:k + 1] - b.clean[k:k + 1]
        found = [(i, *h) for i, r in enumerate(residuals) for h in locate(patch_res, r, p)]
        assert len(found) == 1, f"patch {k}: residual found at {found}"
        i, t, r, c = found[0]
        # and the clean patch itself is the same crop under the same transform
        assert torch.equal(orientations(ts.clean[i][..., r:r + p, c:c + p])[t], b.clean[k:k + 1])
        seen_t.add(t)
        seen_img.add(i)
    assert len(seen_t) >= 4 and seen_img == {0, 1}  # augmentation and both images are used


def test_pair_patches_are_aligned_and_swapped_at_random():
    img = torch.rand((1, 1, 10, 11), generator=torch.Generator().manual_seed(23))
    ts = TrainingSet.from_clean([img], "gaussian:25", "pairs", seed=4)
    y1, y2 = ts.noisy[0], ts.target[0]
    p = 5
    b = PatchSampler(ts, patch_size=p, batch_size=16, seed=5)()
    swapped = []
    for k in range(16):
        a, t = b.noisy[k:k + 1], b.target[k:k + 1]
        hits1 = locate(a, y1, p)
        if hits1:
            (o, r, c), = hits1
            assert torch.equal(orientations(y2[..., r:r + p, c:c + p])[o], t)
            swapped.append(False)
        else:
            (o, r, c), = locate(a, y2, p)
            assert torch.equal(orientations(y1[..., r:r + p, c:c + p])[o], t)
            swapped.append(True)
    assert any(swapped) and not all(swapped)


def test_no_augmentation_gives_plain_crops():
    img = torch.rand((1, 1, 9, 10), generator=torch.Generator().manual_seed(24))
    ts = TrainingSet.from_clean([img], "gaussian:25", "clean")
    b = PatchSampler(ts, patch_size=4, batch_size=8, augment=False, seed=0)()
    for k in range(8):
        hits = locate(b.clean[k:k + 1], img, 4)
        assert any(t == 0 for t, _, _ in hits)


def test_images_smaller_than_the_patch_are_padded():
    img = torch.rand((1, 1, 5, 7), generator=torch.Generator().manual_seed(25))
    ts = TrainingSet.from_clean([img], "gaussian:25", "clean")
    b = PatchSampler(ts, patch_size=16, batch_size=4, seed=0)()
    assert b.noisy.shape == (4, 1, 16, 16) and b.clean.shape == (4, 1, 16, 16)
    for k in range(4):
        # the whole (padded) image is the patch: in some orientation its top-left is the image
        assert any(torch.equal(o[..., :5, :7], img) for o in orientations(b.clean[k:k + 1]))
        assert torch.isin(b.clean[k], img).all()


def test_same_seed_same_batch_different_seed_different_batch():
    ts = TrainingSet.from_clean(random_images(2, size=(20, 20)), "gaussian:25", "pairs")
    a = PatchSampler(ts, 8, 4, seed=9)()
    b = PatchSampler(ts, 8, 4, seed=9)()
    c = PatchSampler(ts, 8, 4, seed=10)()
    assert torch.equal(a.noisy, b.noisy) and torch.equal(a.target, b.target)
    assert not torch.equal(a.noisy, c.noisy)


def test_state_dict_reproduces_the_continuation():
    ts = TrainingSet.from_clean(random_images(2, size=(20, 20)), "gaussian:25", "clean")
    s1 = PatchSampler(ts, 8, 4, seed=1)
    s1(), s1()
    state = s1.state_dict()
    want = [s1(), s1()]
    s2 = PatchSampler(ts, 8, 4, seed=12345)
    s2.load_state_dict(state)
    got = [s2(), s2()]
    for w, g in zip(want, got):
        assert torch.equal(w.noisy, g.noisy) and torch.equal(w.clean, g.clean)
    # the state is a plain tensor (checkpoints load with weights_only=True)
    assert isinstance(state["generator"], torch.Tensor)


@pytest.mark.parametrize("patch,batch", [(0, 2), (8, 0)])
def test_patch_sampler_rejects_bad_sizes(patch, batch):
    ts = TrainingSet.from_clean(random_images(1, size=(16, 16)), "gaussian:25", "single")
    with pytest.raises(ValueError):
        PatchSampler(ts, patch, batch)
