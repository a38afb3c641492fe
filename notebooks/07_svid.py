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
# # SVID: re-noising, stop-gradient, and three noise types
#
# SVID {cite}`lin2022svid` trains a denoiser on single noisy images. The network's output
# $\boldsymbol\eta = \ftheta(\y)$ is re-noised with the removed noise under a random sign
# mask, their Eq. (9),
#
# $$
# \y_2 = \boldsymbol\eta + \mathbf m \odot (\y - \boldsymbol\eta), \qquad m_i = \pm 1 \text{ with probability } \tfrac12 ,
# $$
#
# and the network must map $\y_2$ back to its frozen first output, their Eq. (10):
# $\norm{\ftheta(\y_2) - \sg(\ftheta(\y))}^2$. The theory page
# {doc}`../book/07_svid_theory` proves the properties of the mask, and shows that the
# paper's reason for dropping the data term of their Eq. (8) does not hold under the
# stop-gradient. The library's `SVID` therefore keeps that data term (`fidelity`, the weight
# $\kappa$ of the page's {prf:ref}`alg-svid-step`; `fidelity=0, warmup_steps=0` is Eq. (10)
# exactly). Read Part 8 ({doc}`../book/08_deep_image_prior`) first: SVID relies on the same
# early-training behaviour.
#
# This notebook
#
# 1. checks the properties of the re-noising on a real image;
# 2. trains SVID on BSD400 with Gaussian noise and follows the histograms of the true noise
#    $\nz$, the removed noise $\hat\nz$ and the synthesised noise $\nz_2$ during training,
#    the paper's Fig. 4;
# 3. repeats the stop-gradient ablation of the paper's Fig. 9 and measures the collapse;
# 4. trains on Poisson ($\lambda = 30$) and speckle ($v = 0.1$) noise.


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
import copy

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from scipy import stats

from denoise_lib import course
from denoise_lib import data
from denoise_lib.course import plots as plot
from denoise_lib.course.report import show_figure, table
from denoise_lib.course.svid_diagram import svid_loop
from denoise_lib.methods.svid import SVID, collapse_stats, renoise
from denoise_lib.models import UNet

cfg = course.setup(seed=0, notebook="07_svid")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## One training step
#
# The network runs twice per step. The first pass gives the estimate
# $\boldsymbol\eta = \ftheta(\y)$, which is detached (stop-gradient) and re-noised with a
# fresh sign mask; the second pass must map the re-noised $\y_2$ back to the detached
# $\boldsymbol\eta$. The optional data term, which the library adds, is the only path by
# which a gradient reaches the first pass.

# %%
show_figure(svid_loop(), glue="svid_loop",
            alt="Diagram of one SVID training step: the noisy image y goes through the network f_θ to "
                "give η; a stop-gradient detaches η; the removed noise y − η is multiplied by a fresh "
                "random ±1 mask and added back to η to form y₂; y₂ goes through the same network; the "
                "loss compares f_θ(y₂) with the detached η, plus κ times the data term between f_θ(y) and y.",
            caption="One SVID step (their Fig. 2 and Eq. 8–10). Red: the stop-gradient; y₂ and the target "
                    "are constants of the step. Green: the loss; its first term reaches θ only through the "
                    "second pass, the data term (weight κ) through the first.")


# %% [markdown]
# ## Data
#
# Training: BSD400, with **one** noisy copy of every image, drawn once before training
# and never redrawn. That is the situation SVID is designed for: a user has one noisy
# photograph of each scene. Redrawing the noise at every step would hand the network
# many independent noisy copies of the same clean image, which is Noise2Noise's data,
# not single-image data. Testing: the Set12 images, with the course's fixed test noise
# (the same in every notebook); SVID never sees them during training. The clean images
# are used only to measure. The same set-up is used for all three noise types.
#
# **Network and warm-up.** To fit the CPU budget, the notebook uses a narrower U-Net than
# the comparison harness (24 encoder features instead of the paper-size 48) and makes
# `SVID`'s warm-up of the data term shorter: the weight $\kappa$ of Eq. (8) falls from
# $1$ to $0.1$ over 100 steps instead of the library's 300. The theory page explains the
# reasoning, a heuristic: the warm-up should end while the estimate still passes the
# noise only weakly, and a narrower network follows the Deep Image Prior trajectory faster.


# %%
noise_specs = {"gaussian": "gaussian:25", "poisson": "poisson:30", "speckle": "speckle:0.1"}
exps = {k: course.experiment(cfg, spec, kind="single") for k, spec in noise_specs.items()}
ex = exps["gaussian"]
test_clean = ex.test_clean
sigma = 25 / 255
psnr_noisy = {k: e.mean_psnr(e.test_noisy) for k, e in exps.items()}
course.glue("psnr_noisy", psnr_noisy["gaussian"])
course.glue("n_test", len(test_clean))


def make_svid(**kw):
    """The notebook's SVID: its plan's U-Net (24 features; full width in `paper`) and a 100-step warm-up."""
    torch.manual_seed(cfg.seed)
    return SVID(UNet(1, **cfg.run("svid").net), **{"warmup_steps": 100, **kw})


print(ex.describe())
table(["noise", "spec", "PSNR of the noisy test images (dB)"],
      [[k, noise_specs[k], psnr_noisy[k]] for k in exps], digits=2)


# %% [markdown]
# ## The re-noising on a real image
#
# Any estimate $\boldsymbol\eta$ will do for the properties of
# {prf:ref}`thm-svid-mask`; here a $5\times5$ box blur of a noisy $64\times64$ crop of a
# Set12 image (the same crop and noise in every budget). The checks:
# $\y_2 - \boldsymbol\eta = \mathbf m \odot \hat\nz$; pixels with $m_i = +1$ are the
# observation and the others are reflected about $\boldsymbol\eta$; $\lvert\nz_2\rvert = \lvert\hat\nz\rvert$
# pixel by pixel; the mask is a fair coin (binomial test); a second call draws a new mask;
# the mean of $\nz_2$ is zero although the mean of $\hat\nz$ is not (we add $0.02$ to it);
# and $\y_2 = \y$ for the identity.


# %%
# NBVAL_CHECK_OUTPUT
y = data.add_noise([data.load("set12", limit=1)[0][..., :64, :64]], "gaussian:25", seed=7)[0]
eta = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(y, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
eta = eta - 0.02                                                  # a removed noise with mean ≈ 0.02
g = torch.Generator().manual_seed(0)
y2, m = renoise(y, eta, generator=g)
n_hat, n2 = y - eta, y2 - eta
print("y₂ − η = m ⊙ n̂:", bool(torch.allclose(n2, m * n_hat, atol=1e-6)))
print("kept pixels equal y, flipped ones equal 2η − y:", bool(torch.equal(y2[m == 1], y[m == 1])),
      bool(torch.allclose(y2[m == -1], (2 * eta - y)[m == -1], atol=1e-6)))
print("|n₂| = |n̂| pixel by pixel:", bool(torch.allclose(n2.abs(), n_hat.abs(), atol=1e-6)))
print("fair coin (binomial test p > 0.001):", stats.binomtest(int((m == 1).sum()), m.numel()).pvalue > 1e-3)
print("a second call draws a new mask:", not torch.equal(renoise(y, eta, generator=g)[1], m))
se = float(n_hat.std()) / m.numel() ** 0.5
print(f"mean of n̂ ≈ {float(n_hat.mean()):.3f}; mean of n₂ within 4 standard errors of 0:",
      abs(float(n2.mean())) < 4 * se)
print("identity (n̂ = 0) gives y₂ = y:", bool(torch.equal(renoise(y, y.clone(), generator=g)[0], y)))


# %% [markdown]
# ## Training SVID, and the noise histograms during training
#
# `SVID` with the stop-gradient and the data term of Eq. (8) (warm-up as above), trained
# with the course's single loop `train.fit`. We stop at a few points and measure, on the
# Set12 test images:
#
# - the PSNR of $\ftheta(\y)$;
# - the three noises of the paper's Fig. 4, from `SVID.noise_samples`: the true
#   $\nz = \y - \x$, the removed $\hat\nz = \y - \ftheta(\y)$ and the synthesised
#   $\nz_2 = \mathbf m \odot \hat\nz$;
# - the Wasserstein-1 distance (`scipy.stats.wasserstein_distance`) between the
#   histograms of $\hat\nz$ and $\nz$, and of $\nz_2$ and $\nz$, and the ratio of the
#   standard deviation of $\hat\nz$ to $\sigma$.


# %%
budget = cfg.budget_for("svid")
steps = cfg.run("svid").steps
ablation_steps = cfg.run("ablation").steps                         # the ablation stops here
checkpoints = sorted({0, ablation_steps, steps, *cfg.pick(smoke=[], quick=[25, 300], full=[100, steps // 2])})


def noise_report(method, noisy, clean, seed=0):
    """Flattened n, n̂, n₂ over the test images (one mask per image)."""
    g = torch.Generator().manual_seed(seed)
    parts = [method.noise_samples(y, x, generator=g) for y, x in zip(noisy, clean)]
    return {k: torch.cat([p[k].flatten() for p in parts]).numpy() for k in ("n", "n_hat", "n2")}


svid = make_svid()
snapshots = {}
for stop in checkpoints:
    if stop > 0:
        hist = cfg.train(svid, ex.training, "svid", until=stop)
    if stop == ablation_steps:                                        # kept for the ablation
        svid_early = (copy.deepcopy(svid), hist)
    svid.eval()
    ns = noise_report(svid, ex.test_noisy, test_clean)
    psnr = ex.mean_psnr([svid.denoise(y) for y in ex.test_noisy])
    snapshots[stop] = dict(ns, psnr=psnr,
                           w_hat=stats.wasserstein_distance(ns["n_hat"], ns["n"]),
                           w_2=stats.wasserstein_distance(ns["n2"], ns["n"]),
                           std_ratio=float(ns["n_hat"].std() / sigma))
first, last = snapshots[0], snapshots[checkpoints[-1]]
course.glue("svid_steps", steps)
course.glue("svid_psnr", last["psnr"])
course.glue("svid_gain", last["psnr"] - psnr_noisy["gaussian"])
course.glue("std_ratio_start", first["std_ratio"])
course.glue("std_ratio_end", last["std_ratio"])
course.glue("w_hat_start", first["w_hat"])
course.glue("w_hat_end", last["w_hat"])
print(f"noisy input: {psnr_noisy['gaussian']:.2f} dB; gain after {steps} steps: "
      f"{last['psnr'] - psnr_noisy['gaussian']:.2f} dB")
table(["step", "PSNR (dB)", "W1(n̂, n)", "W1(n₂, n)", "std(n̂)/σ"],
      [[stop, s["psnr"], s["w_hat"], s["w_2"], s["std_ratio"]] for stop, s in snapshots.items()],
      digits=[None, 2, 4, 4, 3])


# %%
cols = min(3, len(snapshots))
rows = -(-len(snapshots) // cols)
fig, axes = plt.subplots(rows, cols, figsize=(7.5, 2.5 * rows), sharey=True, squeeze=False)
bins = np.linspace(-0.4, 0.4, 81)
for ax, (stop, s) in zip(axes.flat, snapshots.items()):
    for key, label, color in (("n", "n (true)", "k"), ("n_hat", "n̂ (removed)", "C0"), ("n2", "n₂ (synthesised)", "C3")):
        ax.hist(s[key], bins=bins, density=True, histtype="step", color=color, label=label)
    ax.set_title(f"step {stop}: W1(n̂, n) = {s['w_hat']:.3f}", fontsize=10)
    ax.set_xlabel("noise value", fontsize=9)
    ax.tick_params(labelsize=8)
for ax in list(axes.flat)[len(snapshots):]:
    ax.axis("off")
axes[0, 0].legend(fontsize=8)
fig.tight_layout()
show_figure(fig, alt="Histograms of the true noise n, the removed noise n̂ and the synthesised noise n₂ on the "
                     "Set12 test images, one panel per training step; as training proceeds the histograms "
                     "of n̂ and n₂ approach that of n.",
            caption="The three noises of the paper's Fig. 4 during training (Gaussian noise, σ = 25/255).")


# %% [markdown]
# **Reading the histograms.** Before training, $\hat\nz$ is mostly image content and
# much wider than the noise (first row of the table: the ratio std$(\hat\nz)/\sigma$). As
# training proceeds, the histograms of $\hat\nz$ and $\nz_2$ approach that of $\nz$ and
# the Wasserstein distances fall (table above), as in the paper's Fig. 4. The ratio
# std$(\hat\nz)/\sigma$ approaches $1$ from above: the removed noise still contains some
# image detail. The histogram of $\nz_2$ is always the mirror-symmetrised histogram of
# $\hat\nz$ ({eq}`svid-symmetrise`).


# %% [markdown]
# ## The stop-gradient ablation (the paper's Fig. 9)
#
# Two experiments, each measured on the Set12 test images with the collapse criterion of
# the page: the output counts as **collapsed** when its mean absolute value is below
# $0.05$, or its variance is below $1\,\%$ of the variance of the noisy input
# (`collapse_stats`). The tables also give the correlation of the output with the clean
# image, which tells an image-like output from one that has drifted elsewhere.
#
# **(a) From the random initialisation**, the paper's setting. Short runs from the same
# initialisation, data, seed and learning-rate schedule as the main run above, stopped
# after the same number of steps; the second row is the main run itself at that step.
#
# | run | stop-gradient | data term of Eq. (8) |
# |---|---|---|
# | SVID (the main run) | yes | warm-up from $\kappa = 1$ to $0.1$ |
# | without stop-gradient | no | the same |
# | Eq. (10) exactly | yes | none (`fidelity=0, warmup_steps=0`) |
# | Eq. (10) without stop-gradient (the paper's ablation) | no | none |
#
# The run of Eq. (10) exactly is measured on the test images at a few steps on the way,
# since the page's scalar model makes a prediction about it ({prf:ref}`prop-svid-scalar`).


# %%
ablation = {"no stop-gradient": dict(stop_gradient=False),
            "Eq. (10), fidelity 0": dict(fidelity=0.0, warmup_steps=0),
            "Eq. (10), no stop-gradient": dict(stop_gradient=False, fidelity=0.0, warmup_steps=0)}
test_y = torch.cat([y.flatten() for y in ex.test_noisy])
test_x = torch.cat([x.flatten() for x in test_clean]).numpy()


def ablation_row(method, hist=None):
    """Collapse statistics, correlation with the clean image and PSNR of ``method`` on the Gaussian test images."""
    outs = [method.denoise(y) for y in ex.test_noisy]
    flat = torch.cat([o.flatten() for o in outs])
    corr = float(np.corrcoef(flat.numpy(), test_x)[0, 1]) if float(flat.std()) > 0 else 0.0
    return dict(collapse_stats(flat, test_y), psnr=ex.mean_psnr(outs), corr=corr, mean=float(flat.mean()),
                below_zero=float((flat < 0).float().mean()), hist=hist)


def ablation_table(rows):
    return table(["run", "mean |out|", "Var out / Var y", "collapsed", "corr. with x", "PSNR (dB)", "gain (dB)"],
                 [[name, r["mean_abs"], r["var_ratio"], r["collapsed"], r["corr"], r["psnr"],
                   r["psnr"] - psnr_noisy["gaussian"]] for name, r in rows.items()],
                 digits=[None, 4, 4, None, 2, 2, 2])


ablation_results = {"untrained network": ablation_row(make_svid())}
runs = {"SVID (the main run)": svid_early}
eq10_stops = sorted({s for s in (ablation_steps // 10, ablation_steps // 4, ablation_steps // 2, ablation_steps) if s > 0})
eq10_path = {0: ablation_results["untrained network"]}
for name, kw in ablation.items():
    m = make_svid(**kw)
    if name == "Eq. (10), fidelity 0":                       # the same run, measured on the way
        for stop in eq10_stops:
            hist = cfg.train(m, ex.training, "ablation", budget=budget, until=stop)
            eq10_path[stop] = ablation_row(m)
        runs[name] = (m, hist)
    else:
        runs[name] = (m, cfg.train(m, ex.training, "ablation", budget=budget, until=ablation_steps))
for name, (m, hist) in runs.items():
    ablation_results[name] = ablation_row(m, hist)
eq10 = ablation_results["Eq. (10), fidelity 0"]
untrained = ablation_results["untrained network"]
course.glue("ablation_steps", ablation_steps)
course.glue("untrained_var_pct", 100 * untrained["var_ratio"])
course.glue("untrained_mean_abs", untrained["mean_abs"])
course.glue("untrained_psnr", untrained["psnr"])
course.glue("eq10_var_pct", 100 * eq10["var_ratio"])
course.glue("eq10_mean_abs", eq10["mean_abs"])
course.glue("eq10_mean", eq10["mean"])
course.glue("eq10_corr", eq10["corr"])
course.glue("eq10_psnr", eq10["psnr"])
course.glue("eq10_below_zero", 100 * eq10["below_zero"])
zero_map_psnr = ex.mean_psnr([torch.zeros_like(x) for x in test_clean])
course.glue("zero_map_psnr", zero_map_psnr)
course.glue("svid_early_psnr", ablation_results["SVID (the main run)"]["psnr"])
course.glue("nosg_early_psnr", ablation_results["no stop-gradient"]["psnr"])
print(f"(a) from the random initialisation, {ablation_steps} steps each; noisy input {psnr_noisy['gaussian']:.2f} dB; "
      f"the zero map: {zero_map_psnr:.2f} dB")
print(f"Eq. (10), fidelity 0: variance grew from the untrained network's: {eq10['var_ratio'] > untrained['var_ratio']}; "
      f"output anti-correlated with the clean image: {eq10['corr'] < 0}; "
      f"{100 * eq10['below_zero']:.1f} % of the output values are below 0")
ablation_table(ablation_results)


# %%
fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.9))
path_steps = list(eq10_path)
axes[0].semilogy(path_steps, [max(eq10_path[s]["var_ratio"], 1e-7) for s in path_steps], "o-", color="C2")
axes[0].axhline(0.01, color="gray", ls=":", label="collapse threshold")
axes[0].set(xlabel="training step", ylabel="Var F(y) / Var y")
axes[0].legend(fontsize=8)
axes[1].plot(path_steps, [eq10_path[s]["corr"] for s in path_steps], "o-", color="C2")
axes[1].axhline(0, color="gray", lw=0.8)
axes[1].set(xlabel="training step", ylabel="corr(F(y), x)", ylim=(-1.05, 1.05))
for ax in axes:
    ax.tick_params(labelsize=9)
    ax.xaxis.label.set_size(10)
    ax.yaxis.label.set_size(10)
fig.suptitle("Eq. (10) alone, from the random initialisation (Set12 test images)", fontsize=10)
fig.tight_layout()
show_figure(fig, glue="svid_eq10_figure",
            alt="Two plots against the training step for SVID trained with Eq. (10) alone from a random "
                "initialisation: left, the ratio of output variance to input variance on a log scale; "
                "right, the correlation of the output with the clean image.",
            caption="Eq. (10) alone (stop-gradient, no data term) from the random initialisation, "
                    "measured on the Set12 test images during training. Left: variance of the output "
                    "over that of the noisy input. Right: correlation of the output with the clean image.")


# %% [markdown]
# **(b) From an image-like start.** Both runs start from the main run's network at the
# end of its warm-up (step `ablation_steps`: 100 in the quick budget), then train
# **Eq. (10) exactly** (`fidelity=0, warmup_steps=0`) with a fresh optimiser and a
# learning-rate schedule of their own, on the same data with the same seed. The only
# difference between the two is the stop-gradient. This is the comparison the paper's
# Fig. 9 makes, from a network whose output already looks like an image.


# %%
branch_steps = cfg.run("branch").steps
branch_results = {"start (main run, end of warm-up)": ablation_row(svid_early[0])}
for name, sg in (("Eq. (10), stop-gradient", True), ("Eq. (10), no stop-gradient", False)):
    m = SVID(copy.deepcopy(svid_early[0].net), stop_gradient=sg, fidelity=0.0, warmup_steps=0)
    hist = cfg.train(m, ex.training, "branch", seed=cfg.seed + 1)
    branch_results[name] = ablation_row(m, hist)
course.glue("branch_steps", branch_steps)
course.glue("branch_sg_psnr", branch_results["Eq. (10), stop-gradient"]["psnr"])
course.glue("branch_nosg_var_pct", 100 * branch_results["Eq. (10), no stop-gradient"]["var_ratio"])
course.glue("branch_nosg_psnr", branch_results["Eq. (10), no stop-gradient"]["psnr"])
print(f"(b) from the main run's network at step {ablation_steps}, then {branch_steps} steps of Eq. (10)")
ablation_table(branch_results)


# %%
fig = plt.figure(figsize=(7.5, 5.6))
grid = fig.add_gridspec(2, 2, hspace=0.55, wspace=0.35)
ax_a0, ax_a1, ax_b = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])
for name, r in ablation_results.items():
    if r["hist"] is not None:
        ax_a0.plot(*r["hist"].series("out_mean_abs"), "o-", ms=2, label=name)
        ax_a1.semilogy(*r["hist"].series("out_var_ratio"), "o-", ms=2, label=name)
for name, r in branch_results.items():
    if r["hist"] is not None:
        ax_b.semilogy(*r["hist"].series("out_var_ratio"), "o-", ms=2, label=name)
for ax in (ax_a1, ax_b):
    ax.set_ylim(1e-8, 2)                       # variance ratios: from collapsed to the input's
ax_a0.axhline(0.05, color="gray", ls=":")
for ax in (ax_a1, ax_b):
    ax.axhline(0.01, color="gray", ls=":")
ax_a0.set(xlabel="step", ylabel="mean |F(y)|", title="(a) from random initialisation")
ax_a1.set(xlabel="step", ylabel="Var F(y) / Var y", title="(a) from random initialisation")
ax_b.set(xlabel="step after the start", ylabel="Var F(y) / Var y", title="(b) Eq. (10) from an image-like start")
for ax in (ax_a0, ax_a1, ax_b):
    ax.title.set_size(10)
    ax.tick_params(labelsize=8)
ax_a0.legend(fontsize=7)
ax_b.legend(fontsize=8)
show_figure(fig, alt="Training curves of the stop-gradient ablation: (a) from the random initialisation, the "
                     "mean absolute output and the output-to-input variance ratio of four runs; (b) from an "
                     "image-like start, the variance ratio of Eq. (10) with and without the stop-gradient.",
            caption="The stop-gradient ablation, logged on the training batches. Dotted lines: the collapse "
                    "thresholds (mean |output| 0.05, variance ratio 1 %).")


# %% [markdown]
# The curves are logged on the training batches; the tables are measured on the test images.
#
# **Reading the ablation.**
#
# *(a)* The untrained U-Net's output is already close to the zero map (first row). The
# paper's ablation, Eq. (10) without the stop-gradient, stays collapsed, as the paper
# reports and as {prf:ref}`prop-svid-shrink` allows. Eq. (10) **with** the stop-gradient
# does not learn the image from this start either, but it does not stay at the zero map:
# its output variance grows (figure above) while the output's correlation with the clean
# image becomes negative. The output turns into a dim, inverted copy of the image, whose
# values are mostly below $0$, so that its clipped PSNR is that of the zero map. The
# scalar model of {prf:ref}`prop-svid-scalar` does not predict this drift; the theory
# page discusses why. With the data term of Eq. (8), the runs with and without the
# stop-gradient both learn, and after these few steps they are close to each other: from
# a random start, the data term is what gets training going.
#
# *(b)* Once the output looks like an image, the stop-gradient decides the outcome. From
# the same start, Eq. (10) without the stop-gradient collapses: the variance of the output
# falls below $1\,\%$ of the input's, along the path of {prf:ref}`prop-svid-shrink`. With
# the stop-gradient, the same objective keeps the image and goes on improving it. These
# are the two halves of the paper's Fig. 9.


# %% [markdown]
# ## Poisson and speckle noise
#
# The same method and settings, trained on BSD400 with Poisson noise ($\lambda = 30$,
# $\y = \Pois(30\x)/30$) and speckle noise ($v = 0.1$, $\y = \x + \x \odot \nz$ with
# $\nz$ uniform) — the paper's settings for its Table 1. SVID is not told which noise it
# faces.


# %%
trained = {"gaussian": svid}
for kind in ("poisson", "speckle"):
    m = make_svid()
    cfg.train(m, exps[kind].training, "other noise")
    trained[kind] = m
results = {}
for kind, m in trained.items():
    e = exps[kind]
    outs = [m.denoise(y) for y in e.test_noisy]
    ns = noise_report(m, e.test_noisy, e.test_clean)
    results[kind] = dict(outs=outs, psnr=e.mean_psnr(outs), ssim=e.mean_ssim(outs),
                         skew_n=float(stats.skew(ns["n"])), skew_hat=float(stats.skew(ns["n_hat"])),
                         skew_2=float(stats.skew(ns["n2"])), w_2=stats.wasserstein_distance(ns["n2"], ns["n"]),
                         steps=steps if kind == "gaussian" else cfg.run("other noise").steps)
for kind, r in results.items():
    course.glue(f"gain_{kind}", r["psnr"] - psnr_noisy[kind])
    course.glue(f"skew_n_{kind}", r["skew_n"])
    course.glue(f"skew_hat_{kind}", r["skew_hat"])
    course.glue(f"skew_2_{kind}", r["skew_2"])
table(["noise", "steps", "noisy (dB)", "SVID (dB)", "gain (dB)", "SSIM", "skew n", "skew n̂", "skew n₂",
       "W1(n₂, n)"],
      [[kind, r["steps"], psnr_noisy[kind], r["psnr"], r["psnr"] - psnr_noisy[kind], r["ssim"], r["skew_n"],
        r["skew_hat"], r["skew_2"], r["w_2"]] for kind, r in results.items()],
      digits=[None, None, 2, 2, 2, 3, 3, 3, 3, 4])


# %%
i = min(1, len(test_clean) - 1)
for kind, r in results.items():
    e = exps[kind]
    plot.compare({"noisy": e.test_noisy[i], "SVID": r["outs"][i], "clean": e.test_clean[i]},
                 reference=e.test_clean[i], size=2.4, title=f"{kind} noise ({noise_specs[kind]})")


# %% [markdown]
# **Reading the table.** SVID improves on the noisy input for all three noise types
# without being told which one it faces. The paper reports SVID on all three (their
# Table 1, BSD300, after two million iterations on the Waterloo database); the numbers
# here come from a few hundred CPU steps with a narrower network and are not comparable
# with theirs. The skewness columns show item 2 of {prf:ref}`thm-svid-mask` at work:
# Poisson noise is right-skewed, the removed noise $\hat\nz$ is skewed too (for every
# noise type it also contains some image detail), and $\nz_2$, the symmetrised
# $\hat\nz$, has skewness close to zero. For Poisson noise, the synthesised noise cannot
# reproduce the skewness of the real one.
#
# :::{admonition} Exercise
# :class: tip
# 1. Train with `SVID(UNet(1, residual=True))`. Watch `res_std` in the training log:
#    why does the removed noise stay tiny, and why is the result close to the noisy input
#    ({prf:ref}`prop-svid-trivial`)?
# 2. Train with a constant `fidelity` of 1 (`warmup_steps=0`) for longer. Where does the
#    PSNR go, and how does that match the threshold $\kappa \le \frac18$ of
#    {prf:ref}`prop-svid-scalar`?
# 3. Train the notebook's 24-feature U-Net with the library's default 300-step warm-up.
#    Compare `res_std` at the end of the warm-up with $\sigma$, and explain the outcome.
# 4. Draw one mask per pixel shared by the three channels of a colour image instead of
#    one per entry. Which property of {prf:ref}`thm-svid-mask` changes?
# :::


# %% tags=["remove-cell"]
course.provenance()
