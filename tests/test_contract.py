"""The method contract, for every registered method.

* build → a few training steps with ``fit`` → ``denoise`` → checkpoint → resume, on
  every available device (CPU always, CUDA when present);
* the library leaves torch's global RNG untouched (``fit``, ``denoise``, the harness);
* no host round trip inside any method's ``loss`` (``item``/``cpu``/``numpy``/``tolist``
  and the Python conversions raise);
* a ``KeyboardInterrupt`` at each phase of a step (during the loss, right after the
  optimizer update, during the checkpoint write) resumes bit-identically on the CPU;
* a configuration mismatch, a bad path and a corrupt or foreign checkpoint are refused
  with a clear error before any training.
"""
from __future__ import annotations

import os
import signal

import pytest
import torch

from imagehelpers import host_round_trip_guard, smooth_images
from denoise_lib import bench, methods
from denoise_lib.methods import Method, PerImageMethod
from denoise_lib.train import Budget, CheckpointError, fit

NOISE = "gaussian:25"
NET = {"features": 8, "depth": 2}
STEPS = 6
TINY = Budget("test", steps=STEPS, seconds=None, batch_size=2, patch_size=32, lr=1e-3)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
#: one name per distinct training run (names that differ only at inference train alike)
TRAINED = sorted({methods.training_key(n): n for n in methods.available()
                  if issubclass(methods.method_class(n), Method)}.values())
PER_IMAGE = [n for n in methods.available() if issubclass(methods.method_class(n), PerImageMethod)]
IMAGES = smooth_images(3, size=(48, 56), seed=4)


def make(name, seed=0, **kwargs):
    return methods.build(name, channels=1, noise=NOISE, patch_size=TINY.patch_size, net=NET, seed=seed, **kwargs)


def train_set(name):
    return methods.method_class(name).training_set(IMAGES, NOISE, seed=0)


def weights(m):
    return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_registered_name_is_a_method_or_a_per_image_method():
    assert set(TRAINED) | set(PER_IMAGE) <= set(methods.available())
    assert len(PER_IMAGE) >= 2 and len(TRAINED) >= 10
    for n in methods.available():
        assert issubclass(methods.method_class(n), (Method, PerImageMethod)), n


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", TRAINED)
def test_contract_fit_denoise_checkpoint_resume(name, device, tmp_path):
    m = make(name)
    assert m.name == name and isinstance(m.config, dict)
    data = train_set(name)
    ckpt = tmp_path / "run.pt"
    h = fit(m, data, TINY, seed=1, device=device, checkpoint=ckpt, until=3, progress=False)
    assert h.steps == 3 and ckpt.is_file()
    resumed = make(name, seed=7)                       # other initial weights: all come from the file
    h2 = fit(resumed, data, TINY, seed=1, device=device, checkpoint=ckpt, progress=False)
    assert h2.steps == STEPS
    full = make(name)
    h3 = fit(full, data, TINY, seed=1, device=device, progress=False)
    assert h2.series("loss")[1] == pytest.approx(h3.series("loss")[1], rel=1e-4, abs=1e-6)
    y = IMAGES[0][..., :37, :45] + 0.1                 # odd size, values above 1 allowed
    out = resumed.denoise(y)
    assert out.shape == y.shape and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", PER_IMAGE)
def test_per_image_methods_fit_each_image_and_refuse_fit(name):
    m = make(name, iterations=3)
    out = m.denoise(IMAGES[0][..., :30, :33])
    assert out.shape == (1, 1, 30, 33) and torch.isfinite(out).all()
    with pytest.raises(TypeError, match="fitted to each image"):
        fit(m, methods.method_class("n2n").training_set(IMAGES, NOISE), TINY, device="cpu", progress=False)


@pytest.mark.parametrize("name", TRAINED + PER_IMAGE)
def test_global_rng_is_untouched(name):
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    m = make(name, **({"iterations": 2} if name in PER_IMAGE else {}))
    if name in TRAINED:
        fit(m, train_set(name), TINY.replace(steps=2), device="cpu", progress=False)
    m.denoise(IMAGES[1])
    assert torch.equal(torch.get_rng_state(), before)


def test_the_harness_leaves_the_global_rng_untouched():
    torch.manual_seed(99)
    before = torch.get_rng_state()
    bench.run(["noisy", "tv", "n2n", "n2v"], "skimage-gray", "skimage-gray", NOISE, "smoke", train_limit=2,
              test_limit=1, device="cpu", progress=False, log=lambda s: None)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.fixture
def no_host_round_trips(monkeypatch):
    """Inside the ``with`` block, any host round trip raises (tests/imagehelpers.py)."""
    return host_round_trip_guard(monkeypatch)


@pytest.mark.parametrize("name", TRAINED)
def test_no_host_round_trip_inside_loss(name, no_host_round_trips):
    from denoise_lib.data import PatchSampler

    m = make(name).train()
    data = train_set(name).for_method(m.requires)
    batch = PatchSampler(data, TINY.patch_size, TINY.batch_size, seed=0)(step=2)
    batch.progress = 0.3
    with no_host_round_trips:
        loss, logs = m.loss(batch)
    assert loss.requires_grad and loss.ndim == 0
    assert all(isinstance(v, (torch.Tensor, float, int)) for v in logs.values())


# ------------------------------------------------------------------ interrupts

PHASES = ("loss", "after_update", "sigint_during_update", "checkpoint_write")


def _interrupting(monkeypatch, phase, at_step):
    """Make the run raise KeyboardInterrupt once, in ``phase``, at global step ``at_step``."""
    state = {"calls": 0, "fired": False}
    if phase == "loss":
        def wrap(cls):
            real = cls.loss

            def loss(self, batch):
                if not state["fired"] and batch.step == at_step:
                    real(self, batch)               # part of the work is done, then Ctrl-C
                    state["fired"] = True
                    raise KeyboardInterrupt
                return real(self, batch)
            monkeypatch.setattr(cls, "loss", loss)
        return wrap, state
    if phase in ("after_update", "sigint_during_update"):
        real = torch.optim.Adam.step

        def step(self, *a, **k):
            out = real(self, *a, **k)
            state["calls"] += 1
            if not state["fired"] and state["calls"] == at_step + 1:
                state["fired"] = True
                if phase == "after_update":
                    raise KeyboardInterrupt           # raised inside the optimizer call
                os.kill(os.getpid(), signal.SIGINT)   # a real Ctrl-C while the model is updated
            return out
        monkeypatch.setattr(torch.optim.Adam, "step", step)
        return None, state
    real_save = torch.save

    def save(obj, f, *a, **k):
        if not state["fired"] and isinstance(obj, dict) and obj.get("schedule", {}).get("step") == at_step:
            state["fired"] = True
            with open(f, "wb") as fh:
                fh.write(b"partial")                 # a half-written temporary file
            raise KeyboardInterrupt
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(torch, "save", save)
    return None, state


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("name", TRAINED)
def test_interrupt_at_any_phase_resumes_bit_identically(name, phase, tmp_path, monkeypatch):
    data = train_set(name)
    reference = make(name)
    h_ref = fit(reference, data, TINY, seed=2, device="cpu", log_every=1, progress=False)

    ckpt = tmp_path / "run.pt"
    m = make(name)
    wrap, state = _interrupting(monkeypatch, phase, at_step=2)
    if wrap is not None:
        wrap(type(m))
    with pytest.raises(KeyboardInterrupt):
        fit(m, data, TINY, seed=2, device="cpu", checkpoint=ckpt, checkpoint_every=2, log_every=1,
            progress=False)
    assert state["fired"]
    monkeypatch.undo()
    resumed = make(name, seed=11)
    h = fit(resumed, data, TINY, seed=2, device="cpu", checkpoint=ckpt, log_every=1, progress=False)
    assert h.steps == STEPS
    assert h.series("loss") == h_ref.series("loss")
    assert same_weights(weights(resumed), weights(reference))


# ------------------------------------------------------------------ refused before training

@pytest.fixture
def counted(monkeypatch):
    from denoise_lib.methods.n2n import Noise2Noise

    real = Noise2Noise.loss
    counter = {"n": 0}

    def loss(self, batch):
        counter["n"] += 1
        return real(self, batch)
    monkeypatch.setattr(Noise2Noise, "loss", loss)
    return counter


@pytest.mark.parametrize("change,field", [
    (dict(budget=TINY.replace(lr=3e-4)), "budget.lr"),
    (dict(budget=TINY.replace(batch_size=3)), "budget.batch_size"),
    (dict(seed=5), "seed"),
    (dict(images=smooth_images(3, size=(48, 56), seed=5)), "data"),
    (dict(net={"features": 4, "depth": 2}), "architecture"),
])
def test_a_configuration_mismatch_is_refused_before_training(change, field, tmp_path, counted):
    ckpt = tmp_path / "n2n.pt"
    fit(make("n2n"), train_set("n2n"), TINY, seed=0, device="cpu", checkpoint=ckpt, until=2, progress=False)
    counted["n"] = 0
    m = methods.build("n2n", net=change.get("net", NET))
    data = methods.method_class("n2n").training_set(change.get("images", IMAGES), NOISE, seed=0)
    with pytest.raises(CheckpointError, match=field.replace(".", r"\.")) as e:
        fit(m, data, change.get("budget", TINY), seed=change.get("seed", 0), device="cpu", checkpoint=ckpt,
            progress=False)
    assert str(ckpt) in str(e.value)
    assert counted["n"] == 0


def test_other_method_settings_are_refused(tmp_path):
    ckpt = tmp_path / "n2v.pt"
    fit(make("n2v"), train_set("n2v"), TINY, device="cpu", checkpoint=ckpt, until=1, progress=False)
    with pytest.raises(CheckpointError, match=r"settings\.fraction"):
        fit(make("n2v", fraction=0.01), train_set("n2v"), TINY, device="cpu", checkpoint=ckpt, progress=False)


@pytest.mark.parametrize("bad", ["", "FOLDER", "FILE/sub.pt"])
def test_a_bad_checkpoint_path_is_refused_before_training(bad, tmp_path, counted):
    (tmp_path / "FOLDER").mkdir()
    (tmp_path / "FILE").write_text("x")
    path = "" if bad == "" else tmp_path / bad
    with pytest.raises(CheckpointError):
        fit(make("n2n"), train_set("n2n"), TINY, device="cpu", checkpoint=path, progress=False)
    assert counted["n"] == 0


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "foreign"])
def test_a_corrupt_or_foreign_checkpoint_is_refused_naming_the_file(content, tmp_path, counted):
    ckpt = tmp_path / "weird.pt"
    if content == "foreign":
        torch.save({"weights": torch.zeros(3)}, ckpt)
    else:
        ckpt.write_bytes(content)
    with pytest.raises(CheckpointError, match="weird.pt"):
        fit(make("n2n"), train_set("n2n"), TINY, device="cpu", checkpoint=ckpt, progress=False)
    assert counted["n"] == 0


def test_a_truncated_checkpoint_is_refused(tmp_path, counted):
    ckpt = tmp_path / "cut.pt"
    fit(make("n2n"), train_set("n2n"), TINY, device="cpu", checkpoint=ckpt, until=1, progress=False)
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    counted["n"] = 0
    with pytest.raises(CheckpointError, match="cut.pt"):
        fit(make("n2n"), train_set("n2n"), TINY, device="cpu", checkpoint=ckpt, progress=False)
    assert counted["n"] == 0
