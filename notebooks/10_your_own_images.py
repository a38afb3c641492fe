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
# # Denoise your own images
#
# The chapters so far had clean images to score against. With your own data you have
# only noisy images: a folder of microscope frames, telescope exposures or phone
# photographs, no clean reference, and a noise you did not choose. This chapter does what
# you would do with such a folder, with the course's command line `denoise-lib` and the
# library's API:
#
# 1. look at the files and **estimate the noise** (scikit-image's wavelet estimator);
# 2. **train** a self-supervised method (Neighbor2Neighbor, Part 5) on the noisy images
#    themselves, and denoise them; run BM3D and NLM with the estimated σ beside it;
# 3. compare them **without a clean image**, by the J-invariant self-supervised loss of
#    Part 2 — the criterion scikit-image's `calibrate_denoiser` minimises — and check, on
#    images where we do know the clean version, that it ranks the methods as the true
#    error does;
# 4. try it on a real image, the Hubble Deep Field that ships with scikit-image;
# 5. explore methods and strengths interactively (upload your own image in Colab).
#
# The "own" images here are scikit-image's colour photographs with **camera-like noise**:
# Poisson–Gaussian, $\y = \mathrm{Poisson}(\lambda\x)/\lambda + \sigma_r\,\nz$, shot noise
# whose variance grows with the brightness plus a constant read-out noise, saved as 8-bit
# PNG files as a camera would. The clean photographs are used only to check the
# no-reference criterion, never by a method.


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
import os
import tempfile
from pathlib import Path

import numpy as np
import skimage.data
import torch
from IPython.display import display

from denoise_lib import classical, cli, course, data, metrics
from denoise_lib.course import plots as plot
from denoise_lib.course import widgets
from denoise_lib.course.commands import shell
from denoise_lib.course.report import show_figure, table
from denoise_lib.image import as_image, read_image, write_image
from denoise_lib.invariance import j_invariant_predict
from denoise_lib.noise import PoissonGaussian

cfg = course.setup(seed=0, notebook="10_your_own_images")


# %% [markdown]
# ## A folder of noisy photographs
#
# Shot noise with $\lambda = 60$ (a bright pixel, $x = 1$, collects 60 photo-electrons:
# standard deviation $\sqrt{x/\lambda} \approx 0.13$, or 33/255) and read-out noise
# $\sigma_r = 5/255$. The `quick` budget uses crops, so that BM3D and the J-invariant
# criterion run in seconds per image.


# %%
names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"]
side = cfg.pick(smoke=64, quick=256, full=None)
camera = PoissonGaussian(60.0, 5 / 255)
clean = {}
for n in names:
    x = as_image(getattr(skimage.data, n)())
    if side is not None:
        top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
        x = x[..., top:top + side, left:left + side]
    clean[n] = x
noisy_images = data.add_noise(list(clean.values()), camera, seed=cfg.seed)
work = Path(tempfile.mkdtemp(prefix="own-images-"))
os.chdir(work)                       # the commands below use paths relative to this folder
folder = Path("noisy")
folder.mkdir()
for n, y in zip(names, noisy_images):
    write_image(folder / f"{n}.png", y.clamp(0, 1))          # 8-bit PNG, as a camera writes
print(f"{len(names)} noisy {'×'.join(map(str, noisy_images[0].shape[-2:]))} RGB photographs in {folder.name}/; "
      f"noise {camera.spec}")


# %% [markdown]
# ## Estimate the noise
#
# The commands of this notebook are `denoise-lib` command lines, run inside the notebook's
# Python process by `denoise_lib.course.commands.shell`, which prints each command and its
# output as a terminal would. In a terminal, type the same lines without the `$`.
#
# `denoise-lib estimate-noise` prints scikit-image's estimate of the Gaussian noise σ
# (a robust median of the finest wavelet coefficients, Donoho & Johnstone), in the
# library's [0, 1] units and on the 0–255 scale. For signal-dependent noise there is no
# single σ: the estimate is a typical value over the image, larger for bright images.


# %%
shell(f"denoise-lib estimate-noise {folder}")
sigma_hat = float(np.mean([classical.estimate_sigma(read_image(p)).mean() for p in sorted(folder.glob("*.png"))]))
true_sd = float(np.mean([torch.sqrt(camera.variance(x)).mean() for x in clean.values()]))
course.glue("sigma_hat_255", sigma_hat * 255)
course.glue("true_sd_255", true_sd * 255)
print(f"mean estimate {sigma_hat * 255:.1f}/255; true mean noise standard deviation {true_sd * 255:.1f}/255")


# %% [markdown]
# ## Train on the noisy images, then denoise them
#
# Neighbor2Neighbor needs nothing but the noisy images (one draw each), and its
# sub-sampler makes no assumption on the noise except independence between pixels, so
# Poisson–Gaussian noise is fine. The command line takes the folder, trains within the
# budget with a progress bar and a checkpoint (stop it and run it again to resume), and
# writes a model file. `denoise` then keeps each file's format and bit depth.


# %%
budget = cfg.budget_for("nb2nb")
models_dir = (course.run_cache() or work) / "10_your_own_images"
model_file = models_dir / f"nb2nb-{budget.name}-{budget.steps or budget.seconds}.pt"
limit = f"--steps {budget.steps}" if budget.steps else f"--budget {budget.seconds:g}"
shell(f"denoise-lib train --method nb2nb --noisy {folder} {limit} --batch-size {budget.batch_size} "
      f"--patch-size {budget.patch_size} --seed {cfg.seed} --out {model_file}")
shell(f"denoise-lib denoise --model {model_file} {folder} --out nb2nb")
shell(f"denoise-lib denoise --method bm3d --sigma {sigma_hat:.4f} {folder} --out bm3d")
shell(f"denoise-lib denoise --method nlm --sigma {sigma_hat:.4f} {folder} --out nlm")
outputs = {m: {n: read_image(Path(m) / f"{n}.png") for n in names} for m in ("nb2nb", "bm3d", "nlm")}


# %%
crop = (slice(0, 128), slice(0, 128)) if side is None or side > 128 else None
show = "coffee"
plot.compare({"noisy": as_image(read_image(folder / f"{show}.png")),
              **{m: outputs[m][show] for m in outputs}}, crop=crop)


# %% [markdown]
# ## Which is best, without a clean image?
#
# For a J-invariant function $f_J$ (its output at a pixel does not depend on that pixel),
# Part 2 showed $\mathbb E\norm{f_J(\y) - \y}^2 = \mathbb E\norm{f_J(\y) - \x}^2 +
# \mathbb E\norm{\y - \x}^2$ when the noise has zero mean and is independent between
# pixels: the **self-supervised loss** of $f_J$ is its true error plus a constant that
# does not depend on $f$. Any denoiser $f$ becomes J-invariant by masking a grid of pixels
# (`j_invariant_predict`, 4×4 grid, donut replacement), so the loss ranks denoisers —
# learned or classical — from noisy images alone. It ranks their J-invariant versions;
# the plain outputs are usually a little better, by a similar amount for each method.
#
# Here we can check it: the table gives the self-supervised loss next to the true MSE of
# $f_J$ and of $f$, all in units of $10^{-3}$.


# %%
nb2nb = cli.load_model(model_file)
denoisers = {
    "Nb2Nb (trained above)": lambda y, s: nb2nb.denoise(y),
    "BM3D": lambda y, s: classical.bm3d(y, s),
    "NLM": lambda y, s: classical.nlm(y, s),
    "identity (no denoising)": lambda y, s: y,
}
jcrop = cfg.pick(smoke=32, quick=96, full=192)
rows = {}
for name, f in denoisers.items():
    ss, true_j, true_f = [], [], []
    for n, y in zip(names, noisy_images):
        y, x = y[..., :jcrop, :jcrop], clean[n][..., :jcrop, :jcrop]
        fj = j_invariant_predict(lambda z: f(z, sigma_hat), y, grid=4)
        ss.append(float(((fj - y) ** 2).mean()))
        true_j.append(float(((fj - x) ** 2).mean()))
        true_f.append(float(((f(y, sigma_hat) - x) ** 2).mean()))
    rows[name] = (np.mean(ss), np.mean(true_j), np.mean(true_f))
order_ss = sorted(rows, key=lambda k: rows[k][0])
order_true = sorted(rows, key=lambda k: rows[k][1])
print("the self-supervised loss ranks the J-invariant denoisers as their true error does:",
      order_ss == order_true)
psnrs = {m: np.mean([metrics.psnr(outputs[m][n], clean[n]) for n in names]) for m in outputs}
display(table(["denoiser", "self-sup. loss (10⁻³)", "true MSE of f_J (10⁻³)", "true MSE of f (10⁻³)"],
              [[name, a * 1e3, b * 1e3, c * 1e3] for name, (a, b, c) in sorted(rows.items(), key=lambda kv: kv[1][0])],
              digits=[None, 3, 3, 3]))
table(["output (full images)", "mean PSNR (dB, needs the clean images)"],
      [[m, float(p)] for m, p in psnrs.items()], digits=[None, 2])


# %% [markdown]
# The differences between the self-supervised loss and the true error of $f_J$ are all
# close to the same constant, the noise variance, as the identity shows. That is what
# makes the criterion usable on your own data.
#
# ## A real noisy image: the Hubble Deep Field
#
# scikit-image ships a crop of the Hubble Deep Field: real telescope data, with its own
# noise. There is no clean version, and the noise is small: the estimator finds a σ of a
# few grey levels, so denoising it mostly removes faint background grain; by eye the
# effect is subtle. Our Nb2Nb model was trained on much stronger synthetic noise and would
# over-smooth it; BM3D with the estimated σ adapts to the level it is given.


# %%
hubble = as_image(skimage.data.hubble_deep_field())
hubble = hubble[..., :cfg.pick(smoke=64, quick=256, full=None), :cfg.pick(smoke=64, quick=256, full=None)]
sigma_hubble = float(classical.estimate_sigma(hubble).mean())
print(f"Hubble Deep Field crop {tuple(hubble.shape[-2:])}: estimated σ = {sigma_hubble * 255:.2f}/255 "
      f"({sigma_hubble:.4f} in [0, 1] units)")
bm3d_hubble = classical.bm3d(hubble, sigma_hubble)
residual = (hubble - bm3d_hubble)
print(f"BM3D removed a residual of standard deviation {residual.std() * 255:.2f}/255")
plot.compare({"Hubble Deep Field": hubble, f"BM3D, σ = {sigma_hubble * 255:.1f}/255": bm3d_hubble,
              "removed (×8 + ½)": (residual * 8 + 0.5).clamp(0, 1)})


# %% [markdown]
# ## Explore
#
# Pick an image, a method and a strength. BM3D, NLM and TV take the strength as their σ;
# the trained network ignores it (it learned its own). In Jupyter or Colab the controls
# are live and **Upload** adds your own file; the book shows the explorer's default state
# as a figure.


# %%
explorer = widgets.denoise_explorer(
    {**{n: y for n, y in zip(names, noisy_images)}, "hubble_deep_field": hubble},
    {"BM3D": lambda y, s: classical.bm3d(y, s), "NLM": lambda y, s: classical.nlm(y, s),
     "TV": lambda y, s: classical.tv(y, s), "Nb2Nb (trained above)": lambda y, s: nb2nb.denoise(y)},
    sigma=sigma_hat, clean=clean)
show_figure(explorer.figure(),
            alt=f"The denoising explorer in its default state: the noisy image {explorer.image} next to "
                f"its {explorer.method} result.",
            caption="The explorer's default state (the live controls need Jupyter or Colab).")
explorer.show()


# %% [markdown]
# ## On your own data
#
# ```bash
# denoise-lib estimate-noise my_images/
# denoise-lib train --method nb2nb --noisy my_images/ --budget full --out nb2nb.pt   # GPU: full
# denoise-lib denoise --model nb2nb.pt my_images/ --out denoised/
# torchrun --nproc_per_node=4 -m denoise_lib.cli train --method nb2nb --noisy my_images/ --out nb2nb.pt
# ```
#
# `denoise-lib methods` lists what each method needs: pairs of noisy frames
# (`--second`), misaligned frames (Self2Align), a known noise level (Laine et al.'s
# posterior mean: `--noise gaussian:25`) or just single noisy images. Large images are
# denoised in overlapping tiles (`--tile`), with the same result as in one piece.


# %% tags=["remove-cell"]
course.provenance()
