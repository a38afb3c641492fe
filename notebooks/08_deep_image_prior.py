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
# # Deep Image Prior: the rise and fall of the PSNR
#
# The Deep Image Prior {cite}`ulyanov2018dip` fits a freshly initialised network to **one**
# noisy image and stops early. The theory page {doc}`../book/08_deep_image_prior` writes
# it in the two forms of the SVID paper {cite}`lin2022svid`:
#
# $$
# \begin{aligned}
# &\text{Eq. (3):}\quad \min_\theta \norm{\ftheta(\mathbf z) - \y}^2 \quad(\text{fixed random } \mathbf z), \\
# &\text{Eq. (4):}\quad \min_\theta \norm{\ftheta(\y) - \y}^2 .
# \end{aligned}
# $$
#
# Both are minimised by a network that reproduces the noisy image. What denoises is the
# trajectory: the output passes close to the clean image before it fits the noise. This
# notebook
#
# 1. checks the spectral-filter formula of {prf:ref}`prop-dip-filter` on a linear model;
# 2. fits both variants to a real image and records the PSNR at every few iterations: it
#    rises, peaks, and falls back towards the PSNR of the noisy input;
# 3. shows that the loss gives no hint of when to stop;
# 4. lets you step through the outputs of the fit iteration by iteration.
#
# Part 7 (SVID) starts from this behaviour.


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
import matplotlib.pyplot as plt
import numpy as np
import torch

from denoise_lib import course, methods, metrics
from denoise_lib.course import plots as plot
from denoise_lib.course.dip_widget import iteration_explorer
from denoise_lib.course.report import show_figure, table

cfg = course.setup(seed=0, notebook="08_deep_image_prior")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## The linear model: gradient descent is a spectral filter
#
# For a model that is linear in its parameters, $\mathbf f = \mathbf J\theta$, gradient
# descent with step size $\tau$ from $\theta = 0$ gives
# $\mathbf f_t = \sum_k [1 - (1 - \tau\lambda_k)^t] \inner{\mathbf u_k}{\y} \mathbf u_k$,
# with $(\lambda_k, \mathbf u_k)$ the eigenpairs of $\mathbf J\mathbf J^\top$. The check
# below runs gradient descent on a random instance and compares it with the formula.


# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
J, y_lin = rng.normal(size=(40, 25)), rng.normal(size=40)
lam, U = np.linalg.eigh(J @ J.T)
tau, theta = 0.5 / lam.max(), np.zeros(25)
for t in range(1, 31):
    theta -= tau * J.T @ (J @ theta - y_lin)
formula = U @ ((1 - (1 - tau * lam) ** 30) * (U.T @ y_lin))
print("gradient descent after 30 steps equals the spectral filter:", bool(np.allclose(J @ theta, formula)))


# %% [markdown]
# ## One real image
#
# One Set12 image (05.png in the `quick` and `full` budgets), with the course's Gaussian
# test noise, $\sigma = 25/255$ (not clipped), the same noisy image as in the other
# notebooks. DIP has no training set, so only the test images are used. The full budget
# fits the whole image for longer; the quick budget uses a central crop so that each fit
# takes seconds.


# %%
ex = course.experiment(cfg, "gaussian:25", train_limit=1)      # DIP trains on nothing: only the test images
k = min(4, len(ex.test_clean) - 1)                               # 05.png
side = cfg.pick(smoke=32, quick=128, full=None)
clean, noisy = ex.test_clean[k], ex.test_noisy[k]
if side is not None:
    top, left = (clean.shape[-2] - side) // 2, (clean.shape[-1] - side) // 2
    clean, noisy = (a[..., top:top + side, left:left + side].contiguous() for a in (clean, noisy))
psnr_noisy = metrics.psnr(noisy, clean)
course.glue("psnr_noisy", psnr_noisy)
course.glue("image_side", clean.shape[-1])
print(f"image {tuple(clean.shape)}; noisy PSNR {psnr_noisy:.2f} dB")


# %% [markdown]
# ## Fitting both variants
#
# The library's `DeepImagePrior` (registered as `dip` for the random input and `dip-y`
# for the noisy input) fits a fresh copy of a small U-Net with Adam at a constant learning
# rate. Given the clean image, `fit_image` records the PSNR of the output every few
# iterations, and keeps the output at some of them for the slider below; the clean image
# is never used in the loss. The best iteration is an **oracle**: a real user does not
# know it.


# %%
iterations = {name: cfg.run(name).steps for name in ("dip", "dip-y")}
record_every = cfg.pick(smoke=1, quick=10, full=10)
keep_every = {"dip": cfg.pick(smoke=1, quick=5, full=10), "dip-y": cfg.pick(smoke=1, quick=2, full=5)}
labels = {"dip": "Eq. (3): random input z", "dip-y": "Eq. (4): input y"}
fits = {}
for name, T in iterations.items():
    torch.manual_seed(cfg.seed)
    model = methods.build(name, channels=1)
    out, hist = model.fit_image(noisy, iterations=T, clean=clean, record_every=record_every,
                                keep_outputs=keep_every[name], device=cfg.device)
    fits[name] = (model, out, hist)
sigma2 = (25 / 255) ** 2
for name, (model, out, h) in fits.items():
    key = name.replace("-", "_")
    course.glue(f"{key}_iterations", h.iterations[-1])
    course.glue(f"{key}_best_iteration", h.best_iteration)
    course.glue(f"{key}_best_psnr", h.best_psnr)
    course.glue(f"{key}_final_psnr", h.psnr[-1])
    course.glue(f"{key}_best_gain", h.best_psnr - psnr_noisy)
    course.glue(f"{key}_final_drop", h.best_psnr - h.psnr[-1])
    course.glue(f"{key}_loss_end_ratio", h.loss[-1] / sigma2)
table(["variant", "input", "iterations", "best iteration", "best PSNR (dB)", "final PSNR (dB)", "noisy (dB)",
       "fit (s)"],
      [[labels[name], model.input, h.iterations[-1], h.best_iteration, h.best_psnr, h.psnr[-1], psnr_noisy,
        h.seconds] for name, (model, out, h) in fits.items()],
      digits=[None, None, None, None, 2, 2, 2, 1])


# %%
fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.0))
for (name, (model, out, h)), color in zip(fits.items(), ["C0", "C1"]):
    axes[0].plot(h.iterations, h.psnr, color=color, label=labels[name])
    axes[0].plot([h.best_iteration], [h.best_psnr], "o", color=color)
    axes[1].semilogy(h.iterations, h.loss, color=color, label=labels[name])
axes[0].axhline(psnr_noisy, color="gray", ls=":", label="noisy input")
axes[0].set_ylim(top=max(h.best_psnr for _, _, h in fits.values()) + 1.5)
axes[1].axhline(sigma2, color="gray", ls=":", label="σ²")
axes[0].set(xlabel="iteration", ylabel="PSNR (dB)", title="PSNR against the clean image")
axes[1].set(xlabel="iteration", ylabel="loss, mean (f − y)²", title="training loss")
for ax in axes:
    ax.legend(fontsize=8)
    ax.tick_params(labelsize=8)
    ax.title.set_size(10)
    ax.xaxis.label.set_size(9)
    ax.yaxis.label.set_size(9)
fig.tight_layout()
show_figure(fig, glue="dip_psnr_curve",
            alt="Two plots against the iteration for the Deep Image Prior fitted to one noisy Set12 image: "
                "left, the PSNR of the output against the clean image for the random input (Eq. 3) and "
                "the noisy input (Eq. 4), each rising to a peak and falling back towards the noisy "
                "input's PSNR (dotted line); right, the training loss on a log scale, falling all the "
                "time, with σ² as a dotted line.",
            caption="Deep Image Prior on one Set12 image, σ = 25/255. Left: PSNR of the output; the "
                    "dots mark the best iteration (an oracle that needs the clean image). Right: the "
                    "training loss, which keeps falling past σ², the loss of the clean image itself.")


# %% [markdown]
# **Reading the curves.** The PSNR rises, peaks, and falls back towards the PSNR of the
# noisy input, the shape predicted by {prf:ref}`prop-dip-filter`. The loss falls all the
# time, so it cannot tell when to stop. The peaks come once the loss has fallen to about
# $\sigma^2$, the loss of the clean image itself (dotted line): a network that explains
# $\y$ better than the clean image does is fitting the noise. That level is known only
# when $\sigma$ is known. With the noisy image as input (Eq. 4), the identity is one
# short path away, through the U-Net's skip connection from its input, so the peak comes
# much earlier and the fall is fast. The numbers are in the table above.
#
# The same behaviour as a check. The run passes it when the best iteration is strictly
# inside the run and the final PSNR is below the best one:


# %%
table(["variant", "peak strictly inside the run", "final below best by (dB)", "loss at the end / σ²"],
      [[labels[name], 0 < h.best_iteration < h.iterations[-1], h.best_psnr - h.psnr[-1], h.loss[-1] / sigma2]
       for name, (model, out, h) in fits.items()],
      digits=[None, None, 2, 2])


# %%
for name, (model, out, h) in fits.items():
    plot.compare({"noisy": noisy, f"best (it. {h.best_iteration})": h.best_output,
                  f"final (it. {h.iterations[-1]})": out, "clean": clean},
                 reference=clean, size=1.8, title=labels[name])


# %% [markdown]
# ## Explore the fit, iteration by iteration
#
# The slider steps through the outputs kept during the two fits above, with their PSNR;
# the dot on the curve marks the iteration shown. Nothing is recomputed: the outputs were
# kept by `fit_image(..., keep_outputs=...)`. In Jupyter or Colab the controls are live;
# the book shows the explorer's default state, the best kept iteration of the fit with
# the random input.


# %%
explorer = iteration_explorer({labels[name]: h for name, (model, out, h) in fits.items()}, noisy, clean)
show_figure(explorer.figure(),
            alt=f"The iteration explorer in its default state: the PSNR curves of both fits with "
                f"{explorer.caption()} marked, and below the noisy image, that output and the clean image.",
            caption="The explorer's default state (the live slider needs Jupyter or Colab).")
explorer.show()


# %% [markdown]
# ## What to take away
#
# - Neither objective contains a prior. The architecture and the **stopping time** do the
#   regularising, and the best stopping time needs the clean image. The library's
#   `DeepImagePrior.denoise` stops after a fixed number of iterations (`iterations`).
# - Every test image costs a full optimisation. The methods of Parts 1–7 pay for training
#   once and then denoise in one forward pass.
# - SVID (Part 7, {doc}`../book/07_svid_theory`) keeps the observation that the network
#   learns structure before noise, and uses the network's own output as the prior of a
#   trained denoiser.
#
# :::{admonition} Exercise
# :class: tip
# 1. Repeat the fit at $\sigma = 50/255$. Does the peak come earlier or later, and is it
#    lower? Relate the answer to Exercise {ref}`ex-dip-stop` of the theory page.
# 2. Fit with a network with fewer features (`methods.build("dip", channels=1, net={"features": 8})`).
#    How do the peak PSNR and the decline change?
# 3. Replace the random input by a constant tensor. Does the network still denoise?
# 4. Try Ulyanov et al.'s settings, `z_scale=0.1` and `lr=0.01`
#    (`methods.build("dip", channels=1, z_scale=0.1, lr=0.01)`), with the course U-Net,
#    which has no batch normalisation. What happens to the curve?
# :::


# %% tags=["remove-cell"]
course.provenance()
