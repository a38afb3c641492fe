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
# # Deep Image Prior: the rise and fall of the PSNR
#
# The Deep Image Prior {cite}`ulyanov2018dip` fits a freshly initialised network to **one**
# noisy image and stops early. The theory page {doc}`../book/08_deep_image_prior` writes
# it in the two forms of the SVID paper {cite}`lin2022svid`:
#
# $$
# \text{Eq. (3):}\ \min_\theta \norm{\ftheta(\mathbf z) - \y}^2 \quad(\text{fixed random } \mathbf z),
# \qquad
# \text{Eq. (4):}\ \min_\theta \norm{\ftheta(\y) - \y}^2 .
# $$
#
# Both are minimised by a network that reproduces the noisy image. What denoises is the
# trajectory: the output passes close to the clean image before it fits the noise. This
# notebook
#
# 1. checks the spectral-filter formula of {prf:ref}`prop-dip-filter` on a linear model;
# 2. fits both variants to a real image and records the PSNR at every few iterations: it
#    rises, peaks, and falls back towards the PSNR of the noisy input;
# 3. shows that the loss gives no hint of when to stop.
#
# Part 7 (SVID) starts from this behaviour.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from denoise_lib import course, data, methods, metrics
from denoise_lib.course import plots as plot

cfg = course.setup(seed=0, notebook="08_deep_image_prior")
torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators

# %% [markdown]
# ## 1. The linear model: gradient descent is a spectral filter
#
# For a model that is linear in its parameters, $\mathbf f = \mathbf J\theta$, gradient
# descent with step $\eta$ from $\theta = 0$ gives
# $\mathbf f_t = \sum_k [1 - (1 - \eta\lambda_k)^t] \inner{\mathbf u_k}{\y} \mathbf u_k$,
# with $(\lambda_k, \mathbf u_k)$ the eigenpairs of $\mathbf J\mathbf J^\top$. The check
# below runs gradient descent on a random instance and compares it with the formula.

# %%
# NBVAL_CHECK_OUTPUT
rng = np.random.default_rng(0)
J, y_lin = rng.normal(size=(40, 25)), rng.normal(size=40)
lam, U = np.linalg.eigh(J @ J.T)
eta, theta = 0.5 / lam.max(), np.zeros(25)
for t in range(1, 31):
    theta -= eta * J.T @ (J @ theta - y_lin)
formula = U @ ((1 - (1 - eta * lam) ** 30) * (U.T @ y_lin))
print("gradient descent after 30 steps equals the spectral filter:", bool(np.allclose(J @ theta, formula)))

# %% [markdown]
# ## 2. One real image
#
# A crop of a Set12 image with Gaussian noise, $\sigma = 25/255$ (not clipped). The full
# budget fits the whole image for longer; the quick budget uses a crop so that each fit
# takes seconds.

# %%
side = cfg.pick(smoke=32, quick=128, full=None)
clean = data.load("set12", limit=5)[4]                    # 05.png
if side is not None:
    top, left = (clean.shape[-2] - side) // 2, (clean.shape[-1] - side) // 2
    clean = clean[..., top:top + side, left:left + side]
noisy = data.add_noise([clean], "gaussian:25", seed=cfg.seed)[0]
psnr_noisy = metrics.psnr(noisy, clean)
print(f"image {tuple(clean.shape)}; noisy PSNR {psnr_noisy:.2f} dB")

# %% [markdown]
# ## 3. Fitting both variants
#
# The library's `DeepImagePrior` (registered as `dip` for the random input and `dip-y`
# for the noisy input) fits a fresh copy of a small U-Net with Adam at a constant learning
# rate. Given the clean image, `fit_image` records the PSNR of the output every few
# iterations; the clean image is never used in the loss. The best iteration is an
# **oracle**: a real user does not know it.

# %%
iterations = {name: cfg.run(name).steps for name in ("dip", "dip-y")}
record_every = cfg.pick(smoke=1, quick=10, full=10)
fits = {}
for name, T in iterations.items():
    torch.manual_seed(cfg.seed)
    model = methods.build(name, channels=1)
    out, hist = model.fit_image(noisy, iterations=T, clean=clean, record_every=record_every,
                                device=cfg.device)
    fits[name] = (model, out, hist)
print(f"{'variant':<8}{'input':>7}{'iters':>7}{'best it.':>9}{'best PSNR':>11}{'final PSNR':>12}{'noisy':>8}{'fit s':>7}")
for name, (model, out, h) in fits.items():
    print(f"{name:<8}{model.input:>7}{h.iterations[-1]:>7}{h.best_iteration:>9}{h.best_psnr:>11.2f}"
          f"{h.psnr[-1]:>12.2f}{psnr_noisy:>8.2f}{h.seconds:>7.1f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
labels = {"dip": "Eq. (3): random input z", "dip-y": "Eq. (4): input y"}
for (name, (model, out, h)), color in zip(fits.items(), ["C0", "C1"]):
    axes[0].plot(h.iterations, h.psnr, color=color, label=labels[name])
    axes[0].plot([h.best_iteration], [h.best_psnr], "o", color=color)
    axes[0].annotate(f"best {h.best_psnr:.2f} dB @ {h.best_iteration}", (h.best_iteration, h.best_psnr),
                     textcoords="offset points", xytext=(5, 6), fontsize=8, color=color)
    axes[1].semilogy(h.iterations, h.loss, color=color, label=labels[name])
axes[0].axhline(psnr_noisy, color="gray", ls=":", label="noisy input")
axes[0].set_ylim(top=max(h.best_psnr for _, _, h in fits.values()) + 2)
axes[1].axhline((25 / 255) ** 2, color="gray", ls=":", label="σ² (loss of the clean image)")
axes[0].set(xlabel="iteration", ylabel="PSNR (dB)", title="PSNR against the clean image")
axes[1].set(xlabel="iteration", ylabel="loss  mean (f − y)²", title="training loss")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Reading the curves.** The PSNR rises, peaks, and falls back towards the PSNR of the
# noisy input, the shape predicted by {prf:ref}`prop-dip-filter`. The loss falls all the
# time, so it cannot tell when to stop. The peaks come once the loss has fallen to about
# $\sigma^2$, the loss of the clean image itself (dotted line): a network that explains
# $\y$ better than the clean image does is fitting the noise. That level is known only
# when $\sigma$ is known. With the noisy image as input (Eq. 4), the identity is one
# short path away, through the U-Net's skip connection from its input, so the peak comes
# much earlier and the fall is fast; by the end of the run the output is back at the
# noisy image. The numbers are in the table above.
#
# The same behaviour as a check. The run passes it when the best iteration is strictly
# inside the run and the final PSNR is below the best one:

# %%
for name, (model, out, h) in fits.items():
    inside = 0 < h.best_iteration < h.iterations[-1]
    print(f"{name:<6} peak strictly inside the run: {inside};  final below best by "
          f"{h.best_psnr - h.psnr[-1]:.2f} dB;  loss at the end / σ²: {h.loss[-1] / (25 / 255) ** 2:.2f}")

# %%
panels = {"noisy": noisy}
for name, (model, out, h) in fits.items():
    panels[f"{name}, best (it. {h.best_iteration})"] = h.best_output
    panels[f"{name}, final (it. {h.iterations[-1]})"] = out
panels["clean"] = clean
plot.compare(panels, reference=clean, size=2.6)

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
# :::

# %%
course.provenance()
