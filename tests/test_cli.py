"""The denoise-lib command line (denoise_lib.cli), run in-process with main([...])."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from denoise_lib import cli, methods
from denoise_lib.image import image_info, read_alpha, read_image, write_image
from denoise_lib.methods.n2c import Noise2Clean
from denoise_lib.train import load_checkpoint

FAST = ["--steps", "2", "--batch-size", "2", "--patch-size", "32", "--features", "8", "--no-progress"]


def _smooth(c, h, w, seed):
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    chans = [0.5 + 0.2 * np.sin(2 * np.pi * (g.uniform(0.5, 2) * yy + g.uniform(0.5, 2) * xx + g.uniform()))
             for _ in range(c)]
    return torch.from_numpy(np.stack(chans)[None].astype(np.float32))


def _write_set(folder, *, channels=1, seed=0, sigma=0.1, names=(("a.png", 8), ("b.tif", 16), ("c.png", 16))):
    """Noisy images (and their clean versions in folder/../clean) as 8-bit PNG, 16-bit TIFF, 16-bit PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    clean_dir = folder.parent / (folder.name + "_clean")
    clean_dir.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i, (name, bits) in enumerate(names):
        x = _smooth(channels, 40 + 3 * i, 48 + i, seed + i)
        write_image(clean_dir / name, x, bit_depth=bits)
        write_image(folder / name, (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1), bit_depth=bits)
    return folder, clean_dir


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- train → denoise

def test_train_then_denoise_keeps_format_bit_depth_and_size(tmp_path, capsys):
    noisy, clean = _write_set(tmp_path / "noisy")
    model = tmp_path / "models" / "n2c.pt"  # the folder is created
    code, out, err = _run(capsys, "train", "--method", "n2c", "--noisy", noisy, "--clean", clean,
                          "--out", model, *FAST)
    assert code == 0, err
    assert model.is_file() and not (tmp_path / "models" / "n2c.pt.ckpt").exists()
    state = torch.load(model, weights_only=True)
    assert state["format"] == cli.MODEL_FORMAT and state["method"] == "n2c" and state["channels"] == 1
    assert state["net"] == {"features": 8} and state["version"] and "state_dict" in state
    loaded = cli.load_model(model)
    assert loaded.name == "n2c" and loaded.channels == 1 and not loaded.training

    code, out, err = _run(capsys, "denoise", "--model", model, noisy, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    for f in sorted(noisy.iterdir()):
        res = tmp_path / "out" / f.name
        a, b = image_info(f), image_info(res)
        assert (b.format, b.bit_depth, b.channels, b.size) == (a.format, a.bit_depth, a.channels, a.size)
        assert read_image(res).shape == read_image(f).shape
    y = read_image(noisy / "b.tif")
    expect = loaded.denoise(y).clamp(0, 1)
    torch.testing.assert_close(read_image(tmp_path / "out" / "b.tif"), expect, rtol=0, atol=1 / 65535)


def test_rgb_model_keeps_alpha_and_gray_inputs_stay_gray(tmp_path, capsys):
    noisy, _ = _write_set(tmp_path / "rgb", channels=3, names=(("a.png", 8), ("b.png", 16)))
    model = tmp_path / "nb2nb.pt"
    assert _run(capsys, "train", "--method", "nb2nb", "--noisy", noisy, "--out", model, *FAST)[0] == 0
    inputs = tmp_path / "in"
    inputs.mkdir()
    x = _smooth(3, 33, 45, 7)
    alpha = torch.linspace(0, 1, 33 * 45).reshape(33, 45)
    write_image(inputs / "rgba.png", x, alpha=alpha)
    write_image(inputs / "gray.tif", _smooth(1, 30, 31, 8), bit_depth=16)
    code, _, err = _run(capsys, "denoise", "--model", model, inputs, "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    info = image_info(tmp_path / "out" / "rgba.png")
    assert info.has_alpha and info.channels == 3 and info.bit_depth == 8
    torch.testing.assert_close(read_alpha(tmp_path / "out" / "rgba.png"), read_alpha(inputs / "rgba.png"))
    gray = image_info(tmp_path / "out" / "gray.tif")
    assert gray.channels == 1 and gray.bit_depth == 16 and gray.size == (30, 31)


def test_laine19_model_keeps_its_noise_and_depth(tmp_path, capsys):
    noisy, _ = _write_set(tmp_path / "noisy")
    model = tmp_path / "l19.pt"
    code, _, err = _run(capsys, "train", "--method", "laine19-pme", "--noisy", noisy, "--noise", "gaussian:25",
                        "--out", model, *FAST)
    assert code == 0, err
    m = cli.load_model(model)
    assert m.known_sigma == pytest.approx(25 / 255) and m.net.depth == 2 and m.output == "pme"
    ref = methods.build("laine19-pme", 1, noise="gaussian:25", patch_size=32, net={"features": 8})
    assert ref.state_dict().keys() == m.state_dict().keys()


# --------------------------------------------------------------------------- interrupt and resume

def test_resume_after_interrupt_matches_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    noisy, clean = _write_set(tmp_path / "noisy")
    args = ["train", "--method", "n2c", "--noisy", noisy, "--clean", clean, "--steps", "4", "--batch-size", "2",
            "--patch-size", "32", "--features", "8", "--no-progress"]
    assert _run(capsys, *args, "--out", tmp_path / "whole.pt")[0] == 0

    original, calls = Noise2Clean.loss, []

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Noise2Clean, "loss", interrupted)
    model = tmp_path / "resumed.pt"
    code, _, err = _run(capsys, *args, "--out", model)
    assert code == 130
    assert "interrupted at step 1; run the same command again to resume" in err
    ckpt = tmp_path / "resumed.pt.ckpt"
    assert ckpt.is_file() and not model.exists()
    assert load_checkpoint(ckpt)["schedule"]["step"] == 1
    monkeypatch.setattr(Noise2Clean, "loss", original)

    code, _, err = _run(capsys, *args[:-1], "--seed", "1", "--no-progress", "--out", model)
    assert code == 2 and "another configuration" in err and "seed" in err

    code, out, err = _run(capsys, *args, "--out", model)
    assert code == 0, err
    assert "resuming" in err and "4 steps" in out and not ckpt.exists()
    a = torch.load(tmp_path / "whole.pt", weights_only=True)["state_dict"]
    b = torch.load(model, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("method,extra,flag", [
    ("n2c", [], "--clean"), ("n2n", [], "--second"), ("self2align", [], "--second"),
    ("laine19-pme", [], "--noise"), ("dip", [], "denoise --method dip"), ("nosuch", [], "available")])
def test_train_refuses_what_the_method_cannot_use(tmp_path, capsys, method, extra, flag):
    noisy, _ = _write_set(tmp_path / "noisy")
    code, _, err = _run(capsys, "train", "--method", method, "--noisy", noisy, "--out", tmp_path / "m.pt",
                        *extra, *FAST)
    assert code == 2 and flag in err
    assert not any(p.name.startswith("m.pt") for p in tmp_path.iterdir())


def test_train_refuses_mixed_channel_counts(tmp_path, capsys):
    noisy, _ = _write_set(tmp_path / "noisy")
    write_image(noisy / "colour.png", _smooth(3, 40, 40, 3))
    code, _, err = _run(capsys, "train", "--method", "nb2nb", "--noisy", noisy, "--out", tmp_path / "m.pt", *FAST)
    assert code == 2 and "colour.png" in err and "--channels" in err
    code, _, err = _run(capsys, "train", "--method", "nb2nb", "--noisy", noisy, "--channels", "1",
                        "--out", tmp_path / "m.pt", *FAST)
    assert code == 0, err


def test_train_refuses_unpaired_folders(tmp_path, capsys):
    noisy, clean = _write_set(tmp_path / "noisy")
    (clean / "b.tif").unlink()
    code, _, err = _run(capsys, "train", "--method", "n2c", "--noisy", noisy, "--clean", clean,
                        "--out", tmp_path / "m.pt", *FAST)
    assert code == 2 and "b.tif" in err


def test_denoise_refuses_rgb_images_for_a_gray_model(tmp_path, capsys):
    noisy, _ = _write_set(tmp_path / "noisy")
    model = tmp_path / "m.pt"
    assert _run(capsys, "train", "--method", "nb2nb", "--noisy", noisy, "--out", model, *FAST)[0] == 0
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_image(inputs / "a.png", _smooth(1, 30, 30, 1))
    write_image(inputs / "photo.png", _smooth(3, 30, 30, 2))
    code, _, err = _run(capsys, "denoise", "--model", model, inputs, "--out", tmp_path / "out", "--no-progress")
    assert code == 2 and "photo.png" in err and "3 channels" in err and "1-channel" in err
    assert not (tmp_path / "out").exists()


def test_denoise_refuses_bad_model_files(tmp_path, capsys):
    img = tmp_path / "in" / "a.png"
    img.parent.mkdir()
    write_image(img, _smooth(1, 20, 20, 0))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a torch file" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    future = tmp_path / "future.pt"
    torch.save({"format": "denoise_lib.model/9", "version": "9.0"}, future)
    unknown = tmp_path / "unknown.pt"
    torch.save({"format": cli.MODEL_FORMAT, "method": "n2z", "version": "0.1.0"}, unknown)
    for path, msg in ((bad, "not a readable"), (foreign, "not a denoise_lib model file"),
                      (future, "denoise_lib.model/9"), (unknown, "unknown method 'n2z'"),
                      (tmp_path / "missing.pt", "not found")):
        code, _, err = _run(capsys, "denoise", "--model", path, img, "--out", tmp_path / "out", "--no-progress")
        assert code == 2 and msg in err, err
        with pytest.raises(cli.ModelError, match=msg):
            cli.load_model(path)


def test_denoise_refuses_to_overwrite_its_inputs(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    write_image(folder / "a.png", _smooth(1, 20, 24, 0))
    before = (folder / "a.png").read_bytes()
    code, _, err = _run(capsys, "denoise", "--method", "tv", "--sigma", "25/255", folder, "--out", folder,
                        "--no-progress")
    assert code == 2 and "--overwrite" in err and (folder / "a.png").read_bytes() == before
    code, _, err = _run(capsys, "denoise", "--method", "tv", "--sigma", "0.098", folder, "--out", folder,
                        "--overwrite", "--no-progress")
    assert code == 0, err


def test_denoise_with_a_classical_method(tmp_path, capsys):
    noisy, _ = _write_set(tmp_path / "noisy", names=(("a.png", 8), ("b.tif", 16)))
    code, _, err = _run(capsys, "denoise", "--method", "nlm", "--sigma", "25", noisy, "--out", tmp_path / "o")
    assert code == 2 and "[0, 1] units" in err and "25/255" in err
    code, _, err = _run(capsys, "denoise", "--method", "nlm", "--sigma", "0.1", noisy, "--out", tmp_path / "o",
                        "--no-progress")
    assert code == 0, err
    code, _, err = _run(capsys, "denoise", "--method", "bm3d", noisy / "a.png", noisy / "b.tif",
                        "--out", tmp_path / "out", "--no-progress")
    assert code == 0, err
    assert image_info(tmp_path / "out" / "b.tif").bit_depth == 16


# --------------------------------------------------------------------------- methods, estimate-noise, bench

def test_methods_lists_every_registered_name(capsys):
    code, out, _ = _run(capsys, "methods")
    assert code == 0
    rows = {line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")}
    assert set(methods.available()) <= rows
    assert "--clean" in out and "--second" in out and "--noise" in out


def test_estimate_noise_finds_a_known_sigma(tmp_path, capsys):
    x = _smooth(1, 256, 256, 4)
    y = x + (25 / 255) * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "noisy.png", y.clamp(0, 1), bit_depth=16)
    code, out, _ = _run(capsys, "estimate-noise", tmp_path / "noisy.png")
    assert code == 0
    s01, s255 = (float(v) for v in out.splitlines()[-1].split()[-2:])
    assert s255 == pytest.approx(25, rel=0.2) and s01 == pytest.approx(s255 / 255, abs=1e-4)


def test_bench_is_delegated(monkeypatch):
    from denoise_lib import bench

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 7)
    assert cli.main(["bench", "--methods", "noisy", "--help"]) == 7
    assert seen == [["--methods", "noisy", "--help"]]


def test_usage_errors_return_2_and_module_runs(capsys):
    assert cli.main(["train", "--noisy", "x"]) == 2
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0
    capsys.readouterr()
    r = subprocess.run([sys.executable, "-m", "denoise_lib.cli", "denoise", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--tile" in r.stdout
