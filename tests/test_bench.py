"""The comparison harness, through its command line (denoise_lib.bench.main)."""
from __future__ import annotations

import json
import math

import pytest

from denoise_lib import bench

ROW_KEYS = {"method", "psnr", "ssim", "train_seconds", "steps", "step_ms"}


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity (not JSON; other tools reject them)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "r.json"
    code = bench.main(["--methods", "noisy", "tv", "n2n", "--train", "skimage-gray", "--test", "skimage-gray",
                       "--test-limit", "2", "--train-limit", "2", "--budget", "smoke", "--json", str(out),
                       "--no-progress"])
    assert code == 0
    return strict_json(out.read_text())


def test_json_schema(result):
    assert set(result) == {"config", "results"}
    assert isinstance(result["config"], dict)
    assert [r["method"] for r in result["results"]] == ["noisy", "tv", "n2n"]
    for r in result["results"]:
        assert ROW_KEYS <= set(r), set(r)
        assert isinstance(r["psnr"], float) and math.isfinite(r["psnr"])
        assert isinstance(r["ssim"], float) and -1 <= r["ssim"] <= 1
        assert isinstance(r["steps"], int) and isinstance(r["train_seconds"], (int, float))


def test_config_records_the_run(result):
    cfg = result["config"]
    assert cfg["methods"] == ["noisy", "tv", "n2n"]
    assert cfg["noise"] == "gaussian:25" and cfg["budget"] == "smoke"
    assert cfg["test_images"] == 2 and cfg["train_images"] == 2 and cfg["channels"] == 1
    assert cfg["draws"] == 2 and cfg["seed"] == 0
    assert cfg["budget_resolved"]["steps"] == 3
    assert len(cfg["load_average_at_start"]) == 3 and cfg["library"]["version"]


def test_rows_have_sensible_values(result):
    noisy, tv, n2n = result["results"]
    assert noisy["steps"] == 0 and noisy["step_ms"] is None and noisy["train_seconds"] == 0
    assert 19 < noisy["psnr"] < 22  # σ = 25: 20.2 dB, not clipped before quantisation
    assert tv["psnr"] > noisy["psnr"] + 2
    assert n2n["steps"] == 3
    assert n2n["step_ms"] > 0 and n2n["train_seconds"] > 0 and n2n["bare_step_ms"] > 0
    assert 0.95e6 < n2n["params"] < 1.05e6


def test_unknown_method_exits_2_with_an_error(capsys):
    code = bench.main(["--methods", "noisy", "no-such-method", "--test", "skimage-gray", "--test-limit", "1",
                       "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no-such-method" in err and "error" in err


def test_bad_noise_spec_exits_2(capsys):
    code = bench.main(["--methods", "noisy", "--test", "skimage-gray", "--test-limit", "1",
                       "--noise", "gaussian:abc", "--no-progress"])
    assert code == 2
    assert "gaussian:abc" in capsys.readouterr().err


def test_missing_test_folder_exits_2(capsys, tmp_path):
    code = bench.main(["--methods", "noisy", "--test", str(tmp_path / "nowhere"), "--no-progress"])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.parametrize("noise", ["poisson:30", "speckle:0.1"])
def test_other_noise_models_run(tmp_path, noise):
    out = tmp_path / "r.json"
    code = bench.main(["--methods", "noisy", "tv", "--test", "skimage-gray", "--test-limit", "1",
                       "--draws", "1", "--noise", noise, "--json", str(out), "--no-progress"])
    assert code == 0
    res = strict_json(out.read_text())
    assert res["config"]["noise"] == noise
    noisy, tv = res["results"]
    assert math.isfinite(noisy["psnr"]) and math.isfinite(tv["psnr"])
    assert tv["note"].startswith("σ estimated")
    assert tv["psnr"] > noisy["psnr"]


@pytest.fixture(scope="module")
def laine_pair(tmp_path_factory):
    """laine19-mu and laine19-pme differ only at inference: the harness trains once."""
    import numpy as np
    from skimage import io

    from imagehelpers import smooth_images
    folder = tmp_path_factory.mktemp("imgs")
    for i, x in enumerate(smooth_images(3, size=(40, 52), seed=3)):
        io.imsave(folder / f"im{i}.png", (x[0, 0].numpy() * 255).round().astype(np.uint8), check_contrast=False)
    out = tmp_path_factory.mktemp("bench") / "r.json"
    code = bench.main(["--methods", "n2c", "laine19-mu", "laine19-pme", "noise2same", "--train", str(folder),
                       "--test", str(folder), "--budget", "smoke", "--json", str(out), "--no-progress"])
    assert code == 0
    return {r["method"]: r for r in strict_json(out.read_text())["results"]}


def test_names_differing_only_at_inference_share_one_training_run(laine_pair):
    mu, pme = laine_pair["laine19-mu"], laine_pair["laine19-pme"]
    for k in ("train_seconds", "steps", "step_ms", "bare_step_ms", "params"):
        assert mu[k] == pme[k], k
    assert "same trained network as laine19-mu" in pme["note"]
    assert "same trained network" not in mu["note"]
    assert mu["psnr"] != pme["psnr"]           # the same weights, two different estimates


def test_cost_ratios_are_counted_against_n2c(laine_pair):
    n2c, lai, n2s = laine_pair["n2c"], laine_pair["laine19-mu"], laine_pair["noise2same"]
    assert n2c["flops_vs_n2c"] == pytest.approx(1.0)
    assert n2s["flops_vs_n2c"] == pytest.approx(2.0, rel=0.01)      # two passes of the same U-Net
    assert 5 < lai["flops_vs_n2c"] < 9                               # 4 branches × ≈1.5 + the 1×1 head
    assert "7×" in lai["cost_note"] and "2×" in n2s["cost_note"]
    assert all(r["time_vs_n2c"] > 0 for r in laine_pair.values())


def test_markdown_renders_a_saved_result(result, tmp_path, capsys):
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(result))
    assert bench.main(["--markdown", str(path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["noisy", "tv", "n2n"]
    assert f"{result['results'][2]['psnr']:.2f}" in out and "load average" in out


def test_json_folder_is_created_and_an_unwritable_target_fails_before_the_run(tmp_path, capsys):
    target = tmp_path / "a" / "b"
    target.mkdir(parents=True)
    code = bench.main(["--methods", "noisy", "--test", "skimage-gray", "--test-limit", "1", "--json", str(target)])
    assert code == 2 and "cannot write --json" in capsys.readouterr().err


def test_bad_draws_exit_2(capsys):
    code = bench.main(["--methods", "noisy", "--test", "skimage-gray", "--test-limit", "1", "--draws", "0"])
    assert code == 2 and "draws" in capsys.readouterr().err
