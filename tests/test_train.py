"""The training loop: exact resume, checkpoint contents, budgets, schedule, learning, timing."""
from __future__ import annotations

import math

import pytest
import torch

from imagehelpers import random_images, smooth_images
from denoise_lib.data import TrainingSet
from denoise_lib.methods.n2c import Noise2Clean
from denoise_lib.methods.n2n import Noise2Noise
from denoise_lib.models import UNet
from denoise_lib.train import BUDGET_ENV, Budget, History, bare_step_ms, fit

TINY = Budget("custom", steps=8, seconds=None, batch_size=2, patch_size=16, lr=1e-3)
CHECKPOINT_KEYS = {"format", "method", "optimizer", "schedule", "config", "sampler", "generator", "log", "sums", "count"}


def make_method(cls, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(UNet(1, features=8, depth=2))


def training_set(kind, seed=0):
    return TrainingSet.from_clean(random_images(4, size=(48, 48), seed=seed), "gaussian:25", kind, seed=seed)


def losses(h: History) -> list[float]:
    return h.series("loss")[1]


@pytest.mark.parametrize("cls,kind", [(Noise2Noise, "pairs"), (Noise2Clean, "clean")])
def test_resumed_run_reproduces_the_uninterrupted_run(tmp_path, cls, kind):
    data = training_set(kind)
    a = make_method(cls)
    ha = fit(a, data, TINY, seed=3, device="cpu", checkpoint=tmp_path / "a.pt", log_every=1, progress=False)
    assert ha.steps == 8 and len(losses(ha)) == 8

    b1 = make_method(cls)
    h1 = fit(b1, data, TINY, seed=3, device="cpu", checkpoint=tmp_path / "b.pt", until=4, log_every=1,
             progress=False)
    assert h1.steps == 4 and losses(h1) == losses(ha)[:4]
    b2 = make_method(cls, seed=99)  # a fresh object with different initial weights
    hb = fit(b2, data, TINY, seed=3, device="cpu", checkpoint=tmp_path / "b.pt", log_every=1, progress=False)
    assert hb.steps == 8
    assert losses(hb) == losses(ha)  # exact equality, step by step
    assert hb.series("lr") == ha.series("lr")
    sa, sb = a.state_dict(), b2.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k

    # a finished checkpoint does not train further
    b3 = make_method(cls, seed=5)
    hc = fit(b3, data, TINY, seed=3, device="cpu", checkpoint=tmp_path / "b.pt", log_every=1, progress=False)
    assert hc.steps == 8 and losses(hc) == losses(ha)
    assert all(torch.equal(v, b3.state_dict()[k]) for k, v in sa.items())


def test_checkpoint_loads_with_weights_only_and_holds_the_state(tmp_path):
    data = training_set("pairs")
    m = make_method(Noise2Noise)
    fit(m, data, TINY, seed=0, device="cpu", checkpoint=tmp_path / "c.pt", until=3, progress=False)
    state = torch.load(tmp_path / "c.pt", weights_only=True, map_location="cpu")
    assert CHECKPOINT_KEYS <= set(state)
    assert state["config"]["method"] == "n2n" and state["config"]["seed"] == 0
    assert state["config"]["budget"]["steps"] == 8
    assert state["schedule"]["step"] == 3
    assert set(state["method"]) == set(m.state_dict())
    assert state["generator"].dtype == torch.uint8 and state["generator"].device.type == "cpu"
    assert isinstance(state["sampler"]["generator"], torch.Tensor)
    assert not (tmp_path / "c.pt.tmp").exists()


def test_checkpoint_of_another_method_raises(tmp_path):
    fit(make_method(Noise2Noise), training_set("pairs"), TINY, device="cpu", checkpoint=tmp_path / "n2n.pt",
        until=1, progress=False)
    with pytest.raises(ValueError, match="method: checkpoint 'n2n', now 'n2c'"):
        fit(make_method(Noise2Clean), training_set("clean"), TINY, device="cpu",
            checkpoint=tmp_path / "n2n.pt", progress=False)


def test_fit_refuses_data_the_method_may_not_see():
    with pytest.raises(ValueError):
        fit(make_method(Noise2Clean), training_set("single"), TINY, device="cpu", progress=False)


def test_fit_refuses_a_channel_mismatch():
    rgb = TrainingSet.from_clean(random_images(2, size=(20, 20), channels=3), "gaussian:25", "pairs")
    with pytest.raises(ValueError, match="channel"):
        fit(make_method(Noise2Noise), rgb, TINY, device="cpu", progress=False)


def test_noise2noise_never_sees_clean_images():
    seen = []

    class Spy(Noise2Noise):
        def loss(self, batch):
            seen.append(batch.clean)
            return super().loss(batch)

    pairs = TrainingSet.from_clean(random_images(2, size=(20, 20)), "gaussian:25", "pairs")
    fit(Spy(UNet(1, features=4, depth=1)), pairs, TINY.replace(steps=2), device="cpu", progress=False)
    assert seen == [None, None]


# --------------------------------------------------------------------------- budgets

@pytest.mark.parametrize("spec,name,steps", [("smoke", "smoke", 3), ("quick", "quick", 1000),
                                              ("full", "full", 20_000), (" Quick ", "quick", 1000)])
def test_budget_presets(spec, name, steps):
    b = Budget.resolve(spec, "cpu")
    assert b.name == name and b.steps == steps and b.seconds is None


@pytest.mark.parametrize("spec", ["180", 180.0, 180])
def test_budget_in_seconds(spec):
    b = Budget.resolve(spec, "cpu")
    assert b.name == "seconds" and b.seconds == 180.0 and b.steps is None
    q = Budget.resolve("quick", "cpu")
    assert (b.batch_size, b.patch_size, b.lr) == (q.batch_size, q.patch_size, q.lr)


def test_budget_default_is_quick_on_cpu_and_env_overrides(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert Budget.resolve(None, "cpu").name == "quick"
    monkeypatch.setenv(BUDGET_ENV, "smoke")
    assert Budget.resolve(None, "cpu").name == "smoke"
    monkeypatch.setenv(BUDGET_ENV, "42")
    assert Budget.resolve(None, "cpu").seconds == 42.0
    # an explicit spec wins over the environment
    assert Budget.resolve("full", "cpu").name == "full"


def test_budget_passes_a_budget_through():
    assert Budget.resolve(TINY) is TINY


@pytest.mark.parametrize("bad", ["fast", "", "smoke2", "0", 0, -5, "-1", "nan", "inf"])
def test_bad_budgets_raise(bad):
    with pytest.raises(ValueError):
        Budget.resolve(bad, "cpu")


def test_bad_env_budget_raises(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "turbo")
    with pytest.raises(ValueError, match="turbo"):
        Budget.resolve(None, "cpu")


def test_learning_rate_schedule_endpoints_and_monotonicity():
    b = Budget.resolve("quick", "cpu")
    assert b.lr_at(0) == pytest.approx(b.lr)
    assert b.lr_at(1) == pytest.approx(b.lr_final_frac * b.lr)
    assert b.lr_at(0.5) == pytest.approx(b.lr * (b.lr_final_frac + (1 - b.lr_final_frac) / 2))
    vals = [b.lr_at(p / 20) for p in range(21)]
    assert all(x > y for x, y in zip(vals, vals[1:]))


def test_progress_and_done():
    b = Budget("t", steps=10, seconds=100.0, batch_size=1, patch_size=8, lr=1.0)
    assert b.progress(5, 10.0) == 0.5 and b.progress(2, 70.0) == pytest.approx(0.7)
    assert b.progress(50, 0.0) == 1.0
    assert not b.done(9, 99.0) and b.done(10, 0.0) and b.done(0, 100.0)


def test_logged_learning_rate_follows_the_schedule():
    h = fit(make_method(Noise2Noise), training_set("pairs"), TINY, device="cpu", log_every=1, progress=False)
    steps, lrs = h.series("lr")
    assert steps == list(range(1, 9))
    assert lrs == [pytest.approx(TINY.lr_at(s / 8)) for s in range(8)]


def test_log_every_averages_intervals():
    h = fit(make_method(Noise2Noise), training_set("pairs"), TINY, device="cpu", log_every=3, progress=False)
    assert h.series("loss")[0] == [3, 6, 8]
    assert all(set(r) >= {"step", "lr", "loss", "mse"} for r in h.log)


# --------------------------------------------------------------------------- learning and timing

def test_noise2clean_learns_on_smooth_images():
    data = TrainingSet.from_clean(smooth_images(4, size=(48, 48), seed=1), "gaussian:25", "clean", seed=0)
    m = make_method(Noise2Clean)
    budget = Budget("custom", steps=40, seconds=None, batch_size=4, patch_size=24, lr=3e-3)
    h = fit(m, data, budget, seed=0, device="cpu", log_every=5, progress=False)
    _, ls = h.series("loss")
    assert len(ls) == 8 and all(math.isfinite(v) for v in ls)
    assert ls[-1] < 0.5 * ls[0], ls
    assert sum(ls[-3:]) < sum(ls[1:4]), ls  # still decreasing after the first interval


def test_history_timing_is_positive():
    h = fit(make_method(Noise2Noise), training_set("pairs"), TINY.replace(steps=3), device="cpu",
            progress=False)
    assert h.steps == 3 and h.step_ms > 0 and h.seconds > 0


def test_fit_leaves_the_method_in_eval_mode():
    m = make_method(Noise2Noise)
    m.train()
    fit(m, training_set("pairs"), TINY.replace(steps=1), device="cpu", progress=False)
    assert not m.training


def test_bare_step_ms_restores_the_weights_and_global_rng():
    m = make_method(Noise2Noise)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    ms = bare_step_ms(m, training_set("pairs"), TINY, steps=2, device="cpu")
    assert ms > 0
    assert torch.equal(torch.get_rng_state(), rng)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_batches_carry_the_step_and_the_budget_progress():
    seen = []

    class Recorder(Noise2Noise):
        def loss(self, batch):
            seen.append((batch.step, batch.progress))
            return super().loss(batch)

    fit(make_method(Recorder), training_set("pairs"), TINY.replace(steps=4), device="cpu", progress=False)
    assert seen == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75)]
