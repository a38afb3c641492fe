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
# An explorer lets you vary the noise type and level on an image yourself.


# %% tags=["hide-input"]
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


# %%
import numpy as np
import torch
from IPython.display import Markdown, display

from denoise_lib import classical, course, data, metrics
from denoise_lib.course import figures_basics as figs
from denoise_lib.course.report import image_grid, show_figure, table
from denoise_lib.course.noise_widget import noise_explorer
from denoise_lib.noise import Gaussian, Poisson, Speckle

cfg = course.setup(seed=0, notebook="00_classical_baselines")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## Test images
#
# Set12 is the standard grayscale test set of DnCNN {cite}`zhang2017dncnn`: seven 256×256
# and five 512×512 images. `data.load` finds it in a local mirror (the folder named by
# `DENOISE_LIB_DATA`, or `../shared/data`) or downloads it from its public source, and
# checks every file against its sha256 hash.
#
# The course's shared set-up, `course.experiment`, loads the test images and draws their
# Gaussian noise once, with the same seed in every notebook: the baselines below are scored
# on exactly the noisy images that the learned methods of the later chapters are scored
# on. The `quick` and `full` budgets use all twelve images (BM3D takes a few seconds per
# image on a CPU); `smoke` uses two 96×96 crops, enough to exercise the code. Nothing is
# trained here, so a single training image is loaded.


# %%
sigma = 25 / 255
ex = course.experiment(cfg, Gaussian(sigma), train_limit=1)  # no training: one training image is enough
clean, noisy = ex.test_clean, ex.test_noisy
course.glue("n_test", len(clean))
print(f"K = {len(clean)} {ex.test_name} images, sizes {sorted({tuple(x.shape[-2:]) for x in clean})}; "
      "one fixed noise draw per image")


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
noisy_examples, variances, ratios = {}, {}, {}
print(f"{'model':<20}{'mean(y−x)':>12}{'var(y−x) / expected':>22}")
for i, (name, model) in enumerate(models.items()):
    y = model(x, torch.Generator().manual_seed(i))
    noisy_examples[name], variances[name] = y, model.variance(x)
    r = (y - x).double()
    ratios[name] = (r.var() / variances[name].double().mean()).item()
    print(f"{name:<20}{r.mean().item():>12.4f}{ratios[name]:>22.2f}")


# %%
for key, name in zip(("gaussian", "poisson", "speckle"), models):
    course.glue(f"var_ratio_{key}", ratios[name])
show_figure(figs.noise_models_figure(x, noisy_examples, variances),
            alt="Cameraman clean and with Gaussian, Poisson and speckle noise; below, the standard deviation "
                "of the noise against the clean intensity: flat for Gaussian noise, growing like a square "
                "root for Poisson noise and linearly for speckle, with the measured points on the formula curves.",
            caption="The three noise models on Cameraman (Set12 01). Bottom: the standard deviation of y − x "
                    "in bins of clean intensity (markers) and the model's square root of Var[y | x] (lines). "
                    "Gaussian noise is the same everywhere; Poisson and speckle noise grow with the signal.",
            glue="noise_models_fig")


# %% [markdown]
# Poisson and speckle noise are **signal dependent**: the dark background of
# *Cameraman* is nearly clean under speckle and only mildly noisy under Poisson, while
# Gaussian noise is the same everywhere. Variance ratios close to 1 in the table, and
# measured points on the formula curves in the figure, are the numerical counterpart of
# the moment derivations on the theory page.
#
# ## Explore: noise type and level
#
# Pick an image, a noise type and its level; the title gives the PSNR of the noisy image
# under the protocol of the next section. In Jupyter or Colab the controls below the
# figure are live; the book shows the explorer's default state.


# %%
shown = data.load("set12", limit=5)
explorer = noise_explorer({"Cameraman (01)": shown[0], "House (02)": shown[1], "Monarch (05)": shown[4]},
                          kind="Gaussian", level=25)
show_figure(explorer.figure(),
            alt="The explorer's default state: Cameraman clean, with Gaussian noise of σ = 25/255, and the "
                "noise itself as a red–blue map that looks the same over dark and bright regions.",
            caption="The noise explorer in its default state (Gaussian noise, σ = 25/255, on Cameraman).")
explorer.show()


# %% [markdown]
# ## The noisy baseline and the 8-bit protocol
#
# For Gaussian noise the expected MSE of the noisy image is $\sigma^2$, hence a PSNR of
# $-20\log_{10}\sigma \approx 20.17$ dB at $\sigma = 25/255$. The protocol clips to
# $[0, 1]$ before scoring, which removes part of the error in saturated regions, so the
# measured value is slightly higher on images with black or white areas.


# %%
psnr_noisy = [metrics.psnr(y, x) for y, x in zip(noisy, clean)]
mse_raw = np.mean([figs.unclipped_mse(y, x) for y, x in zip(noisy, clean)])
baseline = {"psnr_formula": -20 * np.log10(sigma), "psnr_noisy_unclipped": -10 * np.log10(mse_raw),
            "psnr_noisy": np.mean(psnr_noisy)}
for k, v in baseline.items():
    course.glue(k, float(v))
table(["PSNR of the noisy input", "dB"],
      [("formula −20·log10 σ", baseline["psnr_formula"]),
       ("unclipped MSE of the test images", baseline["psnr_noisy_unclipped"]),
       (f"protocol (clip + 8-bit), mean over {len(clean)} images", baseline["psnr_noisy"])],
      digits=[None, 2])


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
# The theory page states each method's formulas. Each is run twice: with the true σ, and
# with σ estimated from the noisy image by the wavelet median-absolute-deviation rule
# {cite}`donoho1994ideal` (scikit-image `estimate_sigma`). The learned methods of the
# later chapters are compared with these numbers.


# %%
sigma_hat = 255 * np.array([classical.estimate_sigma(y)[0] for y in noisy])
for k, v in (("sigma_hat_mean", sigma_hat.mean()), ("sigma_hat_min", sigma_hat.min()),
             ("sigma_hat_max", sigma_hat.max())):
    course.glue(k, float(v))
display(Markdown(f"σ estimate over the {len(noisy)} images: mean {sigma_hat.mean():.2f}/255, range "
                 f"{sigma_hat.min():.2f}–{sigma_hat.max():.2f}/255 (true: 25/255)."))

outputs, scores = {}, {}
for name, fn in classical.CLASSICAL.items():
    for known in (True, False):
        outs = [fn(y, sigma if known else None) for y in noisy]
        outputs[(name, known)] = outs
        scores[(name, known)] = (ex.mean_psnr(outs), ex.mean_ssim(outs))
        tag = "known" if known else "est"
        course.glue(f"psnr_{name}_{tag}", scores[(name, known)][0])
        course.glue(f"ssim_{name}_{tag}", scores[(name, known)][1])
course.glue("ssim_noisy", ex.mean_ssim(noisy))
table(["method", "PSNR, σ known (dB)", "SSIM, σ known", "PSNR, σ estimated (dB)", "SSIM, σ estimated"],
      [("noisy input", baseline["psnr_noisy"], ex.mean_ssim(noisy), None, None)]
      + [(n.upper(), *scores[(n, True)], *scores[(n, False)]) for n in classical.CLASSICAL],
      digits=[None, 2, 4, 2, 4],
      caption=f"Mean over K = {len(clean)} Set12 images, one noise draw each (σ = 25/255):")


# %%
best = max(classical.CLASSICAL, key=lambda n: scores[(n, True)][0])
change = max(abs(scores[(n, True)][0] - scores[(n, False)][0]) for n in classical.CLASSICAL)
course.glue("max_estimate_change", float(change))
display(Markdown(f"Highest mean PSNR with σ known: **{best.upper()}**. Estimating σ instead changes a "
                 f"method's mean PSNR by at most {change:.2f} dB."))
k = min(4, len(clean) - 1)  # Monarch (Set12 05) when it is loaded
crop = (slice(0, 128), slice(0, 128)) if cfg.name != "smoke" else None
panels = {"clean": clean[k], "noisy": noisy[k],
          **{f"{n.upper()} (σ known)": outputs[(n, True)][k] for n in classical.CLASSICAL},
          "BM3D (σ estimated)": outputs[("bm3d", False)][k]}
show_figure(image_grid(panels, reference=clean[k], crop=crop, cols=3),
            alt="A crop of one Set12 test image: clean, noisy, and denoised by BM3D, NLM and TV with σ known, "
                "and by BM3D with σ estimated, each titled with its PSNR on the whole image.",
            caption="The classical baselines on one test image (PSNR on the whole image; the panels show a "
                    "crop in the quick and full budgets).",
            glue="baselines_fig")


# %% [markdown]
# In the published comparisons of every paper in this course BM3D is the strongest of the
# three, and the line above the figure gives the ranking in this run. NLM and TV trade
# detail for smoothness: compare the textured wings in the crops. For Gaussian noise the
# wavelet estimate of σ is close to the truth on natural images (its range is printed
# above the table), so estimating it costs little; this stops being true for
# signal-dependent noise, which is one motivation for learning the denoiser from the data
# instead.
#
# :::{admonition} Try it
# Change `Gaussian(sigma)` in the set-up cell to `Poisson(30.0)` or `Speckle(0.1)`. The
# classical methods can then only be given an *average* σ (read the "σ estimated"
# columns; the "known" ones still pass 25/255). How far do they fall below their
# Gaussian scores?
# :::


# %% tags=["remove-cell"]
course.provenance()
