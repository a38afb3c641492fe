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
# # Noise2Same: the invariance term and its weight
#
# Noise2Same {cite}`xie2020noise2same` trains on single noisy images without requiring
# the network to be $\J$-invariant. Its loss, Eq. (7) in our notation
# ({doc}`../book/04_noise2same_theory`), is
#
# $$
# \mathcal L_{\lambda}(f) = \frac1d\, \E\norm{f(\y) - \y}^2
# + \lambda_{\mathrm{inv}}\; \E_J\left[ \frac{\E\norm{f(\y)_J - f(\y_{J^c})_J}^2}{\lvert J \rvert} \right]^{1/2} ,
# $$
#
# two passes through the same network (the full image and the masked image), with no
# stop-gradient. Theorem 2 says that with $\lambda_{\mathrm{inv}} = 2\sigma$ the loss is
# an **upper bound** on the supervised error plus the noise power, for *every* $f$:
#
# $$
# \ell(f) = \tfrac1d \E\norm{f(\y) - \x}^2 + \tfrac1d \E\norm{\y - \x}^2
# \;\le\; u_{2\sigma}(f) = \mathcal L_{2\sigma}(f) .
# $$
#
# Theorem 1 is the same statement for data normalised to unit variance, with
# $\lambda_{\mathrm{inv}} = 2$; on our $[0,1]$ images it reads $\ell \le u_{2s}$, with $s$
# the standard deviation of the noisy pixels. **The weight has the unit of the image
# values**: the paper's default $2$ is Theorem 1's weight for normalised data, and on
# $[0, 1]$ data it is $1/s$ times Theorem 1's $2s$. The library's default,
# `lambda_inv="2std"`, is $2s$ measured on each training batch.
#
# This notebook
#
# 1. trains Noise2Same for several weights around the true $\sigma$, the experiment of
#    the paper's Fig. 4, including the library's default $2s$ and the literal $2$;
# 2. checks both sides of the bound numerically, with Monte-Carlo error bars, on
#    held-out images with fresh noise, for every trained network;
# 3. lets you step through the trained weights with a slider.


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
import torch

from denoise_lib import course, data
from denoise_lib.course import jinvariance
from denoise_lib.course.lambda_sweep import LambdaExplorer, SweepRun, bound_summary, sweep_figure
from denoise_lib.course.report import show_figure, table
from denoise_lib.methods.noise2same import Noise2Same, theorem1_weight
from denoise_lib.models import UNet
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="04_noise2same")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## Data
#
# As in Part 2: BSD400 with **one** fixed noisy draw per image (Gaussian,
# $\sigma = 25/255$), Set12 for testing, through the course's shared set-up. The images
# stay in $[0,1]$ units, so $\sigma \approx 0.098$ is the noise level the network sees,
# and every weight below is in these units.


# %%
sigma = 25 / 255
noise = Gaussian(sigma)
ex = course.experiment(cfg, noise, kind="single")
print(ex.describe())
psnr_noisy = ex.mean_psnr(ex.test_noisy)
two_s = theorem1_weight(ex.training.noisy)      # Theorem 1's weight in [0, 1] units, fixed data-set constant
s_data = two_s / 2
course.glue("n2s_sigma", float(sigma))
course.glue("n2s_s_data", float(s_data))
course.glue("n2s_two_s", float(two_s))
course.glue("n2s_literal_ratio", float(2.0 / two_s))
course.glue("n2s_s_over_sigma", float(s_data / sigma))
course.glue("n2s_sigma_norm", float(sigma / s_data))
course.glue("n2s_two_sigma_norm", float(2 * sigma / s_data))
table(["weight", "value", "what it is"],
      [["2σ", 2 * sigma, "Theorem 2 (Eq. (8)), σ in [0, 1] units"],
       ["2s", two_s, f"Theorem 1 (Eq. (6)) in [0, 1] units; s = {s_data:.4f}, the std of the noisy training pixels"],
       ["2", 2.0, f"Theorem 1 on data normalised to unit variance; here {2 / two_s:.1f} × 2s"]],
      digits=[None, 3, None], align="lrl")


# %% [markdown]
# ## Sweeping $\lambda_{\mathrm{inv}}$
#
# Noise2Same's Fig. 4 trains with $\lambda_{\mathrm{inv}} = 2\sigma_{\mathrm{loss}}$ for a
# range of $\sigma_{\mathrm{loss}}$ at fixed noise $\sigma_{\mathrm{noise}}$, and finds the
# best PSNR near $\sigma_{\mathrm{loss}} = \sigma_{\mathrm{noise}}$. The theory page
# explains the two ends: with a small weight the reconstruction term wins and the network
# drifts towards the identity (at $\lambda_{\mathrm{inv}} = 0$ it *is* the unmasked loss of
# Part 2); with a large weight the network is pushed towards strict invariance and
# ignores the observed value of each pixel. Its solvable model puts the optimum at or
# somewhat below $2\sigma$.
#
# The weights: a few multiples of $\sigma$, Theorem 2's $2\sigma$, the library's default
# `"2std"` (Theorem 1 in $[0,1]$ units, $2s$ measured on each batch; its $\lambda$ below
# is the mean over training) and the literal $2$ of the paper, which is Theorem 1's
# weight only for normalised data. Every run uses the same network (the course U-Net in
# residual form, as in Part 2), the same data, seed and budget; only
# $\lambda_{\mathrm{inv}}$ changes. Each step costs two forward passes.


# %%
weights = cfg.pick(
    smoke=[("σ", sigma), ("2σ", 2 * sigma), ("2·std", "2std"), ("2", 2.0)],
    quick=[("σ/2", sigma / 2), ("σ", sigma), ("2σ", 2 * sigma), ("2·std", "2std"), ("2", 2.0)],
    full=[("σ/4", sigma / 4), ("σ/2", sigma / 2), ("σ", sigma), ("2σ", 2 * sigma), ("2·std", "2std"),
          ("1", 1.0), ("2", 2.0)])
notes = {"2σ": "Theorem 2", "2·std": "library default (Theorem 1, [0, 1] units)",
         "2": "paper's default, for normalised data"}
runs = []
for label, spec in weights:
    torch.manual_seed(cfg.seed)
    method = Noise2Same(UNet(1, residual=True), lambda_inv=spec)
    hist = cfg.train(method, ex.training, "lambda sweep")
    psnr = ex.mean_psnr([method.denoise(y) for y in ex.test_noisy])
    runs.append(SweepRun(label, spec, method, hist, psnr, notes.get(label, "")))
by_label = {r.label: r for r in runs}
best = max(runs, key=lambda r: r.psnr)
print(f"{hist.steps} steps per run, batch {cfg.budget_for('lambda sweep').batch_size} × "
      f"{cfg.budget_for('lambda sweep').patch_size}²; noisy input {psnr_noisy:.2f} dB")
for key, label in [("n2s_psnr_default", "2·std"), ("n2s_psnr_literal", "2"), ("n2s_psnr_2sigma", "2σ")]:
    course.glue(key, float(by_label[label].psnr))
course.glue("n2s_lam_default", float(by_label["2·std"].lam))
course.glue("n2s_psnr_noisy", float(psnr_noisy))
course.glue("n2s_best_label", best.label)
course.glue("n2s_best_psnr", float(best.psnr))
course.glue("n2s_default_minus_literal", float(by_label["2·std"].psnr - by_label["2"].psnr))
course.glue("n2s_2sigma_minus_literal", float(by_label["2σ"].psnr - by_label["2"].psnr))
table(["λ_inv", "value", "PSNR (dB)", "gain (dB)", "last rec", "last inv", "note"],
      [[r.label, r.lam, r.psnr, r.psnr - psnr_noisy, f"{r.history.log[-1]['rec']:.2e}",
        f"{r.history.log[-1]['inv']:.2e}", r.note] for r in runs],
      digits=[None, 3, 2, 2, None, None, None], align="lrrrrrl",
      caption=f"Best here: λ_inv = {best.label} ({best.lam:.3f}), {best.psnr:.2f} dB.")


# %% [markdown]
# ## Checking the bound with Monte-Carlo error bars
#
# Both sides are estimated on **held-out** images (central crops of the Set12 images,
# which took no part in training) with **fresh** noise, for fixed networks (`jinvariance.bound_terms`, following
# the recipe of the theory page): per image the supervised error $A_i$, the realised
# noise power $B_i$ and the reconstruction error $R_i$; for $M$ masks $J_m$ (0.5 % of the
# pixels, Gaussian replacement as in training) the invariance integrand $Q_{i,m}$. Then
#
# $$
# \hat\ell = \tfrac1N \textstyle\sum_i (A_i + B_i), \qquad
# \hat u_\lambda = \tfrac1N \sum_i R_i + \lambda\, \tfrac1M \sum_m \bigl(\tfrac1N \sum_i Q_{i,m}\bigr)^{1/2},
# $$
#
# and the error bars come from resampling the images (bootstrap, 95 % intervals of the
# gap $\hat u_\lambda - \hat\ell$). We check the identity and every trained network,
# with Theorem 2's weight $\lambda = 2\sigma$; below, $R$ is the reconstruction term and
# $I$ the invariance term, so that $\hat u_{2\sigma} = R + 2\sigma I$. The weight
# $\lambda = 0$ shows what the invariance term is for: without it the "bound"
# $\ell \le R$ is the claim of Part 2 that only $\J$-invariant functions satisfy.


# %%
side = cfg.pick(smoke=64, quick=128, full=256)
centre = lambda x: x[..., (x.shape[-2] - side) // 2:, (x.shape[-1] - side) // 2:][..., :side, :side]  # noqa: E731
held_out = torch.cat([centre(x) for x in data.load("set12", limit=cfg.pick(smoke=2, quick=12, full=12))])
held_out = held_out.to(cfg.device)
n_masks = cfg.pick(smoke=2, quick=8, full=32)
functions = {"identity": lambda y: y, **{f"trained, λ_inv = {r.label}": r.method.net.eval() for r in runs}}
terms, summaries = {}, {}
for name, f in functions.items():
    terms[name] = jinvariance.bound_terms(f, held_out, noise, n_masks=n_masks, fraction=0.005,
                                         generator=torch.Generator().manual_seed(7))
    summaries[name] = bound_summary(terms[name], sigma)
sweep_terms = {r.label: summaries[f"trained, λ_inv = {r.label}"] for r in runs}
course.glue("n2s_gap_default", float(1e3 * sweep_terms["2·std"]["gap_2sigma"]))
course.glue("n2s_lhs_default", float(1e3 * sweep_terms["2·std"]["lhs"]))
course.glue("n2s_u_default", float(1e3 * sweep_terms["2·std"]["u_2sigma"]))
table(["f", "ℓ", "R", "I", "u = R + 2σ·I", "gap u − ℓ", "95 % interval"],
      [[name, 1e3 * v["lhs"], 1e3 * v["R"], v["I"], 1e3 * v["u_2sigma"], 1e3 * v["gap_2sigma"],
        f"[{1e3 * v['gap_2sigma_lo']:.3f}, {1e3 * v['gap_2sigma_hi']:.3f}]"] for name, v in summaries.items()],
      digits=[None, 3, 3, 4, 3, 3, None],
      caption=f"{len(held_out)} held-out crops of {side}×{side}, {n_masks} masks; ℓ, R, u and the gap per pixel "
              "× 10⁻³, I in image units.")


# %% [markdown]
# The theorems claim $\ell \le u$ in expectation. The check below asks whether the
# estimates are **consistent** with that claim: the gap $u - \ell$ is not significantly
# negative (the upper end of its 95 % interval is above zero). It is printed for
# Theorem 2 ($\lambda = 2\sigma$) and Theorem 1 ($\lambda = 2s$).


# %%
for name, t in terms.items():
    e2, e1 = t.estimate(2 * sigma, n_boot=2000), t.estimate(two_s, n_boot=2000)
    print(f"{name:<22} Theorem 2 (2σ): {e2['gap_hi'] > 0}   Theorem 1 (2s): {e1['gap_hi'] > 0}")


# %%
table(["f", "bound strictly verified at 95 % (2σ)", "violated without the invariance term (λ = 0)"],
      [[name, v["gap_2sigma_lo"] > 0, v["gap_0_hi"] < 0] for name, v in summaries.items()], align="lcc")


# %% [markdown]
# **Reading the numbers.** For the identity the bound is loose by the factor
# $\tau/\sigma$ of the theory page's exercise: the replacement values are far from the
# clean ones. For a trained network the gap is much smaller. Without the invariance term
# ($\lambda = 0$) the inequality fails for the networks that use their centre pixel: the
# gap is then minus twice the cross term $\frac2d\E\inner{f(\y) - \x}{\nz}$, which is
# positive for such a function, and it shrinks as the weight pushes the network towards
# invariance. That is why Noise2Void and Noise2Self need masks and Noise2Same needs its
# second pass.
#
# The figure puts the sweep together. For the minimisers of the loss, the proposition on
# the weight (theory page) predicts that the reconstruction term $R$ grows and the
# invariance term $I$ shrinks as $\lambda_{\mathrm{inv}}$ grows; the figure shows how
# closely these short runs follow it. Theorem 2 predicts $u = R + 2\sigma I \ge \ell$
# for every network, trained or not.


# %%
fig = sweep_figure(runs, sweep_terms, sigma=sigma, psnr_noisy=psnr_noisy)
show_figure(fig, glue="n2s_fig_sweep",
            alt="Two panels against the training weight lambda_inv on a log axis. Top: test PSNR of each "
                "trained Noise2Same network. Bottom: for each network, the left side of the bound (supervised "
                "error plus noise power), Theorem 2's right side, the reconstruction term and the invariance "
                "term weighted by 2 sigma.",
            caption="Noise2Same trained with different weights λ_inv (tick labels: name and value). Top: test "
                    "PSNR on Set12. Bottom: both sides of Theorem 2's bound on held-out images, ℓ and "
                    "u = R + 2σ·I, and the two terms of u, for each trained network.")


# %% [markdown]
# ## Exploring the trained weights
#
# The slider steps through the trained networks: a crop of a test image denoised by the
# network trained with that weight, and the bound terms with the selected weight
# highlighted. The figure shows its default state, the library's default `"2std"`; in
# Jupyter or Colab, the slider below it is live.


# %%
k = min(4, len(ex.test_clean) - 1)
h, w = ex.test_clean[k].shape[-2:]
win = (slice(max(0, h // 2 - 64), h // 2 + 64), slice(max(0, w // 2 - 64), w // 2 + 64))
explorer = LambdaExplorer(runs, sweep_terms, noisy=ex.test_noisy[k][..., win[0], win[1]],
                          clean=ex.test_clean[k][..., win[0], win[1]], sigma=sigma)
show_figure(explorer.figure(), glue="n2s_fig_explorer",
            alt="A noisy test crop, the same crop denoised by Noise2Same trained with the library's default "
                "weight, and the bound terms of all trained networks against lambda_inv with the default "
                "weight highlighted.",
            caption="The λ_inv explorer in its default state (λ_inv = 2·std, the library's default).")
explorer.show()


# %% [markdown]
# :::{admonition} Exercise
# :class: tip
# 1. Repeat the sweep at $\sigma = 50/255$. Does the best $\lambda_{\mathrm{inv}}$ move
#    with $\sigma$ as Theorem 2 predicts? Does the default `"2std"` follow it?
# 2. Train with the fixed weight `lambda_inv=theorem1_weight(ex.training.noisy)` (Theorem 1
#    with a constant computed once from the training data) and compare it with the
#    per-batch default `"2std"`. How much do the per-batch weights in the training log
#    vary?
# 3. Replace the Gaussian replacement by the donut (`replacement="donut"`). How do the
#    invariance term and the gap of the bound change, and why? (Hint: the bound is tight
#    when the replacement values are close to the clean values.)
# :::


# %% tags=["remove-cell"]
course.provenance()
