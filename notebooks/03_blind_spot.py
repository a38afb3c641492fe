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
# # Blind-spot networks and MAP denoising (Laine et al. 2019)
#
# Masking-based methods (Part 2) make a network ignore the pixel it predicts by hiding
# a few pixels per image, and compute the loss on those few pixels only. Laine et al.
# {cite}`laine2019improved` build the blind spot **into the architecture** instead, so
# that every pixel of every training patch contributes to the loss, and then give the
# blind spot its information back at test time through Bayes' rule. The theory page
# {doc}`../book/03_blind_spot_theory` derives both parts; this notebook checks them on
# real images:
#
# 1. **the blind spot is exact** — autograd shows that the output at a pixel has zero
#    gradient with respect to the input at that pixel, while its four neighbours matter;
# 2. **the likelihood and the posterior mean** — the paper's ablation (its Table 1) on
#    colour images with Gaussian noise, σ = 25: a blind-spot network trained with plain
#    L2, with independent per-channel Gaussians, and with full 3×3 colour covariances,
#    each evaluated with its blind-spot mean μ and with the posterior mean (Eq. 3).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from denoise_lib import course, data, methods, metrics
from denoise_lib.course import plots as plot
from denoise_lib.models import BlindSpotUNet
from denoise_lib.models.blindspot import influence
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="03_blind_spot")
torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators

# %% [markdown]
# ## 1. The blind spot, checked by autograd
#
# The network runs one U-Net branch on the image rotated by 0°, 90°, 180° and 270° (the
# four copies share the batch axis, hence the weights). Inside the branch every 3×3
# convolution is **shifted**: its input gets two zero rows on top, so that output row
# $i$ only sees rows $i-2, i-1, i$; every 2×2 max-pool first shifts its input down by a
# row. The branch's receptive field is therefore the upper half-plane *including* the
# current row. One more row of shift at the end excludes the row itself; the four
# branches are rotated back and combined by 1×1 convolutions, and together they see
# every pixel but the centre.
#
# We take a small blind-spot network with random weights (in float64, so that "zero"
# means exactly zero), pick a pixel $p$ and compute
# $\bigl|\partial\, \mathrm{out}_p / \partial\, \mathrm{in}\bigr|$ over the whole input,
# for the complete network and for the un-rotated branch alone.

# %%
torch.manual_seed(0)
probe = BlindSpotUNet(in_channels=3, out_channels=3, features=8, depth=3).double()
x_probe = torch.rand((1, 3, 48, 48), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
p = (24, 20)
field = influence(probe, x_probe, p)              # whole network: every direction
half = influence(probe.branch, x_probe, p)        # one branch: rows above p only

fig, axes = plt.subplots(1, 3, figsize=(12, 4))
shown = [(field, "whole network: |∂out_p/∂in| (log)"), (half, "one branch: |∂out_p/∂in| (log)")]
for ax, (f, title) in zip(axes[:2], shown):
    ax.imshow(torch.log10(f + 1e-12).numpy(), cmap="magma", vmin=-8)
    ax.plot(p[1], p[0], "c+", ms=10)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
zoom = field[p[0] - 3:p[0] + 4, p[1] - 3:p[1] + 4]
axes[2].imshow(zoom.numpy(), cmap="magma")
axes[2].set_title("whole network, 7×7 around p (linear)", fontsize=10)
for (r, c), v in np.ndenumerate(zoom.numpy()):
    axes[2].text(c, r, "0" if v == 0 else "", ha="center", va="center", color="c", fontsize=12)
axes[2].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# The hole is one pixel wide: the four direct neighbours are in the field, $p$ is not
# (all three input channels of $p$ are excluded, as the theory requires for colour
# noise that is independent between pixels but not necessarily between channels). The
# same check at every corner, edge and centre pixel of images of odd and non-square
# sizes is the acceptance test `tests/test_blindspot.py`. Here it is as a pass/fail line:

# %%
# NBVAL_CHECK_OUTPUT
neighbours = [(p[0] - 1, p[1]), (p[0] + 1, p[1]), (p[0], p[1] - 1), (p[0], p[1] + 1)]
print(f"gradient at p == 0: {bool(field[p] == 0)}")
print(f"gradient at the 4 neighbours != 0: {all(bool(field[q] > 0) for q in neighbours)}")
print(f"one branch sees row i_p or below: {bool(half[p[0]:].sum() > 0)}")
odd = torch.rand((1, 3, 17, 23), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
corners = [(0, 0), (0, 22), (16, 0), (16, 22), (8, 11)]
print(f"17×23 image, corners and centre blind: {all(bool(influence(probe, odd, q)[q] == 0) for q in corners)}")

# %% [markdown]
# ### How tall is the half-plane?
#
# Each shifted convolution adds two rows at its resolution, and each level of the U-Net
# doubles the resolution step, so the branch sees far upwards. The table measures it
# with the same gradient (a thin random network, 512×512 input, output pixel (472, 472);
# the count varies by a few tens of rows with the pixel's position relative to the
# pooling grid).

# %%
# NBVAL_CHECK_OUTPUT
big = torch.rand((1, 1, 512, 512), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
for depth in range(1, 6):
    torch.manual_seed(depth)
    thin = BlindSpotUNet(in_channels=1, features=2, depth=depth).double()
    rows = influence(thin.body, big, (472, 472)).sum(1)
    print(f"depth {depth}: one branch sees {472 - int(rows.nonzero().min())} rows above its output")

# %% [markdown]
# This matters for training. If the patches are much shorter than the branch, every
# training pixel sees the zero padding above the patch, and the network can lean on it;
# on larger images it then fails (we measured 25 dB on 32×32 crops and 6–8 dB on 64×64
# and larger crops for a depth-3 network trained on 32×32 patches). The paper trains
# its depth-5 network (311 rows) on 256×256 patches. On a CPU we keep the same ratio
# with a smaller network: depth 2 (31 rows) on 32×32 patches; the `full` budget keeps it
# with the paper's width at depth 4 (151 rows) on 128×128 patches, and `paper` uses the
# paper's network on 256×256 patches.
#
# ## 2. The ablation of Table 1, on colour images
#
# **Data.** Training: the 199 colour BSD300 training images, each with **one fixed**
# noisy draw at σ = 25 (self-supervised: the methods never see a clean image, and the
# noise is never re-drawn; COURSE.md §3). Test: CBSD68, the colour version of BSD68,
# with its own fixed noise; the `quick` budget uses central 128×128 crops of 12 images.

# %%
sigma = 25 / 255
noise = Gaussian(sigma)
train_clean = data.load("bsd300_train", limit=cfg.pick(smoke=4, quick=None, full=None))
test_clean = data.load("cbsd68", limit=cfg.pick(smoke=2, quick=12, full=None))
crop = cfg.pick(smoke=64, quick=128, full=None)
if crop is not None:
    test_clean = [x[..., (x.shape[-2] - crop) // 2:(x.shape[-2] + crop) // 2,
                  (x.shape[-1] - crop) // 2:(x.shape[-1] + crop) // 2] for x in test_clean]
train_set = data.TrainingSet.from_clean(train_clean, noise, kind="single", seed=cfg.seed)
test_noisy = data.add_noise(test_clean, noise, seed=1000)
print(f"training: {len(train_clean)} noisy images (one draw each), "
      f"test: {len(test_clean)} CBSD68 images of {tuple(test_clean[0].shape[-2:])}")

# %% [markdown]
# **Three models, one network and one budget.** All three use the blind-spot U-Net:
#
# * **L2**: the network outputs a colour μ and is trained with
#   $\overline{(\mu - y)^2}$; at test time it can only return μ (the centre pixel is
#   ignored).
# * **Per-component**: the network also outputs one value $a_c$ per channel; the loss is
#   the Gaussian negative log-likelihood of each noisy channel on its own, with variance
#   $a_c^2 + \sigma^2$.
# * **Full**: the network outputs μ and the 6 entries of an upper-triangular $A$ with
#   $\Sigma_x = A^\top A$ (the theory page's parameterisation (X)); the loss is the NLL of
#   the noisy colour under $\mathcal N(\mu, \Sigma_x + \sigma^2 I)$ (Eq. 1 and §3 of the
#   paper), in float64.
#
# σ is known (the notebook's noise model is passed to `methods.build`). At test time the
# posterior mean $\hat x = (\Sigma_x^{-1} + \sigma^{-2} I)^{-1}(\Sigma_x^{-1}\mu + \sigma^{-2} y)$
# (Eq. 3), computed as $y - \sigma^2 (\Sigma_x + \sigma^2 I)^{-1}(y - \mu)$, puts the centre
# pixel back. `quick` trains a 16-feature, depth-2 network on small patches (about a
# minute per model on one CPU core); `full` a network of the paper's width (48 features)
# at depth 4 with its batch of 4 and learning rate 3·10⁻⁴ on 128×128 patches, sized to
# fit a free Colab GPU session; `paper` is the paper's own setting (depth 5, 256×256
# patches, 300 000 steps: 1.2 M images shown), for a student with many sessions; every
# run resumes from its checkpoint. The cell prints the budget in use.

# %%
net_size = cfg.run("full").net
budget = cfg.budget_for("full")
print(f"each model: {budget.steps or budget.seconds} {'steps' if budget.steps else 's'}, "
      f"batch {budget.batch_size} × {budget.patch_size}², lr {budget.lr:g}")
names = {"L2": "laine19-l2", "per-component": "laine19-percomp", "full": "laine19-pme"}
models, histories = {}, {}
for label, name in names.items():
    models[label] = methods.build(name, channels=3, noise=noise, net=net_size, seed=cfg.seed)
    histories[label] = cfg.train(models[label], train_set, label)
n_params = sum(p.numel() for p in models["full"].net.parameters())
print(f"network: {net_size}, {n_params:,} parameters (full model)")
for label, h in histories.items():
    print(f"{label:<14} {h.steps} steps in {h.seconds:.0f} s ({h.step_ms:.0f} ms/step)")

# %% [markdown]
# ### Results
#
# PSNR follows the 8-bit protocol (clip, quantise, compare) and is averaged over the
# test images. For the two likelihood models both outputs come from the **same**
# trained network; their difference is the gain of the MAP step alone. The last column
# gives the paper's numbers on its BSD300 test set after 300 000 steps of the full-size
# network, for orientation only (other test images, far longer training).

# %%
def mean_psnr(outputs):
    return float(np.mean([metrics.psnr(o, x) for o, x in zip(outputs, test_clean)]))


paper = {"L2": 28.61, "per-component": 29.87, "full": 30.99}   # Table 1, BSD300, σ = 25
scores = {"noisy input": (mean_psnr(test_noisy), None)}
estimates = {}
for label, m in models.items():
    estimates[label] = {"mu": [m.denoise(y, output="mu") for y in test_noisy]}
    if label != "L2":
        estimates[label]["pme"] = [m.denoise(y, output="pme") for y in test_noisy]
    scores[label] = (mean_psnr(estimates[label]["mu"]),
                     mean_psnr(estimates[label]["pme"]) if "pme" in estimates[label] else None)
print(f"{'':<15}{'PSNR μ':>9}{'PSNR MAP':>10}{'MAP gain':>10}{'paper (MAP)':>13}")
for label, (mu, pme) in scores.items():
    cells = [f"{mu:9.2f}", f"{pme:10.2f}" if pme else f"{'—':>10}",
             f"{pme - mu:+10.2f}" if pme else f"{'—':>10}",
             f"{paper[label]:13.2f}" if label in paper else f"{'':>13}"]
    print(f"{label:<15}" + "".join(cells))

# %% [markdown]
# What to look for: the MAP step adds a large gain over μ for both likelihood models
# (μ never sees the centre pixel; the posterior mean does), and the full model should
# end above the per-component one, because the errors of the three colour channels of
# the blind-spot prediction are strongly correlated — the per-channel model cannot use
# the noisy green value to correct red. With small budgets the gap between the two is
# the least stable number of the table; the gain of the MAP step is not.

# %%
k = min(3, len(test_clean) - 1)
plot.compare({"clean": test_clean[k], "noisy": test_noisy[k], "L2 (μ)": estimates["L2"]["mu"][k],
              "per-comp. (MAP)": estimates["per-component"]["pme"][k],
              "full (μ)": estimates["full"]["mu"][k], "full (MAP)": estimates["full"]["pme"][k]},
             reference=test_clean[k], size=2.6)

# %% [markdown]
# ### What the full model predicts besides the mean
#
# For one test image: the predicted standard deviation of the clean colour
# ($\sqrt{\operatorname{tr}\Sigma_x / 3}$), which is large at edges and texture and small
# in flat regions, and the predicted correlation between the red and green errors, which
# is what the full model exploits and the per-component model cannot represent.

# %%
full = models["full"].eval()
with torch.no_grad():
    dist = full.distribution(test_noisy[k].to(cfg.device))
sx = dist["sigma_x"][0].cpu()                                    # (H, W, 3, 3), float64
std = torch.sqrt(torch.diagonal(sx, dim1=-2, dim2=-1).mean(-1))
corr_rg = sx[..., 0, 1] / torch.sqrt(sx[..., 0, 0] * sx[..., 1, 1]).clamp_min(1e-30)
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
im = axes[0].imshow(std.numpy() * 255, cmap="viridis")
axes[0].set_title("predicted std of x (0–255 scale)", fontsize=10)
fig.colorbar(im, ax=axes[0], fraction=0.046)
im = axes[1].imshow(corr_rg.numpy(), cmap="coolwarm", vmin=-1, vmax=1)
axes[1].set_title("predicted R–G error correlation", fontsize=10)
fig.colorbar(im, ax=axes[1], fraction=0.046)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
print(f"median predicted std: {255 * std.median():.1f}/255 (noise σ = 25/255); "
      f"median R–G correlation: {corr_rg.median():.2f}")

# %% [markdown]
# **What to take away.** The blind spot is a property of the architecture, verified
# exactly by autograd, so every pixel of every patch trains the network. Trained on
# the noisy images alone, its mean μ is a denoiser that never uses the centre pixel;
# predicting a distribution instead of a mean lets the posterior mean (Eq. 3) weigh the
# centre pixel against the prediction, pixel by pixel, by their variances — a large
# gain for free at test time. Modelling the colour covariance, not only per-channel
# variances, is what makes that weighting work for RGB.
#
# :::{admonition} Exercise
# :class: tip
# Build the full model with `sigma_mode="global"` (σ learned as one number) instead of
# the known σ, train it as above and print `models[...].sigma(test_noisy[0])`. Why can a
# likelihood that depends on $\Sigma_x + \sigma^2 I$ alone not tell σ from $\Sigma_x$, and
# what in the loss (see the `Laine19` docstring) breaks the tie? How close does the learned
# σ get to 25/255 in this budget?
# :::

# %%
course.provenance()
