# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
# Colab only: install the course library. Colab's own torch and numpy are kept as they are.
# KEEP_ON_DRIVE = True keeps downloaded images and training checkpoints in your Google Drive
# (DENOISE_LIB_CACHE): after a disconnect, running the notebook again resumes its trainings.
import os
import sys
KEEP_ON_DRIVE = False
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "denoise-lib @ git+https://github.com/ssid-course/self-supervised-denoising@main"], check=True)
    if KEEP_ON_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive")
        os.environ["DENOISE_LIB_CACHE"] = "/content/drive/MyDrive/denoise_lib"

# %% [markdown]
# # Noise models and classical baselines on real images
#
# This notebook makes the definitions of {doc}`../book/00_noise_and_metrics` concrete:
#
# 1. it draws Gaussian, Poisson and speckle noise on a real image and checks their
#    first two moments against the formulas;
# 2. it measures the PSNR of the noisy input under the course's 8-bit protocol;
# 3. it runs the three classical denoisers every learned method in this course is
#    compared with — BM3D, non-local means (NLM) and total variation (TV) — on the
#    Set12 test images, with the noise level known and estimated.
#
# Everything runs on the CPU. The budget (`smoke`, `quick`, `full`) only changes how
# many test images are used; set the environment variable `DENOISE_BUDGET` to choose.

# %%
import numpy as np
import torch

from denoise_lib import classical, course, data, metrics
from denoise_lib.course import plots as plot
from denoise_lib.noise import Gaussian, Poisson, Speckle

cfg = course.setup(seed=0, notebook="00_classical_baselines")
torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators

# %% [markdown]
# ## Test images
#
# Set12 is the standard grayscale test set of DnCNN {cite}`zhang2017dncnn`: seven 256×256
# and five 512×512 images. `data.load` finds it in a local mirror (the folder named by
# `DENOISE_LIB_DATA`, or `../shared/data`) or downloads it from its public source, and
# checks every file against its sha256 hash. The `quick` budget uses the seven 256×256
# images (BM3D takes a few seconds per image on a CPU), `full` all twelve, and `smoke`
# a single 64×64 crop, enough to exercise the code.

# %%
n_images = cfg.pick(smoke=1, quick=7, full=12)  # quick: the seven 256×256 images
clean = data.load("set12", limit=n_images)
if cfg.name == "smoke":
    clean = [x[..., 96:160, 96:160] for x in clean]
print(f"K = {len(clean)} images, sizes {sorted({tuple(x.shape[-2:]) for x in clean})}; "
      "R = 1 noise draw per image below")

# %% [markdown]
# ## Three noise models, drawn and measured
#
# Each model is a seeded function of the clean image. We apply the three models to
# *Cameraman* (Set12 `01`) and compare the residual statistics with the theory:
#
# | model | definition | $\mathbb{E}[y\mid x]$ | $\operatorname{Var}[y\mid x]$ |
# |---|---|---|---|
# | Gaussian | $y = x + \sigma n$, $n\sim\mathcal N(0,1)$ | $x$ | $\sigma^2$ |
# | Poisson | $y = \mathrm{Poisson}(\lambda x)/\lambda$ | $x$ | $x/\lambda$ |
# | speckle | $y = x + x n$, $n\sim\mathcal U(-\sqrt{3v},\sqrt{3v})$ | $x$ | $v x^2$ |
#
# The check uses the full 256×256 image in every budget, so its printed output is
# identical in every run (nbval compares it).

# %%
# NBVAL_CHECK_OUTPUT
x = data.load("set12", limit=1)[0]
models = {"Gaussian σ=25/255": Gaussian(25 / 255), "Poisson λ=30": Poisson(30.0), "speckle v=0.1": Speckle(0.1)}
noisy_examples = {}
print(f"{'model':<20}{'mean(y−x)':>12}{'var(y−x) / expected':>22}")
for i, (name, model) in enumerate(models.items()):
    y = model(x, torch.Generator().manual_seed(i))
    noisy_examples[name] = y
    r = (y - x).double()
    expected = model.variance(x).double().mean()
    print(f"{name:<20}{r.mean().item():>12.4f}{(r.var() / expected).item():>22.2f}")

# %%
plot.compare({"clean x": x, **noisy_examples}, reference=x)

# %% [markdown]
# Poisson and speckle noise are **signal dependent**: the dark background of
# *Cameraman* is nearly clean under speckle and only mildly noisy under Poisson, while
# Gaussian noise is the same everywhere. The variance ratio being 1.00 within sampling
# error is the numerical counterpart of the moment derivations on the theory page.
#
# ## The noisy baseline and the 8-bit protocol
#
# For Gaussian noise the expected MSE of the noisy image is $\sigma^2$, hence a PSNR of
# $-20\log_{10}\sigma \approx 20.17$ dB at $\sigma = 25/255$. The protocol clips to
# $[0, 1]$ before scoring, which removes part of the error in saturated regions, so the
# measured value is slightly higher on images with black or white areas.

# %%
sigma = 25 / 255
noisy = data.add_noise(clean, Gaussian(sigma), seed=1)
psnr_noisy = [metrics.psnr(y, x) for y, x in zip(noisy, clean)]
mse_raw = np.mean([torch.mean((y - x) ** 2).item() for y, x in zip(noisy, clean)])
print(f"theory −20·log10 σ        : {-20 * np.log10(sigma):.2f} dB")
print(f"unclipped MSE → PSNR     : {-10 * np.log10(mse_raw):.2f} dB")
print(f"protocol (clip + 8-bit)  : {np.mean(psnr_noisy):.2f} dB (mean over {len(clean)} images)")

# %% [markdown]
# ## Classical denoisers: BM3D, NLM and TV
#
# * **BM3D** {cite}`dabov2007bm3d` groups similar patches into 3-D stacks and shrinks them
#   in a transform domain; we call the `bm3d` package {cite}`makinen2020bm3d`.
# * **NLM** {cite}`buades2005nlm` averages pixels whose surrounding patches look alike
#   (scikit-image, filtering strength $h = 0.8\sigma$).
# * **TV** {cite}`rudin1992tv` minimises $\tfrac12\|u-y\|^2 + w\,\mathrm{TV}(u)$, solved with
#   Chambolle's algorithm {cite}`chambolle2004tv` (scikit-image, $w = \sigma$).
#
# Each is run twice: with the true σ, and with σ estimated from the noisy image by the
# wavelet median-absolute-deviation rule {cite}`donoho1994ideal` (scikit-image
# `estimate_sigma`). The learned methods of the later chapters are compared with these
# numbers.

# %%
sigma_hat = np.array([classical.estimate_sigma(y)[0] for y in noisy])
print(f"σ estimate: mean {255 * sigma_hat.mean():.2f}/255 (true 25/255), "
      f"range {255 * sigma_hat.min():.2f}–{255 * sigma_hat.max():.2f}")

rows, outputs = [], {}
for name, fn in classical.CLASSICAL.items():
    for known in (True, False):
        outs = [fn(y, sigma if known else None) for y in noisy]
        outputs[(name, known)] = outs
        rows.append((name, "known" if known else "estimated",
                     np.mean([metrics.psnr(o, x) for o, x in zip(outs, clean)]),
                     np.mean([metrics.ssim(o, x) for o, x in zip(outs, clean)])))
rows.insert(0, ("noisy", "", np.mean(psnr_noisy), np.mean([metrics.ssim(y, x) for y, x in zip(noisy, clean)])))
print(f"{'method':<8}{'σ':<11}{'PSNR (dB)':>10}{'SSIM':>8}")
for r in rows:
    print(f"{r[0]:<8}{r[1]:<11}{r[2]:>10.2f}{r[3]:>8.4f}")

# %%
k = min(4, len(clean) - 1)  # Monarch (Set12 05) when it is loaded
crop = (slice(0, 128), slice(0, 128)) if cfg.name != "smoke" else None
plot.compare({"clean": clean[k], "noisy": noisy[k],
              **{f"{n.upper()} (σ known)": outputs[(n, True)][k] for n in classical.CLASSICAL}},
             reference=clean[k], crop=crop, size=3.0)

# %% [markdown]
# BM3D is the strongest of the three, as in every paper of this course; NLM and TV
# trade detail for smoothness. With an estimated σ the results barely change for
# Gaussian noise, because the wavelet estimator is accurate on natural images — this
# stops being true for signal-dependent noise, which is one motivation for learning
# the denoiser from the data instead.
#
# :::{admonition} Try it
# Change `Gaussian(sigma)` above to `Poisson(30.0)` or `Speckle(0.1)`: the classical
# methods then only receive an estimated, *average* σ, and the gap to the learned
# methods of Parts 1–8 widens.
# :::

# %%
course.provenance()
