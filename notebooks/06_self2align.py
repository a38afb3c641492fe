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
# # Self2Align: aligning noisy frames before Noise2Noise
#
# Self2Align {cite}`wang2022self2align` trains a denoiser on pairs of noisy frames of a
# **moving** scene. Noise2Noise on such pairs learns the *moved* clean image
# ({doc}`../book/06_self2align_theory`, {prf:ref}`thm-s2a-identity`), so the method first
# aligns the second frame onto the first with a network, then trains with the
# Noise2Noise loss on the pixels that an SSIM-driven Bernoulli sampler keeps
# (Eq. (7)).
#
# This notebook
#
# 1. checks the **corrected** loss identity of the theory page by Monte Carlo, and shows
#    that the printed Eq. (4) disagrees;
# 2. measures the per-entry mean squared gap $\bar\varepsilon^2$ between the clean images
#    of generated moving pairs, before and after alignment, and shows the SSIM-driven
#    sampler at work;
# 3. trains Noise2Noise on raw misaligned pairs, on aligned pairs, and on aligned pairs
#    with the sampler (the idea of the paper's Table 2), and compares their PSNR;
# 4. aligns a real misaligned pair, the two views of `skimage.data.stereo_motorcycle()`,
#    with noise added.


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
import skimage.data
import torch

from denoise_lib import course, data, ops
from denoise_lib.course import alignment
from denoise_lib.course.alignment import epsilon_identity, measure_alignment
from denoise_lib.course.report import image_grid, show_figure, table
from denoise_lib.data import motion
from denoise_lib.image import as_image
from denoise_lib.methods.n2n import Noise2Noise
from denoise_lib.methods.self2align import Self2Align
from denoise_lib.ops import gaussian_smooth
from denoise_lib.models import UNet
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="06_self2align")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## Data: moving pairs simulated from still images
#
# No video data ships with the course. `motion.misaligned_pairs` turns each clean still
# image into a pair of noisy frames. The reference frame is the image itself. The second
# frame is the image moved by a random displacement field, and each frame gets its own
# independent Gaussian noise ($\sigma = 25/255$). The motion is that of neighbouring
# frames of a hand-held video (`motion.DEFAULT_MOTION`): a shift of at most 3 pixels per
# axis, a rotation of at most 1°, and an elastic field of about 1 pixel rms. It was fixed
# before any denoising run. The reference frames are exactly the noisy training images
# of the other chapters (checked below). Only the second frames differ from
# Noise2Noise's pairs, and they differ only by the motion.
#
# Training uses BSD400 (the course's shared set-up). The tests use BSD68 images: clean
# images with fresh noise for PSNR, and fresh moving pairs for measuring the alignment.


# %%
sigma = 25 / 255
noise = Gaussian(sigma)
ex = course.experiment(cfg, noise, kind="single", test="bsd68")
pairs = motion.misaligned_pairs(ex.train_clean, noise, seed=cfg.seed)
same_refs = all(torch.equal(a, b) for a, b in zip(pairs.noisy, ex.training.noisy))
psnr_noisy = ex.mean_psnr(ex.test_noisy)
n_align = cfg.pick(smoke=2, quick=12, full=68)          # test pairs for the alignment measurements
test_pairs, test_moved, test_flows = motion.misaligned_pairs(ex.test_clean[:n_align], noise, seed=77,
                                                             return_clean=True)
disp = torch.cat([f.norm(dim=1).flatten() for f in test_flows])
print(ex.describe())
print("motion between the two frames:", motion.DEFAULT_MOTION)
print(f"training pairs: {len(pairs.noisy)} (kind {pairs.kind!r}, clean images held: {pairs.clean is not None}); "
      f"reference frames = the other chapters' noisy training images: {same_refs}")
print(f"{n_align} test pairs: displacement mean {disp.mean():.2f} px, 95th percentile {disp.quantile(0.95):.2f} px, "
      f"max {disp.max():.2f} px")


# %%
k = 0
show_figure(image_grid({"clean reference x": ex.test_clean[k], "clean second frame\nx + ε": test_moved[k],
                        "gap ε": test_moved[k] - ex.test_clean[k], "|displacement| (px)": test_flows[k].norm(dim=1, keepdim=True)},
                       cols=4, fontsize=9, cmap={"gap ε": ("RdBu", -0.5, 0.5),
                                                 "|displacement| (px)": ("viridis", 0, None)}),
            alt="A clean test image, the same image moved by a small random motion, their difference, which is "
                "large at edges, and the size of the displacement field.",
            caption="A simulated moving pair: the clean images of the two frames, the gap ε between them and the "
                    "displacement in pixels.")


# %% [markdown]
# ## The loss identity, corrected (their Eq. (4))
#
# For $\y = \x + \nz$ and $\yp = \x + \boldsymbol\varepsilon + \np$ with independent
# noises, the theory page proves, for **every** $f$,
#
# $$
# \begin{aligned}
# \E\norm{f(\y) - \yp}^2 &= \E\norm{f(\y) - \x}^2 + \E\norm{\x - \yp}^2
# - 2\E\norm{\boldsymbol\varepsilon}^2 - 2\E\inner{\boldsymbol\varepsilon}{f(\y) - \yp} \\
# &= \E\norm{f(\y) - (\x + \boldsymbol\varepsilon)}^2 + \E\norm{\np}^2 ,
# \end{aligned}
# $$
#
# whereas the paper prints
# $\E\norm{f(\y) - \x}^2 - \E\norm{\x - \yp}^2 - 2\boldsymbol\varepsilon\E(f(\y) - \yp)$.
# We estimate every term by Monte Carlo. The images are four $128\times128$ crops of test
# images with a fixed motion. The function $f$ is a fixed Gaussian smoothing (the
# identity holds for any $f$). There are 200 independent noise draws. All values are per
# entry ($\div d$), and each gap comes with the standard error of its mean over the draws.
# The setup is the same in every budget.


# %%
crop = lambda x: x[..., :128, :128]  # noqa: E731
x_id = torch.cat([crop(x) for x in data.load("bsd68", limit=4)])
flows_id = [motion.random_flow(128, 128, generator=torch.Generator().manual_seed(i)) for i in range(len(x_id))]
moved_id = torch.cat([motion.move(x_id[i:i + 1], f) for i, f in enumerate(flows_id)])
f_fixed = lambda y: gaussian_smooth(y, 1.0)  # noqa: E731
r = epsilon_identity(f_fixed, x_id, moved_id, noise, draws=200, generator=torch.Generator().manual_seed(5))
course.glue("s2a_id_eps2", float(1e3 * r["eps2"]))
course.glue("s2a_id_gap_z", float(r["gap"] / r["gap_se"]))
course.glue("s2a_id_printed_gap", float(1e3 * r["gap_printed"]))
course.glue("s2a_id_two_sigma2", float(1e3 * 2 * sigma ** 2))
table(["quantity (per entry, × 10³)", "value", "lhs − rhs", "s.e."],
      [["left side E‖f(y) − y′‖²/d", 1e3 * r["lhs"], None, None],
       ["right side, corrected (Eq. (4) fixed)", 1e3 * r["rhs"], f"{1e3 * r['gap']:+.4f}", 1e3 * r["gap_se"]],
       ["right side, N2C form E‖f(y) − (x + ε)‖² + E‖n′‖²", 1e3 * r["lhs_as_n2c"], f"{1e3 * r['gap_n2c']:+.4f}",
        1e3 * r["gap_n2c_se"]],
       ["right side, as printed in the paper", 1e3 * r["rhs_printed"], f"{1e3 * r['gap_printed']:+.4f}",
        1e3 * r["gap_printed_se"]],
       ["2σ² (the predicted error of the printed form)", 1e3 * 2 * sigma ** 2, None, None]],
      digits=[None, 4, None, 4],
      caption=f"ε̄² = ‖ε‖²/d = {1e3 * r['eps2']:.3f} × 10⁻³, σ² = {1e3 * sigma ** 2:.3f} × 10⁻³.")


# %%
# NBVAL_CHECK_OUTPUT
print("corrected identity holds (|gap| < 3 s.e.):", abs(r["gap"]) < 3 * r["gap_se"])
print("N2C form holds (|gap| < 3 s.e.):", abs(r["gap_n2c"]) < 3 * r["gap_n2c_se"])
print("printed Eq. (4) rejected (gap > 10 s.e.):", r["gap_printed"] > 10 * r["gap_printed_se"])
print("printed gap within 5 % of 2σ²:", abs(r["gap_printed"] / (2 * sigma ** 2) - 1) < 0.05)


# %% [markdown]
# The corrected identity agrees within its error bar. The printed version misses by
# twice the noise power of the target, as the theory page predicts.
#
# ## Training: raw pairs, aligned pairs, aligned pairs with the sampler
#
# Three runs, all with the same denoiser (the Noise2Noise U-Net), the same training pairs,
# seed and number of steps, through the library's one training loop (`train.fit`,
# random $64\times64$ crops, the same crop and flip on both frames):
#
# - **N2N, raw pairs**: `Noise2Noise` on the misaligned pairs as they are;
# - **aligned**: `Self2Align(sampler=False)`. The alignment network is trained with its
#   L2 loss on the noisy frames, and the denoiser with Noise2Noise on the aligned target;
# - **aligned + sampler**: `Self2Align()`, the full method, with the Bernoulli sampler of
#   Eq. (7) on the SSIM of the smoothed aligned pair.
#
# The alignment network never sees a clean image, and neither does the denoiser.


# %%
budget = cfg.budget_for("aligned")
variants = {
    "N2N, raw pairs": lambda: Noise2Noise(UNet(1)),
    "aligned": lambda: Self2Align(UNet(1), sampler=False),
    "aligned + sampler": lambda: Self2Align(UNet(1)),
}
runs = {}
for name, make in variants.items():
    torch.manual_seed(cfg.seed)
    method = make()
    hist = cfg.train(method, pairs, name)
    runs[name] = (method, hist)
course.glue("s2a_keep", float(runs["aligned + sampler"][1].log[-1]["keep"]))
table(["run", "time (s)", "ms/step", "kept pixels (last log)", "mean |flow| (px)"],
      [[name, h.seconds, h.step_ms, h.log[-1].get("keep"), h.log[-1].get("flow")] for name, (m, h) in runs.items()],
      digits=[None, 1, 0, 3, 2],
      caption=f"{hist.steps} steps per run, batch {budget.batch_size} × {budget.patch_size}².")


# %% [markdown]
# ## The gap before and after alignment
#
# The alignment network of the full method estimates a flow from the **noisy** frames
# of fresh test pairs. We apply that flow to the **clean** second frame (bicubic) and
# measure $\bar\varepsilon^2 = \frac1d\norm{\boldsymbol\varepsilon}^2$ =
# `alignment.mismatch`, the mean squared difference to the clean reference. A border of
# 10 pixels is excluded, where content enters or leaves the frame; the region is the
# same before and after.


# %%
aligner = runs["aligned + sampler"][0]
eps = measure_alignment(aligner.align, test_pairs.noisy, test_pairs.target, ex.test_clean[:n_align], test_moved,
                        border=cfg.pick(smoke=8, quick=10, full=10))
before, after = float(np.mean(eps["before"])), float(np.mean(eps["after"]))
reduction = 1 - after / before
course.glue("s2a_eps_before", float(1e3 * before))
course.glue("s2a_eps_after", float(1e3 * after))
course.glue("s2a_eps_reduction", float(100 * reduction))
course.glue("s2a_bound_before", float(2 * np.sqrt(before)))
course.glue("s2a_bound_after", float(2 * np.sqrt(after)))
improved = sum(a < b for a, b in zip(eps["after"], eps["before"]))
table(["", "ε̄² before (× 10⁻³)", "ε̄² after (× 10⁻³)", "bound 2ε̄ on the excess RMSE"],
      [["mean", 1e3 * before, 1e3 * after, f"{2 * np.sqrt(before):.4f} → {2 * np.sqrt(after):.4f}"],
       ["median", 1e3 * float(np.median(eps["before"])), 1e3 * float(np.median(eps["after"])), None],
       ["largest", 1e3 * max(eps["before"]), 1e3 * max(eps["after"]), None]],
      digits=[None, 3, 3, None],
      caption=f"{n_align} test pairs: the mean squared gap is reduced by {100 * reduction:.0f} %, and alignment "
              f"lowers it on {improved} of the {n_align} pairs.")


# %% [markdown]
# One pair in detail: the frames, the aligned second frame, the clean gap before and
# after alignment, and the sampler of Eq. (7): the local SSIM of the smoothed aligned
# pair, the keep probability $p$ (1 above an SSIM of 0.5, the SSIM below), and one
# Bernoulli draw of the mask of the loss.


# %%
h, w = ex.test_clean[k].shape[-2:]
win = (slice(max(0, h // 2 - 80), h // 2 + 80), slice(max(0, w // 2 - 80), w // 2 + 80))
fig, shown = alignment.sampler_figure(aligner, test_pairs.noisy[k], test_pairs.target[k], ex.test_clean[k],
                                      test_moved[k], generator=torch.Generator().manual_seed(4), crop=win)
course.glue("s2a_fig_keep", float(100 * shown["keep"]))
show_figure(fig, glue="s2a_fig_sampler",
            alt="Eight panels for one simulated moving pair: the noisy reference, the noisy second frame, the second "
                "frame aligned by the network and one Bernoulli mask of kept pixels; below, the clean gap before and "
                "after alignment, the SSIM map of the smoothed aligned pair and the keep probability.",
            caption="Self2Align on one test pair (a crop). Top: the noisy frames, the second frame aligned by the "
                    "trained network, one Bernoulli mask of the loss. Bottom: the clean gap before and after "
                    "alignment (flow estimated from the noisy frames), the SSIM of the smoothed aligned pair and "
                    "the keep probability of Eq. (7).")


# %%
y1, y2 = test_pairs.noisy[k], test_pairs.target[k]
aligned_noisy, flow = aligner.align(y1, y2)
true_inverse = -test_flows[k]  # exact for the shift part; the estimated flow should look like it
fig, ax = plt.subplots(figsize=(4.2, 3.6))
ax.plot(true_inverse[0, 0].flatten()[::37], flow[0, 0].flatten()[::37], ".", ms=2, label="horizontal")
ax.plot(true_inverse[0, 1].flatten()[::37], flow[0, 1].flatten()[::37], ".", ms=2, label="vertical")
lim = float(true_inverse.abs().max()) + 1
ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
ax.set_xlabel("−(true motion) (px)")
ax.set_ylabel("estimated flow (px)")
ax.legend(markerscale=5, fontsize=9)
fig.tight_layout()
show_figure(fig, alt="Scatter plot of the estimated flow against minus the true motion, for the horizontal and the "
                     "vertical component; the points lie near the diagonal.",
            caption="Estimated flow against the inverse of the true motion (every 37th pixel).")


# %% [markdown]
# ## Denoising: raw versus aligned versus aligned + sampler
#
# PSNR on the BSD68 test images with fresh noise. Inference is one pass of each denoiser.


# %%
results = {name: ex.mean_psnr([m.denoise(y) for y in ex.test_noisy]) for name, (m, _) in runs.items()}
align_gain = results["aligned"] - results["N2N, raw pairs"]
sampler_gain = results["aligned + sampler"] - results["aligned"]
course.glue("s2a_psnr_noisy", float(psnr_noisy))
course.glue("s2a_psnr_raw", float(results["N2N, raw pairs"]))
course.glue("s2a_psnr_aligned", float(results["aligned"]))
course.glue("s2a_psnr_sampler", float(results["aligned + sampler"]))
course.glue("s2a_align_gain", float(align_gain))
course.glue("s2a_sampler_gain", float(sampler_gain))
table(["denoiser", "PSNR (dB)", "gain over noisy (dB)"],
      [["noisy input", psnr_noisy, None]] + [[name, p, p - psnr_noisy] for name, p in results.items()],
      digits=[None, 2, 2],
      caption=f"{len(ex.test_clean)} BSD68 test images, σ = 25/255. Alignment gains {align_gain:+.2f} dB over "
              f"raw pairs; the sampler adds {sampler_gain:+.2f} dB.")


# %%
k1 = 1 if len(ex.test_clean) > 1 else 0
outs = {name: m.denoise(ex.test_noisy[k1]) for name, (m, _) in runs.items()}
h1, w1 = ex.test_clean[k1].shape[-2:]
view = (slice(40, min(h1, 200)), slice(60, min(w1, 260))) if h1 > 200 else None
show_figure(image_grid({"clean": ex.test_clean[k1], "noisy": ex.test_noisy[k1], **outs},
                       reference=ex.test_clean[k1], crop=view, cols=3),
            alt="Crops of a clean and a noisy test image and of the outputs of the three denoisers, trained on raw "
                "pairs, aligned pairs, and aligned pairs with the sampler.",
            caption="One test image (crop) denoised by the three runs; PSNR on the whole image.")


# %% [markdown]
# Noise2Noise on the raw pairs learns the moved image averaged over the motion, which is
# a blurred denoised image (theory page, {eq}`s2a-minimiser`); the crops above show it.
# Aligning the target removes most of the gap, and with it most of the blur. The tables
# above give the size of both effects in this run, and the theory page's bound,
# $2\bar\varepsilon$ on the excess RMSE, shrinks with $\bar\varepsilon^2$. The sampler's
# own contribution is the last difference of the table: on these simulated pairs almost
# every pixel is well aligned (the kept fraction of the training log is close to 1), so
# there is little for it to discard. Real video, with occlusions and objects that move
# independently, gives it more to do.
#
# ## A real misaligned pair: `stereo_motorcycle`
#
# scikit-image ships the two views of a Middlebury stereo pair together with the true
# disparity of the left view. The views differ by a horizontal displacement of about
# 7–60 pixels that depends on depth, and by occlusions. Our network is built for the few
# pixels between neighbouring video frames. We therefore (i) reduce the images 4× and
# convert them to gray, (ii) remove the bulk of the displacement with a classical global
# registration (`alignment.global_shift`: the integer translation that minimises the squared
# difference of the smoothed noisy views), and (iii) let the trained network align the
# rest, from noisy views ($\sigma = 25/255$, independent noise on each view).


# %%
left, right, disparity = skimage.data.stereo_motorcycle()
small = lambda a: torch.nn.functional.avg_pool2d(as_image(a, channels=1), 4)  # noqa: E731
x_left, x_right = small(left), small(right)
known = torch.from_numpy((np.isfinite(disparity) & (disparity > 0)).astype(np.float32))[None, None]
disp = torch.from_numpy(np.nan_to_num(disparity, nan=0.0, posinf=0.0, neginf=0.0))[None, None] * known
disp = torch.nn.functional.avg_pool2d(disp, 4)
coverage = torch.nn.functional.avg_pool2d(known, 4)
disp = disp / coverage.clamp_min(1e-6) / 4       # true disparity at 1/4 scale, in reduced pixels
g = torch.Generator().manual_seed(3)
y_left, y_right = noise(x_left, g), noise(x_right, g)
pre = alignment.global_shift(y_left, y_right, max_shift=16)     # classical, from the noisy views
y_right_pre = ops.warp(y_right, pre)
x_right_pre = ops.warp(x_right, pre)
aligned_y, flow_real = aligner.align(y_left, y_right_pre)
x_right_aligned = ops.warp(x_right_pre, flow_real, mode="bicubic")
total = flow_real[0, 0] + pre[0, 0]           # total horizontal flow: the network's plus the global one
valid = coverage[0, 0] == 1
border = 8
inner = torch.zeros_like(valid)
inner[border:-border, border:-border] = True
e_global = alignment.mismatch(x_left, x_right_pre, border=border)
e_net = alignment.mismatch(x_left, x_right_aligned, border=border)
e_raw = alignment.mismatch(x_left, x_right, border=border)
err = (total + disp[0, 0])[valid & inner].abs()
err_global = (pre[0, 0] + disp[0, 0])[valid & inner].abs()
course.glue("s2a_real_raw", float(1e3 * e_raw))
course.glue("s2a_real_global", float(1e3 * e_global))
course.glue("s2a_real_net", float(1e3 * e_net))
course.glue("s2a_real_err_net", float(err.median()))
course.glue("s2a_real_err_global", float(err_global.median()))
table(["", "raw views", "after the global shift", "after the network"],
      [["ε̄² on the clean views (× 10⁻³)", 1e3 * e_raw, 1e3 * e_global, 1e3 * e_net],
       ["median |estimated − true| horizontal displacement (px)", None, float(err_global.median()), float(err.median())]],
      digits=[None, 3, 3, 3],
      caption=f"Views {tuple(x_left.shape[-2:])} after 4× reduction; true disparity {disp[0, 0][valid].min():.1f}–"
              f"{disp[0, 0][valid].max():.1f} px (median {disp[0, 0][valid].median():.1f}); global shift found on the "
              f"noisy views: {pre[0, 0, 0, 0]:+.0f} px horizontal, {pre[0, 1, 0, 0]:+.0f} px vertical; border of "
              f"{border} px excluded.")


# %%
top = float(disp.max())
show_figure(image_grid({"noisy left view\n(reference)": y_left, "noisy right view,\nglobally shifted": y_right_pre,
                        "right view aligned\nby the network": aligned_y,
                        "estimated\ndisparity (px)": -total, "true\ndisparity (px)": disp[0, 0],
                        "clean difference\nafter the network": x_right_aligned - x_left},
                       cols=3, fontsize=9,
                       cmap={"estimated\ndisparity (px)": ("magma", 0, top), "true\ndisparity (px)": ("magma", 0, top),
                             "clean difference\nafter the network": ("RdBu", -0.4, 0.4)}),
            alt="The noisy stereo views, the right view aligned by the network, the estimated and the true disparity "
                "maps on the same colour scale, and the clean difference that remains after the network's alignment.",
            caption="A real misaligned pair (stereo_motorcycle, 4× reduced, noisy). The network was trained only on "
                    "simulated motion.")


# %% [markdown]
# The network was trained only on simulated motion of BSD400 images. On the real pair
# it recovers the coarse depth layout (the motorcycle and the floor nearer, the wall
# farther) but not its fine structure, and the table above compares the gap it leaves
# with that of the global shift alone. The differences that remain concentrate at the
# outline of the motorcycle, where one view sees what the other cannot (occlusions),
# and in the background, where the residual displacement after the global shift can
# exceed the 6-pixel reach of the network's attention window.
#
# :::{admonition} Exercises
# :class: tip
# 1. Train `Self2Align(align=False)`: the sampler on raw pairs. Where does it fall
#    between "N2N, raw pairs" and "aligned"? Look at `keep` in the training log.
# 2. Double the motion (`misaligned_pairs(..., max_shift=6, max_rotation=4)`). How do
#    $\bar\varepsilon^2$ before alignment and the PSNR of the raw-pair run change? Is the
#    alignment network's reach (`AlignNet(radius=...)`) still sufficient?
# 3. Set `loss_smoothing=0` (the plain L2 of the paper on noisy frames) and check the
#    fractional parts of the estimated flows of a pure integer shift. Do you see the
#    half-pixel bias of the theory page's exercise?
# :::


# %% tags=["remove-cell"]
course.provenance()
