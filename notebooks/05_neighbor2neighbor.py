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
# # Neighbor2Neighbor: sub-sampled pairs, Theorem 1 and the regulariser
#
# Neighbor2Neighbor {cite}`huang2021neighbor2neighbor` trains Noise2Noise on two
# half-resolution images cut from **one** noisy image: in each $2\times2$ cell, one
# pixel goes to the input $g_1(\y)$ and a 4-adjacent one to the target $g_2(\y)$. The
# clean images of the two differ by a gap
# $\boldsymbol\varepsilon = g_2(\x) - g_1(\x)$, and the loss of their Eq. (7) adds a
# regulariser that corrects for it ({doc}`../book/05_neighbor2neighbor_theory`):
#
# $$
# \begin{aligned}
# \mathcal L = {} & \norm{\ftheta(g_1(\y)) - g_2(\y)}^2 \\
# & + \gamma\,\norm{\ftheta(g_1(\y)) - g_2(\y) - \sg\bigl(g_1(\ftheta(\y)) - g_2(\ftheta(\y))\bigr)}^2 .
# \end{aligned}
# $$
#
# This notebook
#
# 1. draws the neighbour sub-sampler and checks its properties;
# 2. checks Theorem 1 (corrected, {prf:ref}`thm-nb-gap`) by Monte Carlo, with standard
#    errors, and shows the paper's printed Eq. (2) failing;
# 3. trains Neighbor2Neighbor with $\gamma \in \{0, 2, 8, 20\}$ (their Table 3);
# 4. compares the random and the fixed-location sub-samplers (their Table 4).


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
from scipy import stats
from torch.nn import functional as F

from denoise_lib import course, data, subsample
from denoise_lib.course import neighbours
from denoise_lib.course.report import image_grid, show_figure, table
from denoise_lib.methods.nb2nb import Neighbor2Neighbor
from denoise_lib.models import UNet
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="05_neighbor2neighbor")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## Data
#
# As in the other parts, through the course's shared set-up: BSD400 with **one** fixed
# noisy draw per image (Gaussian, $\sigma = 25/255$, not clipped), and Set12 for
# testing, with its own fixed test noise. The network never sees a clean image.


# %%
sigma = 25 / 255
noise = Gaussian(sigma)
ex = course.experiment(cfg, noise, kind="single")
psnr_noisy = ex.mean_psnr(ex.test_noisy)
course.glue("nb_psnr_noisy", float(psnr_noisy))
print(ex.describe())


# %% [markdown]
# ## The neighbour sub-sampler
#
# `subsample.choose` draws a sampler for a batch from an explicit `torch.Generator`, the
# same for every channel. The **random** sampler (their §4.1) takes one of the 8
# ordered pairs of 4-adjacent pixels per $2\times2$ cell (`PAIRS`, pixels numbered
# `0 1 / 2 3` in a cell). The **fixed-location** sampler (their Table 4) uses one pair
# for all the cells of an image; like the paper's construction ("two of the $k^2$
# sub-sampled images", picked at random) it draws that pair among all 12 ordered pairs
# of distinct cell positions, the 8 adjacent ones and the 4 diagonal ones
# (`ALL_PAIRS`; `diagonal=False` leaves the diagonal ones out). The returned object
# applies the **same** choice to any image of that size: to $\y$ for the training
# pair, and to the network output $\ftheta(\y)$ for the regulariser.


# %%
show_figure(neighbours.sampler_figure(), glue="nb_fig_sampler",
            alt="Three grids of 2 by 2 cells with one red and one blue pixel per cell: a random sampler with a "
                "different adjacent pair in each cell, a fixed-location sampler with the same horizontal pair "
                "in every cell, and one with the same diagonal pair in every cell; and a diagram of the four "
                "positions of a cell with the four adjacent and two diagonal pairs.",
            caption="Neighbour sub-samplers on 3 × 3 cells. Red: the pixel that goes to the input g1(y); "
                    "blue: the pixel that goes to the target g2(y); grey: unused. Right: the pairs of a cell, "
                    "each usable in both orders; the random sampler uses the adjacent ones, the "
                    "fixed-location sampler all of them.")


# %%
y0 = ex.test_noisy[0]
choice = subsample.choose(y0, generator=torch.Generator().manual_seed(0))
g1, g2 = choice.apply(y0)
show_figure(image_grid({"noisy y": y0, "g1(y), input": g1, "g2(y), target": g2}, cols=3),
            alt="A noisy test image and its two half-resolution sub-images drawn by the random sampler, which "
                "look alike.",
            caption=f"A noisy test image {tuple(y0.shape[-2:])} and its two sub-images {tuple(g1.shape[-2:])}.")


# %% [markdown]
# The properties that the theory uses, measured on a large draw (the unit tests check
# the same properties): every pair of the random sampler is 4-adjacent and inside its
# cell, its 8 ordered pairs are equally frequent (chi-square test), every channel uses
# the same pair, and a seeded generator reproduces the draw; the fixed-location sampler
# uses one pair per image, drawn uniformly among the 12.


# %%
# NBVAL_CHECK_OUTPUT
big = torch.zeros(4, 3, 128, 130)
c = subsample.choose(big, generator=torch.Generator().manual_seed(1))
r1, c1 = c.index1 // c.width, c.index1 % c.width
r2, c2 = c.index2 // c.width, c.index2 % c.width
cell_i = torch.arange(c.sub_size[0]).repeat_interleave(c.sub_size[1])
cell_j = torch.arange(c.sub_size[1]).repeat(c.sub_size[0])
adjacent = bool(((r1 - r2).abs() + (c1 - c2).abs() == 1).all())
in_cell = bool(((r1 // 2 == cell_i) & (r2 // 2 == cell_i) & (c1 // 2 == cell_j) & (c2 // 2 == cell_j)).all())
counts = torch.bincount(c.codes.flatten(), minlength=8)
coords = torch.arange(128 * 130, dtype=torch.float32).view(1, 1, 128, 130).expand(4, 3, -1, -1)
a1, _ = c.apply(coords + 1e5 * torch.arange(3).view(1, 3, 1, 1))
same_channels = bool(((a1 % 1e5) == a1[:, :1] % 1e5).all())
again = subsample.choose(big, generator=torch.Generator().manual_seed(1))
fixed = subsample.choose(torch.zeros(600, 1, 8, 8), sampler="fixed", generator=torch.Generator().manual_seed(2))
fixed_codes = fixed.codes[:, 0, 0]
print(f"random: {c.sub_size[0] * c.sub_size[1] * 4} cells; all pairs 4-adjacent: {adjacent}; inside their cell: {in_cell}")
print(f"random: all 8 ordered pairs present: {bool((counts > 0).all())}; "
      f"chi-square uniform at the 0.1 % level: {stats.chisquare(counts.numpy()).pvalue > 1e-3}")
print(f"channels share the choice: {same_channels}; seeded draw reproduced: {torch.equal(again.codes, c.codes)}")
print(f"fixed-location: one pair per image: {bool((fixed.codes == fixed_codes.view(-1, 1, 1)).all())}; "
      f"all 12 pairs used: {set(fixed_codes.tolist()) == set(range(12))}; chi-square uniform at the 0.1 % level: "
      f"{stats.chisquare(torch.bincount(fixed_codes, minlength=12).numpy()).pvalue > 1e-3}")
print(f"odd 129×131 gives cells {subsample.choose(torch.zeros(1, 1, 129, 131)).sub_size} "
      "(last row and column unused)")


# %%
table([f"{a}→{b}" for a, b in subsample.PAIRS], [counts.tolist()], align="r" * 8,
      caption="Counts of the 8 ordered pairs of the random sampler in the draw above.")


# %% [markdown]
# ## Theorem 1, checked by Monte Carlo
#
# For a **fixed** function $f$ and a target $\yp$ whose clean image is
# $\x + \boldsymbol\varepsilon$, {prf:ref}`thm-nb-gap` states, per entry,
#
# $$
# \begin{aligned}
# \underbrace{\tfrac1d\E\norm{f(\y) - \x}^2}_{\text{lhs}}
# = {} & \tfrac1d\E\norm{f(\y) - \yp}^2 - \sigma_{\yp}^2 \\
# & + \tfrac2d\E\inner{\boldsymbol\varepsilon}{f(\y) - \x} - \tfrac1d\E\norm{\boldsymbol\varepsilon}^2
# \quad (\text{rhs}),
# \end{aligned}
# $$
#
# with $\sigma_{\yp}^2$ the per-entry variance of the **target** noise. Their Eq. (2)
# as printed has no $-\frac1d\E\norm{\boldsymbol\varepsilon}^2$ ("as printed" below), and
# the Noise2Noise identity has no $\boldsymbol\varepsilon$ term at all.
#
# Here $f$ is a $3\times3$ box filter, $\x$ a Set12 image, and the known gap
# $\boldsymbol\varepsilon$ is a horizontal shift of half a pixel:
# $\x + \boldsymbol\varepsilon$ is $\x$ resampled half a pixel to the right. Each of
# the $M$ draws gives an input $\y = \x + \nz$ and an independent target
# $\yp = \x + \boldsymbol\varepsilon + \np$. Both sides are computed for every draw
# (`neighbours.theorem1_check`); the table gives their means, and the paired
# difference lhs − rhs with its standard error.


# %%
def box3(img):
    return F.avg_pool2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


x_mc = data.load("set12", limit=1)[0]
eps = neighbours.subpixel_shift(x_mc, 0.0, 0.5) - x_mc
draws = cfg.pick(smoke=24, quick=200, full=1000)
shift_checks = neighbours.theorem1_check(box3, x_mc, eps, noise, draws=draws,
                                        generator=torch.Generator().manual_seed(11))
t = shift_checks["correct"].terms
course.glue("nb_shift_eps2", float(1e3 * t["eps2"]))
course.glue("nb_shift_paper_miss", float(-1e3 * shift_checks["paper"].diff))
course.glue("nb_shift_correct_z", float(shift_checks["correct"].z_score()))
neighbours.check_table(shift_checks, caption=(
    f"Half-pixel shift, M = {draws} draws, image {tuple(x_mc.shape[-2:])}; per-entry values × 10³. "
    f"σ² = {1e3 * t['sigma2']:.4f}, (1/d)‖ε‖² = {1e3 * t['eps2']:.4f}, "
    f"(2/d)E⟨ε, f(y) − x⟩ = {1e3 * t['cross']:.4f}."))


# %% [markdown]
# The same check on Neighbor2Neighbor's own pairs (`neighbours.theorem1_check_subsampled`,
# {eq}`nb-thm1-sub`): input $g_1(\y)$, target $g_2(\y)$, clean image $g_1(\x)$, gap
# $g_2(\x) - g_1(\x)$, a fresh random sampler at every draw.


# %%
sub_checks = neighbours.theorem1_check_subsampled(box3, x_mc, noise, draws=draws,
                                                 generator=torch.Generator().manual_seed(12))
course.glue("nb_sub_eps2", float(1e3 * sub_checks["correct"].terms["eps2"]))
course.glue("nb_sub_paper_miss", float(-1e3 * sub_checks["paper"].diff))
course.glue("nb_sub_correct_z", float(sub_checks["correct"].z_score()))
neighbours.check_table(sub_checks, caption=(
    f"Sub-sampled pairs, M = {draws} draws; per-entry values × 10³. "
    f"(1/d')E‖g2(x) − g1(x)‖² = {1e3 * sub_checks['correct'].terms['eps2']:.4f}."))


# %%
# NBVAL_CHECK_OUTPUT
for name, checks in [("half-pixel shift", shift_checks), ("sub-sampled pairs", sub_checks)]:
    print(f"{name:<18} corrected Theorem 1 within 3 s.e.: {checks['correct'].agrees(3)};  "
          f"printed Eq. (2) within 3 s.e.: {checks['paper'].agrees(3)}")


# %% [markdown]
# The corrected identity holds within the error bars; the printed Eq. (2) misses by
# $\frac1d\E\norm{\boldsymbol\varepsilon}^2$ (compare its lhs − rhs with the value of
# $(1/d)\lVert\boldsymbol\varepsilon\rVert^2$ in the captions). Reading
# $\sigma_{\mathbf z}^2$ in Eq. (2) as
# $\frac1d\E\norm{\yp - \x}^2 = \sigma^2 + \frac1d\E\norm{\boldsymbol\varepsilon}^2$,
# the spread around the *input's* clean image, instead of as a variance, would make it
# exact.
#
# ## The weight γ of the regulariser (their Table 3)
#
# All runs use the same U-Net (the Noise2Noise U-Net of the course), data, seed, patches
# and number of steps; only $\gamma$ changes. As in the authors' code, $\gamma$ ramps
# linearly from 0 to its final value over the whole run (the default schedule: $\gamma_t$
# is $\gamma$ times the fraction of the training budget used). One step is a gradient
# pass on the $32\times32$ sub-images plus a gradient-free pass on the $64\times64$
# patch. The runs are short CPU runs, far from the paper's 100 epochs on ImageNet, so
# only the direction of the effects can be compared.


# %%
budget = cfg.budget_for("gamma sweep")


def train(gamma, sampler="random", seed=cfg.seed):
    torch.manual_seed(seed)
    method = Neighbor2Neighbor(UNet(1), sampler=sampler, gamma=gamma)
    hist = cfg.train(method, ex.training, "gamma sweep", seed=seed)
    outputs = [method.denoise(y) for y in ex.test_noisy]
    return {"method": method, "hist": hist, "outputs": outputs, "psnr": ex.mean_psnr(outputs)}


runs = {}


# %% [markdown]
# One training run per cell, $\gamma = 0, 2, 8, 20$.


# %%
runs[0.0] = train(0.0)


# %%
runs[2.0] = train(2.0)


# %%
runs[8.0] = train(8.0)


# %%
runs[20.0] = train(20.0)


# %%
paper_t3 = {0.0: 31.77, 2.0: 32.08, 8.0: 32.02, 20.0: 31.95}   # their Table 3 (Kodak, σ = 25)
best_gamma = max(runs, key=lambda g: runs[g]["psnr"])
for g, key in [(0.0, "nb_psnr_g0"), (2.0, "nb_psnr_g2"), (8.0, "nb_psnr_g8"), (20.0, "nb_psnr_g20")]:
    course.glue(key, float(runs[g]["psnr"]))
course.glue("nb_best_gamma", float(best_gamma))
rows = []
for g, r in runs.items():
    last = r["hist"].log[-1]
    rows.append([f"{g:g}", r["psnr"], r["psnr"] - psnr_noisy, r["hist"].step_ms, f"{last['rec']:.2e}",
                 f"{last['reg']:.2e}" if "reg" in last else None, paper_t3[g]])
table(["γ", "PSNR (dB)", "gain (dB)", "ms/step", "last rec", "last reg", "paper, Kodak (dB)"], rows,
      digits=[None, 2, 2, 0, None, None, 2],
      caption=f"{runs[0.0]['hist'].steps} steps per run, batch {budget.batch_size} × {budget.patch_size}²; "
              f"noisy input {psnr_noisy:.2f} dB; best γ here: {best_gamma:g}. Paper: their Table 3.")


# %% [markdown]
# The regulariser trades smoothness against noise ({prf:ref}`prop-nb-effective-target`):
# without it ($\gamma = 0$) the target is a neighbour, so edges and fine texture are
# averaged; a large $\gamma$ makes the target lean on the network's own full-resolution
# output and lets more noise through.
#
# **What this short run shows** (table above). Compare each difference with the
# difference between two seeds of the same setting, measured in the sampler comparison
# below: only differences larger than that are resolved by one short run per setting.
# The paper's Table 3 finds $\gamma = 2$ best after 100 epochs, with the loss at
# $\gamma = 8$ and $\gamma = 20$ growing with $\gamma$. The crops below show the outputs
# for the same test image.


# %%
k = min(4, len(ex.test_clean) - 1)   # Set12 05 (Monarch) when all images are loaded
crop = (slice(60, 188), slice(60, 188)) if ex.test_clean[k].shape[-1] >= 188 else None
show_figure(image_grid({"clean x": ex.test_clean[k], "noisy y": ex.test_noisy[k],
                        **{f"γ = {g:g}": r["outputs"][k] for g, r in runs.items()}},
                       reference=ex.test_clean[k], crop=crop, cols=3),
            alt="Crops of a clean and a noisy test image and of the outputs of Neighbor2Neighbor trained with "
                "gamma 0, 2, 8 and 20, with their PSNR.",
            caption="The same test crop denoised by the four γ runs (PSNR on the whole image).")


# %% [markdown]
# ## Random versus fixed-location sub-sampling (their Table 4)
#
# The fixed-location sampler uses one pair for all the cells of an image (drawn per
# image among the 12 ordered pairs, as the paper's construction), so its input is a
# regular decimation and its target the same decimation moved by one pixel, to the
# side, up or down, or diagonally. Same settings as the $\gamma = 2$ run above. To see
# how large a difference a single short run can resolve, the random sampler is also
# trained a second time with another seed (another initialisation, other patches and
# other sampler draws, same noisy training images).


# %%
runs_fixed = train(2.0, sampler="fixed")


# %%
runs_seed1 = train(2.0, seed=cfg.seed + 1)


# %%
random_minus_fixed = runs[2.0]["psnr"] - runs_fixed["psnr"]
seed_diff = runs[2.0]["psnr"] - runs_seed1["psnr"]
course.glue("nb_psnr_fixed", float(runs_fixed["psnr"]))
course.glue("nb_psnr_seed1", float(runs_seed1["psnr"]))
course.glue("nb_random_minus_fixed", float(random_minus_fixed))
course.glue("nb_seed_diff", float(seed_diff))
table(["sampler", "PSNR (dB)", "paper, Kodak σ = 25 (dB)"],
      [["random, seed 0", runs[2.0]["psnr"], 32.08], ["random, seed 1", runs_seed1["psnr"], None],
       ["fixed-location, seed 0", runs_fixed["psnr"], 32.05]], digits=[None, 2, 2],
      caption=f"random − fixed (seed 0): {random_minus_fixed:+.2f} dB (paper, their Table 4: +0.03 dB); "
              f"seed 0 − seed 1 (same sampler): {seed_diff:+.2f} dB.")


# %% [markdown]
# Compare the random-minus-fixed difference with the seed difference in the caption:
# when it is not larger, one run per setting does not rank the samplers; the paper's
# 0.03 dB is smaller still. Both samplers train a working denoiser from single noisy
# images.
#
# :::{admonition} Exercises
# :class: tip
# 1. Re-run the Monte-Carlo check on the sub-sampled pairs with `sampler="fixed"` in
#    `theorem1_check_subsampled`, with and without `diagonal=False`. Does the identity
#    still hold? Which terms change, and why is $\frac1d\E\norm{\boldsymbol\varepsilon}^2$
#    larger with the diagonal pairs?
# 2. Train with `gamma_schedule="constant"` at $\gamma = 8$. Does the ramp matter in a
#    short run? (The theory page argues that an early, poor full-resolution output
#    gives a poor gap estimate.)
# 3. Replace the box filter of the Monte-Carlo check by an untrained `UNet(1)` (in
#    `eval()` mode). The identity must still hold: it is true for *every* fixed $f$.
# :::


# %% tags=["remove-cell"]
course.provenance()
