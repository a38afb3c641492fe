# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: mystnb
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   mystnb:
#     render_markdown_format: gfm
# ---

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

from denoise_lib import course, data, methods, metrics
from denoise_lib.course import figures_blindspot as figs
from denoise_lib.course.report import show_figure, table
from denoise_lib.models import BlindSpotUNet
from denoise_lib.models.blindspot import influence
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="03_blind_spot")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## The blind spot, checked by autograd
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
_ = torch.manual_seed(0)
probe = BlindSpotUNet(in_channels=3, out_channels=3, features=8, depth=3).double()
x_probe = torch.rand((1, 3, 48, 48), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
p = (24, 20)
field = influence(probe, x_probe, p)              # whole network: every direction
half = influence(probe.branch, x_probe, p)        # one branch: rows above p only
show_figure(figs.receptive_field_figure(field, half, p),
            alt="Three heat maps of the gradient of one output pixel of a random blind-spot network with respect "
                "to a 48 by 48 input: the whole network responds to every pixel except the output pixel itself, "
                "one branch only to the rows above it, and a 7 by 7 close-up shows a zero at the centre.",
            caption="Receptive field of a blind-spot network at pixel p (cross), from autograd, log scale. Left: "
                    "the whole network sees every pixel but p. Middle: one branch, after its final one-row "
                    "shift, sees only the rows above p. Right: linear close-up; the gradient at p is exactly 0.",
            glue="receptive_field_fig")


# %% [markdown]
# The hole is one pixel wide: the four direct neighbours are in the field, $p$ is not
# (all three input channels of $p$ are excluded, as the theory requires for colour
# noise that is independent between pixels but not necessarily between channels). The
# same check at every corner, edge and centre pixel of images of odd and non-square
# sizes is the acceptance test `tests/test_blindspot.py`. Here it is as a pass/fail line:


# %%
# NBVAL_CHECK_OUTPUT
neighbours = [(p[0] - 1, p[1]), (p[0] + 1, p[1]), (p[0], p[1] - 1), (p[0], p[1] + 1)]
course.glue("blind_exact", bool(field[p] == 0))
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
# the count varies by a few rows with the pixel's position relative to the pooling
# grid).


# %%
# NBVAL_CHECK_OUTPUT
reach = {depth: figs.branch_rows(depth, size=512, pixel=472, seed=depth) for depth in range(1, 6)}
for depth, n in reach.items():
    course.glue(f"branch_rows_d{depth}", n)
table(["U-Net depth (poolings)", *reach], [["rows above the output one branch sees", *reach.values()]],
      align="l" + "r" * len(reach))


# %% [markdown]
# This matters for training. If the patches are much shorter than the branch, every
# training pixel sees the zero padding above the patch, and the network can learn
# features that rely on it; on larger images, where most pixels are far from any
# border, those features misfire and the results collapse. The paper trains its depth-5
# network (last column of the table) on 256×256 patches. On a CPU we keep a similar
# ratio with a smaller network: depth 2 on 32×32 patches; the `full` budget keeps it
# with the paper's width at depth 4 on 128×128 patches, and `paper` uses the paper's
# network on 256×256 patches.
#
# ## The ablation of Table 1, on colour images
#
# **Data.** Training: the 199 colour BSD300 training images, each with **one** noisy
# draw at σ = 25/255, made once. The methods never see a clean image, and the noise is
# never drawn again: fresh noise at every step would give the network several
# independent noisy versions of each image, which is the Noise2Noise setting, not this
# one. Test: CBSD68, the colour version of BSD68, with its own fixed noise; the `quick`
# budget uses central 128×128 crops of 12 images.


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
course.glue("n_test", len(test_clean))
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
# pixel back. `quick` trains a 16-feature, depth-2 network on small patches; `full` a network of the paper's width (48 features)
# at depth 4 with its batch of 4 and learning rate 3·10⁻⁴ on 128×128 patches, sized to
# fit a free Colab GPU session; `paper` is the paper's own setting (depth 5, 256×256
# patches, 300 000 steps: 1.2 M images shown), for a student with many sessions; every
# run resumes from its checkpoint. The cell prints the budget in use.


# %%
net_size = cfg.run("full").net
budget = cfg.budget_for("full")
names = {"L2": "laine19-l2", "per-component": "laine19-percomp", "full": "laine19-pme"}
models, histories = {}, {}
for label, name in names.items():
    models[label] = methods.build(name, channels=3, noise=noise, net=net_size, seed=cfg.seed)
    histories[label] = cfg.train(models[label], train_set, label)
n_params = sum(p.numel() for p in models["full"].net.parameters())
course.glue("train_steps", histories["full"].steps)
table(["model", "steps", "seconds", "ms/step"],
      [[label, h.steps, h.seconds, h.step_ms] for label, h in histories.items()], digits=[None, None, 0, 0],
      caption=f"Network {net_size}, {n_params:,} parameters (full model); batch {budget.batch_size} × "
              f"{budget.patch_size}² patches, learning rate {budget.lr:g}.")


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
psnr_noisy = course.glue("psnr_noisy", mean_psnr(test_noisy))
estimates, rows = {}, [["noisy input", psnr_noisy, None, None, None]]
for label, m in models.items():
    estimates[label] = {"mu": [m.denoise(y, output="mu") for y in test_noisy]}
    if label != "L2":
        estimates[label]["pme"] = [m.denoise(y, output="pme") for y in test_noisy]
    mu = mean_psnr(estimates[label]["mu"])
    pme = mean_psnr(estimates[label]["pme"]) if "pme" in estimates[label] else None
    key = {"L2": "l2", "per-component": "percomp", "full": "full"}[label]
    course.glue(f"psnr_{key}_mu", mu)
    if pme is not None:
        course.glue(f"psnr_{key}_pme", pme)
        course.glue(f"gain_{key}", pme - mu)
    rows.append([label, mu, pme, None if pme is None else f"{pme - mu:+.2f}", paper[label]])
course.glue("full_minus_percomp", rows[3][2] - rows[2][2])
table(["model", "μ (dB)", "posterior mean (dB)", "gain (dB)", "paper (dB)"], rows, digits=2,
      caption=f"PSNR on CBSD68, σ = 25/255, {len(test_clean)} images of {tuple(test_clean[0].shape[-2:])}. μ: the "
              "blind-spot prediction; gain: posterior mean minus μ; paper: Table 1 of Laine et al. (2019) on "
              "BSD300 (posterior mean, full-size network, 300 000 steps), for orientation only.")


# %% [markdown]
# What to look for: the MAP step adds a large gain over μ for both likelihood models
# (μ never sees the centre pixel; the posterior mean does), and the full model should
# end above the per-component one, because the errors of the three colour channels of
# the blind-spot prediction are strongly correlated — the per-channel model cannot use
# the noisy green value to correct red. With small budgets the gap between the two is
# the least stable number of the table; the gain of the MAP step is not.


# %%
k = min(3, len(test_clean) - 1)
show_figure(figs.image_panels({"clean": test_clean[k], "noisy": test_noisy[k], "L2 (μ)": estimates["L2"]["mu"][k],
                               "per-comp. (MAP)": estimates["per-component"]["pme"][k],
                               "full (μ)": estimates["full"]["mu"][k], "full (MAP)": estimates["full"]["pme"][k]},
                              reference=test_clean[k], columns=3),
            alt="Six colour crops of one CBSD68 test image: clean, noisy, the L2 blind-spot estimate, the "
                "per-component posterior mean, and the full model's prior mean and posterior mean, each with its PSNR.",
            caption="One test image. μ is the blind-spot prediction, which never sees the centre pixel; MAP is "
                    "the posterior mean (Eq. 3), which weighs the noisy pixel against it.")


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
fig, std, corr_rg = figs.uncertainty_figure(dist["sigma_x"][0].cpu())   # (H, W, 3, 3), float64
median_std = course.glue("median_std_255", 255 * float(std.median()))
median_corr = course.glue("median_corr_rg", float(corr_rg.median()))
show_figure(fig, alt="Two maps of one test image: the predicted standard deviation of the clean colour, large "
                     "at edges and texture, and the predicted correlation between the red and green errors.",
            caption=f"Full model, one test image. Left: predicted std of x on the 0–255 scale (median "
                    f"{median_std:.1f}; noise σ = 25). Right: predicted R–G error correlation (median "
                    f"{median_corr:.2f}).")


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


# %% tags=["remove-cell"]
course.provenance()
