"""The comparison runner (denoise_lib.compare) and the chapter's readers (denoise_lib.course.comparison).

Tiny images (scikit-image samples cropped to 32×32), two training steps: these check the
bookkeeping — every method listed, resume, provenance, refusal — not the numbers.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from denoise_lib import bench, classical, compare
from denoise_lib.course import comparison

CFG = compare.Configuration("t-gaussian25", "gaussian:25", "skimage-gray", "skimage-gray", 1,
                            validation="skimage-gray")
TINY = compare.Preset("t", steps=2, batch_size=2, patch_size=32, lr=1e-3, eval_every=1, test_images=1,
                      test_crop=32, val_images=1, val_crop=32, train_limit=2, calibration_steps=1, dip_images=1,
                      dip_iterations=2)
FAST = ["noisy", "tv", "n2n", "nb2nb"]


def _fast_bm3d(y, sigma=None):  # BM3D's fixed cost per call dominates on 32×32 crops; TV stands in for it
    return classical.tv(y, sigma)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """Every compared method, once, on the tiny configuration."""
    out = tmp_path_factory.mktemp("cmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(classical.CLASSICAL, "bm3d", _fast_bm3d)
        res = compare.run_configuration(CFG, TINY, out, work=out / "work", log=lambda s: None)
    return out, res


def test_every_registered_method_is_in_the_json_or_listed_with_its_reason(full):
    out, res = full
    on_disk = json.loads((out / f"{CFG.name}.json").read_text())
    assert on_disk["cells"].keys() == res["cells"].keys()
    for name in bench.known_methods():
        cell = on_disk["cells"][name]
        assert cell["method"] == name
        assert cell["status"] in {"done", "not applicable", "excluded", "not run"}, cell   # none "pending"
        if cell["status"] == "done":
            assert math.isfinite(cell["psnr"]["mean"]) and -1 <= cell["ssim"]["mean"] <= 1
        else:
            assert isinstance(cell["reason"], str) and len(cell["reason"]) > 10
    # with one known σ every compared method can run
    assert all(on_disk["cells"][m]["status"] == "done" for m in compare.COMPARED)
    assert set(compare.EXCLUDED) <= set(on_disk["cells"])


def test_a_noise_a_method_cannot_take_is_a_cell_with_the_reason():
    plan = compare.plan(dataclasses.replace(CFG, noise="poisson:30"), TINY)
    for name in ("laine19-mu", "laine19-pme"):
        status, reason = plan[name]
        assert status == "not applicable" and "poisson:30" in reason
    assert plan["nb2nb"] == ("run", "")
    blind = compare.plan(dataclasses.replace(CFG, noise="gaussian:5-50"), TINY)
    assert blind["laine19-pme"][0] == "not applicable" and "σ" in blind["laine19-pme"][1]
    assert compare.plan(CFG, dataclasses.replace(TINY, dip_configs=("other",)))["dip"][0] == "not run"


def test_every_configuration_is_planned_for_every_method():
    assert len(compare.CONFIGURATIONS) == 12
    assert {c.noise for c in compare.CONFIGURATIONS} == set(comparison.NOISES)
    for c in compare.CONFIGURATIONS[:1] + compare.CONFIGURATIONS[-1:]:
        assert set(compare.plan(c, compare.PRESETS["cpu"])) == set(bench.known_methods())


def test_the_json_records_its_provenance_and_settings(full):
    _, res = full
    prov = res["provenance"]
    assert prov["library"]["version"] and "commit" in prov["library"]
    assert prov["library_source"] == compare.source_hash() == res["settings"]["library_source"]
    for k in ("platform", "cpu", "cpu_count", "threads", "torch", "python"):
        assert prov["machine"][k], k
    run = res["runs"][-1]
    for k in ("started", "finished", "wall_seconds", "load_average_before", "load_average_after", "machine"):
        assert k in run, k
    st = res["settings"]
    assert st["budget"]["steps"] == 2 and st["preset"]["seeds"] == [0] and st["test_noise_seeds"] == [1000]
    assert st["noise"] == "gaussian:25" and st["device"] == "cpu"
    for name in compare.COMPARED:
        p = res["cells"][name]["provenance"]
        for k in ("started", "wall_seconds", "load_average_before", "load_average_after", "threads"):
            assert k in p, (name, k)


def test_trained_cells_hold_the_frontier_and_the_cost(full):
    _, res = full
    n2c = res["cells"]["n2c"]
    run = n2c["runs"][0]
    assert run["frontier"]["step"] == [1, 2]
    assert len(run["frontier"]["val_psnr"]) == 2 and all(math.isfinite(v) for v in run["frontier"]["val_psnr"])
    assert run["frontier"]["seconds"][1] > run["frontier"]["seconds"][0] > 0
    assert n2c["bare_step_ms"] > 0 and n2c["step_gflops"] > 0 and n2c["steps"] == 2
    assert res["cells"]["noise2same"]["step_gflops"] == pytest.approx(2 * n2c["step_gflops"], rel=0.01)
    mu, pme = res["cells"]["laine19-mu"], res["cells"]["laine19-pme"]
    assert mu["group"] == pme["group"] == "laine19-mu" and mu["runs"][0]["loss"] == pme["runs"][0]["loss"]
    assert res["cells"]["dip"]["kind"] == "per-image" and res["cells"]["dip"]["test_images"] == 1


class _CountingFit:
    """Stands in for compare.fit: records which method each call trains; can raise a Ctrl-C."""

    def __init__(self, interrupt_on: str | None = None):
        self.calls, self.interrupt_on = [], interrupt_on
        self.real = compare.fit

    def __call__(self, method, *args, **kwargs):
        self.calls.append(method.name)
        if method.name == self.interrupt_on and kwargs.get("until") == 2:
            self.interrupt_on = None
            raise KeyboardInterrupt
        return self.real(method, *args, **kwargs)


def test_an_interrupted_comparison_resumes_without_retraining_finished_cells(tmp_path, monkeypatch):
    quiet = dict(names=FAST, work=tmp_path / "work", log=lambda s: None)
    reference = compare.run_configuration(CFG, TINY, tmp_path / "a", **quiet)

    interrupted = _CountingFit(interrupt_on="nb2nb")     # Ctrl-C inside nb2nb's training
    monkeypatch.setattr(compare, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare.run_configuration(CFG, TINY, tmp_path / "b", **quiet)
    saved = json.loads((tmp_path / "b" / f"{CFG.name}.json").read_text())
    assert [m for m in FAST if saved["cells"].get(m, {}).get("status") == "done"] == ["noisy", "tv", "n2n"]
    assert set(interrupted.calls) == {"n2n", "nb2nb"}

    again = _CountingFit()
    monkeypatch.setattr(compare, "fit", again)
    resumed = compare.run_configuration(CFG, TINY, tmp_path / "b", **quiet)
    assert set(again.calls) == {"nb2nb"}                  # n2n was not retrained
    assert compare.stable_cells(resumed) == compare.stable_cells(reference)
    assert len(resumed["runs"]) == 2 and resumed["runs"][1]["cells"] == ["nb2nb"]

    third = _CountingFit()
    monkeypatch.setattr(compare, "fit", third)
    compare.run_configuration(CFG, TINY, tmp_path / "b", **quiet)
    assert third.calls == []                              # everything finished: nothing runs


def test_stop_after_hook_interrupts_after_whole_cells(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        compare.run_configuration(CFG, TINY, tmp_path, names=["noisy", "tv"], stop_after=1, log=lambda s: None)
    cells = json.loads((tmp_path / f"{CFG.name}.json").read_text())["cells"]
    assert cells["noisy"]["status"] == "done"
    assert cells["tv"]["status"] == "pending" and "rerun" in cells["tv"]["reason"] and "psnr" not in cells["tv"]


def test_a_file_made_with_other_settings_is_refused(full, tmp_path):
    out, _ = full
    for changed, field in ((dataclasses.replace(TINY, steps=3), "steps"),
                           (dataclasses.replace(TINY, seeds=(0, 1)), "seeds"),
                           (dataclasses.replace(TINY, test_images=2), "test_images")):
        with pytest.raises(compare.SettingsMismatch, match=field):
            compare.run_configuration(CFG, changed, out, log=lambda s: None)
    with pytest.raises(compare.SettingsMismatch, match="noise"):
        compare.run_configuration(dataclasses.replace(CFG, noise="gaussian:15"), TINY, out, log=lambda s: None)


def test_settings_mismatch_is_exit_code_2_on_the_command_line(tmp_path, capsys, monkeypatch):
    cfg = compare.CONFIGURATIONS[0]
    path = tmp_path / f"{cfg.name}.json"
    path.write_text(json.dumps({"settings": {"format": "something else"}, "cells": {}, "runs": []}))
    code = compare.main(["--preset", "tiny", "--configs", cfg.name, "--out", str(tmp_path)])
    assert code == 2 and "other settings" in capsys.readouterr().err


def test_command_line_lists_cells_and_rejects_unknown_names(capsys):
    assert compare.main(["--preset", "cpu", "--list", "--configs", "bsd68-poisson30"]) == 0
    out = capsys.readouterr().out
    assert "laine19-pme" in out and "not applicable" in out and "excluded" in out
    assert compare.main(["--preset", "cpu", "--configs", "nowhere"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_estimate_scales_with_the_preset(full):
    _, res = full
    timing = {CFG.name: res}
    small = compare.estimate(TINY, timing, [CFG])["total"]
    big = compare.estimate(dataclasses.replace(TINY, steps=200, eval_every=100), timing, [CFG])["total"]
    assert 0 < small < big


def test_the_chapter_tables_read_the_json(full):
    _, res = full
    results = {CFG.name: res}
    table = comparison.noise_table(results, "gaussian:25")
    for label in ("N2C", "Nb2Nb", "Laine19 posterior mean", "DIP", "BM3D"):
        assert f"| {label} |" in table
    assert f"{res['cells']['n2c']['psnr']['mean']:.2f}" in table
    assert "not run" in table                                   # no colour configuration here
    eq = comparison.equal_time(res)
    assert eq["T"] == pytest.approx(min(c["steps"] * c["bare_step_ms"] / 1000 for c in res["cells"].values()
                                        if c.get("kind") == "trained"))
    assert eq["rows"][eq["cheapest"]]["step"] == 2
    pub = {"sources": {"s": {"paper": "P", "where": "Table 9", "matches": CFG.name, "own_method": "nb2nb"}},
           "numbers": [{"source": "s", "row": "Ours", "method": "nb2nb", "psnr": 30.0},
                       {"source": "s", "row": "N2V", "method": "n2v", "psnr": 29.0}]}
    gaps = comparison.gap_rows(results, pub)
    assert gaps[0]["gap"] == pytest.approx(res["cells"]["nb2nb"]["psnr"]["mean"] - 30.0)
    (o,) = comparison.orderings(results, pub)
    assert o["agree"] == (res["cells"]["nb2nb"]["psnr"]["mean"] > res["cells"]["n2v"]["psnr"]["mean"])
    assert "Nb2Nb" in comparison.pair_sentence(results, CFG.name, "nb2nb", "n2v", 1.0, "P")
    assert "| the data you have |" in comparison.which_method_when(results)


def test_sentences_never_print_a_negative_zero():
    """A slope or difference that rounds to zero reads "+0.00", whatever its sign before rounding."""
    def cell(psnr, curve):
        return {"status": "done", "kind": "trained", "steps": 30, "psnr": {"mean": psnr, "se": 0.1},
                "bare_step_ms": 100.0, "runs": [{"frontier": {"step": [10, 20, 30], "val_psnr": curve,
                                                              "seconds": [1.0, 2.0, 3.0]}}]}
    results = {"c": {"cells": {"a": cell(25.0, [24.0, 24.0, 23.9995]), "b": cell(24.0, [22.0, 23.0, 24.0])}}}
    text = comparison.pair_sentence(results, "c", "a", "b")
    assert "-0.00" not in text and "changed by +0.00" in text and "+10.00 dB per 100 steps" in text
    assert comparison._signed(-0.004) == "+0.00" and comparison._signed(-0.006) == "-0.01"


def _budget_run(steps, gaps, *, files=("a.png", "b.png", "c.png"), seed=0):
    per = {"x": [25.0 + g for g in gaps], "y": [25.0] * len(gaps)}
    cells = {m: {"status": "done", "steps": steps, "runs": [{"seed": seed}],
                 "per_image": {"psnr": [[per[m]]]}} for m in per}
    return {"c": {"cells": cells, "settings": {"test_files": list(files)[:len(gaps)], "test_noise_seeds": [1000]}}}


def test_budget_sentence_compares_the_shared_images_only():
    short = _budget_run(100, [-1.0, -2.0])                       # 2 images
    long = _budget_run(1000, [-0.5, -1.0, +9.0])                 # the third image is not in the short run
    text = comparison.budget_sentence(short, long, "c", "x", "y")
    assert "first 2 test images" in text and "-1.50 dB after 100 steps" in text and "-0.75 dB after 1000" in text
    assert "10× the budget the ordering held and the gap narrowed by 0.75 dB" in text
    assert "reversed" in comparison.budget_sentence(short, _budget_run(1000, [0.5, 0.5]), "c", "x", "y")
    assert "widened" in comparison.budget_sentence(short, _budget_run(1000, [-3.0, -3.0]), "c", "x", "y")
    assert "not compared" in comparison.budget_sentence(short, _budget_run(1000, [0, 0], files=("q", "r")), "c", "x", "y")
    assert "not compared" in comparison.budget_sentence(short, _budget_run(1000, [0, 0], seed=1), "c", "x", "y")
    assert "not both measured" in comparison.budget_sentence(short, {}, "c", "x", "y")


def test_below_noisy_and_dip_sentences_read_the_cells():
    def res(channels, noisy, cells):
        out = {"noisy": {"status": "done", "psnr": {"mean": noisy}}}
        out.update({m: {"status": "done", "kind": "trained", "psnr": {"mean": v}} for m, v in cells.items()})
        return {"settings": {"configuration": {"channels": channels}}, "cells": out}
    results = {"g": res(1, 20.0, {"n2c": 25.0, "svid": 19.0}), "c": res(3, 20.0, {"n2c": 19.5, "svid": 19.0})}
    text = comparison.below_noisy(results)
    assert text.startswith("1 of the 2 trained grey cells end below the noisy input (SVID in 1 of 1")
    assert "2 of the 2 trained colour cells" in text
    results["g"]["cells"]["dip"] = {"status": "done", "steps": 60, "psnr": {"mean": 18.0}, "dip_curves": [
        {"image": "a.png", "iteration": [0, 30, 60], "psnr": [7.0, 21.5, 18.0]}]}
    d = comparison.dip_sentence(results)
    assert "a.png for 60 iterations ends at 18.00 dB, 2.00 dB below the noisy input" in d
    assert "never exceeded 21.50 dB (iteration 30)" in d
    assert comparison.dip_sentence({"c": results["c"]}) == "DIP was not run in these results."


def test_published_numbers_name_their_table_and_match_configurations():
    pub = comparison.published()
    names = {c.name for c in compare.CONFIGURATIONS}
    for sid, src in pub["sources"].items():
        assert src["cite"] and "Table" in src["where"] and src["matches"] in names, sid
        for k in ("test", "noise", "train", "network", "steps"):
            assert src[k], (sid, k)
    known = set(bench.known_methods())
    for n in pub["numbers"]:
        assert n["source"] in pub["sources"] and n["method"] in known and 15 < n["psnr"] < 40, n


def test_quiet_factors_correct_a_timing_run_made_under_load(full):
    _, res = full
    timing = {CFG.name: res}
    n2c = res["cells"]["n2c"]
    reference = {"config": {"test_images": 1, "draws": 1},
                 "results": [{"method": "n2c", "bare_step_ms": n2c["bare_step_ms"] / 4}]}
    f = compare.quiet_factors(timing, reference)
    assert f[1]["n2c"] == pytest.approx(0.25) and f[1]["*"] == pytest.approx(0.25)
    assert f[3]["*"] == f[1]["*"]                                  # no colour timing: the grey factor
    loaded = compare.estimate(TINY, timing, [CFG])["total"]
    assert compare.estimate(TINY, timing, [CFG], scale=f)["total"] == pytest.approx(0.25 * loaded, rel=1e-6)


def test_method_options_reach_the_method_and_the_settings(tmp_path):
    assert compare.parse_options(["noise2same.lambda_inv=2", "noise2same.fraction=0.01", "svid.x=abc"]) == \
        {"noise2same": {"lambda_inv": 2, "fraction": 0.01}, "svid": {"x": "abc"}}
    for bad in ("noise2same", "lambda_inv=2", "noise2same.=2", ".lambda_inv=2"):
        with pytest.raises(ValueError, match="METHOD.KEY=VALUE"):
            compare.parse_options([bad])
    opts = {"noise2same": {"lambda_inv": 2.0}}
    res = compare.run_configuration(CFG, TINY, tmp_path, names=["noise2same"], options=opts,
                                    work=tmp_path / "work", log=lambda s: None)
    assert res["settings"]["method_options"] == opts
    assert res["cells"]["noise2same"]["status"] == "done"
    # the same folder without the option is another setting: refused
    with pytest.raises(compare.SettingsMismatch, match="method_options"):
        compare.run_configuration(CFG, TINY, tmp_path, names=["noise2same"], log=lambda s: None)
    # an unknown keyword or an option for a method that does not run fails before anything trains
    with pytest.raises(ValueError, match="noise2same"):
        compare.plan(CFG, TINY, ["noise2same"], {"noise2same": {"no_such_setting": 1}})
    with pytest.raises(ValueError, match="not run here: svid"):
        compare.plan(CFG, TINY, ["noise2same"], {"svid": {"kappa": 1.0}})


def test_the_option_flag_on_the_command_line(capsys):
    assert compare.main(["--preset", "cpu", "--list", "--configs", "bsd68-gaussian25", "--methods", "noise2same",
                         "--option", "noise2same.lambda_inv=2"]) == 0
    assert compare.main(["--preset", "cpu", "--list", "--configs", "bsd68-gaussian25", "--option", "oops"]) == 2
    assert "METHOD.KEY=VALUE" in capsys.readouterr().err
