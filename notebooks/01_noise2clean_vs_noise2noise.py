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
# # Noise2Clean vs Noise2Noise
#
# The theory page {doc}`../book/01_noise2noise_theory` proves that, when the target
# noise $n'$ has zero mean given the clean image and is independent of the input, the
# Noise2Noise loss equals the Noise2Clean loss **plus a constant**, for every
# network $f$:
#
# $$
# \mathbb{E}\,\overline{(f(y) - y')^2} \;=\; \mathbb{E}\,\overline{(f(y) - x)^2} \;+\; \sigma^2 ,
# $$
#
# where the bar is the mean over pixels (the library's loss convention) and $\sigma^2$
# the per-pixel noise variance. So both losses have the same minimiser, and a network
# trained on noisy targets should denoise about as well as one trained on clean
# targets {cite}`lehtinen2018noise2noise`.
#
# This notebook trains both on **the same** noisy training images and measures
#
# 1. the denoising quality of each (PSNR/SSIM on Set12);
# 2. the offset between the two losses, for several fixed networks $f$, against $\sigma^2$;
# 3. what the gap between the two *training curves* measures (they belong to two
#    different networks).


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

from denoise_lib import course, data, methods, metrics
from denoise_lib.course import figures_basics as figs
from denoise_lib.course.report import image_grid, show_figure, table
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="01_noise2clean_vs_noise2noise")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## Data: one fixed noisy training set
#
# Training images: BSD400, the 400 grayscale 180×180 crops used to train DnCNN
# {cite}`zhang2017dncnn` (on a GPU the papers train on larger sets; this course trains
# on BSD400 on the CPU). The course's shared set-up `course.experiment` draws the noise
# **once**: every image gets one noisy observation $y$ and, for Noise2Noise, a second,
# independent one $y'$. Noise2Clean trains on $(y, x)$; Noise2Noise on $(y, y')$, using
# each patch's two observations in a random order (either one is a valid input). Fixed
# draws are what a photographer has — a finite set of noisy shots — whereas fresh noise at
# every step would hand both methods an unlimited supply of independent observations and
# hide the finite-data cost of noisy targets that the theory page analyses. The test
# images are Set12 with the test noise shared by every notebook.


# %%
sigma = 25 / 255
ex = course.experiment(cfg, Gaussian(sigma), kind="pairs")
pairs = ex.training
sup = data.TrainingSet.from_clean(ex.train_clean, ex.noise, kind="clean", seed=cfg.seed)
assert all(torch.equal(a, b) for a, b in zip(sup.noisy, pairs.noisy))  # the same noisy draws y
print(ex.describe())


# %% [markdown]
# ## Training
#
# Both methods use the Noise2Noise U-Net of Lehtinen et al. (about 1 M parameters),
# the same seed, the same patches and the same budget, read from the notebook's training
# plan (`python -m denoise_lib.course estimate` lists each notebook's trainings and their
# estimated GPU minutes). Each training is checkpointed: if the session stops, running
# the notebook again continues where it stopped.


# %%
budget = cfg.budget_for("n2c")
assert budget == cfg.budget_for("n2n"), "the two runs must share one budget"
n2c = methods.build("n2c", channels=1)
n2n = methods.build("n2n", channels=1)
hist_c = cfg.train(n2c, sup, "n2c")
hist_n = cfg.train(n2n, pairs, "n2n")
course.glue("train_steps", hist_c.steps)
course.glue("batch_size", budget.batch_size)
course.glue("patch_size", budget.patch_size)
table(["run", "steps", "batch", "patch", "learning rate", "time (s)", "ms/step"],
      [(name, h.steps, budget.batch_size, f"{budget.patch_size}²", budget.lr, h.seconds, h.step_ms)
       for name, h in (("Noise2Clean", hist_c), ("Noise2Noise", hist_n))],
      digits=[None, None, None, None, None, 0, 0])


# %% [markdown]
# ## Denoising quality on Set12
#
# PSNR follows the 8-bit protocol (clip, quantise, compare) on the $K$ test images, one
# fixed noise draw each ($R = 1$ in {eq}`metrics-psnr-avg`). The gap between the two
# networks is a paired comparison: the mean over the images of the per-image PSNR
# difference, with its standard error.


# %%
outputs = {"noisy input": ex.test_noisy,
           "Noise2Clean": [n2c.denoise(y) for y in ex.test_noisy],
           "Noise2Noise": [n2n.denoise(y) for y in ex.test_noisy]}
per_image = {name: [metrics.psnr(o, x) for o, x in zip(outs, ex.test_clean)] for name, outs in outputs.items()}
quality = {name: (np.mean(p), ex.mean_ssim(outputs[name])) for name, p in per_image.items()}
gap, gap_se = figs.paired_mean(per_image["Noise2Noise"], per_image["Noise2Clean"])
gain_c = quality["Noise2Clean"][0] - quality["noisy input"][0]
gain_n = quality["Noise2Noise"][0] - quality["noisy input"][0]
for key, name in (("noisy", "noisy input"), ("n2c", "Noise2Clean"), ("n2n", "Noise2Noise")):
    course.glue(f"psnr_{key}", float(quality[name][0]))
    course.glue(f"ssim_{key}", float(quality[name][1]))
course.glue("n_test", len(ex.test_clean))
course.glue("psnr_gap", gap)
course.glue("psnr_gap_se", gap_se)
course.glue("gain_n2c", float(gain_c))
course.glue("gain_n2n", float(gain_n))
course.glue("gain_fraction", float(100 * gain_n / gain_c))
display(table(["", "PSNR (dB)", "SSIM"], [(k, *v) for k, v in quality.items()], digits=[None, 2, 4],
              caption=f"K = {len(ex.test_clean)} Set12 images, R = 1:"))
display(Markdown(f"**N2N − N2C: {gap:+.2f} ± {gap_se:.2f} dB** (paired, mean ± standard error over the images). "
                 f"Gain over the noisy input: Noise2Clean {gain_c:+.2f} dB, Noise2Noise {gain_n:+.2f} dB, "
                 f"so Noise2Noise recovers {100 * gain_n / gain_c:.0f} % of the supervised gain."))


# %%
k = min(4, len(ex.test_clean) - 1)  # Monarch (Set12 05) when it is loaded
crop = (slice(60, 188), slice(60, 188)) if cfg.name != "smoke" else None
show_figure(image_grid({"clean x": ex.test_clean[k], **{name: outs[k] for name, outs in outputs.items()}},
                         reference=ex.test_clean[k], crop=crop, cols=4),
            alt="A crop of one Set12 test image: clean, noisy, and denoised by the Noise2Clean and the "
                "Noise2Noise networks, each titled with its PSNR on the whole image.",
            caption="One test image, denoised by the two networks (PSNR on the whole image; the panels show a "
                    "crop in the quick and full budgets).")


# %% [markdown]
# ## Measuring the constant
#
# On held-out images we draw two independent noisy observations $y$ and $y'$ of each
# clean $x$ and evaluate **both losses for the same network**, for several networks: the
# identity $f(y)=y$, an **untrained** U-Net, and the two trained ones. The theorem says
# the offset $L_{\mathrm{N2N}}(f) - L_{\mathrm{N2C}}(f)$ is $\sigma^2$ for *every* fixed
# $f$, trained or not. The offset is estimated over every pixel of the seven 256×256
# Set12 images with two noise draws each (in every budget, so that the estimate is
# equally precise in a smoke run), with its standard error.


# %%
offset_clean = data.load("set12", limit=7) * 2  # 7 images × 2 independent draws
y1 = data.add_noise(offset_clean, ex.noise, seed=2000)
y2 = data.add_noise(offset_clean, ex.noise, seed=3000)  # independent target noise n'
_ = torch.manual_seed(0)
candidates = {"identity f(y)=y": lambda y: y, "untrained U-Net": methods.build("n2n", channels=1).denoise,
              "Noise2Clean-trained": n2c.denoise, "Noise2Noise-trained": n2n.denoise}
offsets = {}
for name, f in candidates.items():
    d = []  # per-pixel (f(y)−y')² − (f(y)−x)², whose mean is the offset
    for y, yp, x in zip(y1, y2, offset_clean):
        fy = f(y).double()
        d.append(((fy - yp) ** 2 - (fy - x) ** 2).flatten())
    d = torch.cat(d)
    offsets[name] = (d.mean().item(), float(d.std().item() / np.sqrt(d.numel())))
course.glue("sigma2", sigma ** 2)
course.glue("offset_se_max", max(se for _, se in offsets.values()))
for key, name in zip(("identity", "untrained", "n2c", "n2n"), candidates):
    course.glue(f"offset_{key}", offsets[name][0])
    course.glue(f"offset_{key}_se", offsets[name][1])
    course.glue(f"offset_{key}_ratio", offsets[name][0] / sigma ** 2)
table(["network f (fixed)", "L_N2N − L_N2C", "± s.e.", "ratio to σ²"],
      [(name, m, se, m / sigma ** 2) for name, (m, se) in offsets.items()],
      digits=[None, 6, 6, 4], caption=f"σ² = (25/255)² = {sigma ** 2:.6f}:")


# %%
show_figure(figs.offset_figure(offsets, sigma ** 2),
            alt="For each of four fixed networks (identity, untrained U-Net, Noise2Clean-trained, "
                "Noise2Noise-trained), the measured offset between the two losses divided by σ², with "
                "95 % error bars, next to a dashed line at the predicted value 1.",
            caption="The theorem for fixed networks: Noise2Noise loss minus Noise2Clean loss, divided by σ², "
                    "measured on held-out images (7 Set12 images × 2 noise draws) with 95 % intervals; "
                    "the dashed line is the prediction.",
            glue="offset_fig")


# %% [markdown]
# The same check as a pass/fail line (nbval compares this output in every budget):


# %%
# NBVAL_CHECK_OUTPUT
for name, (m, se) in offsets.items():
    print(f"{name:<22} offset within 5% of σ²: {abs(m / sigma ** 2 - 1) < 0.05}")


# %% [markdown]
# ## Two training curves are two networks
#
# The two runs drew the same patches in the same order, but they train **different**
# networks, $f_{\mathrm{N2C}}$ and $f_{\mathrm{N2N}}$, and the theorem is about one fixed
# network — the offset table above is its check. Applied to each run separately, it
# says that the Noise2Noise training loss estimates
# $L_{\mathrm{N2C}}(f_{\mathrm{N2N}}) + \sigma^2$ and the Noise2Clean training loss
# estimates $L_{\mathrm{N2C}}(f_{\mathrm{N2C}})$. So the gap between the curves, minus
# $\sigma^2$, is
#
# $$
# \begin{aligned}
# &\bigl(\text{N2N training loss} - \sigma^2\bigr) - \text{N2C training loss} \\
# &\qquad \approx\; L_{\mathrm{N2C}}(f_{\mathrm{N2N}}) - L_{\mathrm{N2C}}(f_{\mathrm{N2C}}),
# \end{aligned}
# $$
#
# the difference between the two networks' **supervised errors**. It is not batch noise
# but a real difference between two networks: at a fixed budget Noise2Noise pays for its
# noisier gradients and its finite, once-drawn targets (theory page, "The gradients agree
# in expectation" and "Finite data"). The cell below measures
# the left side from the training logs — paired over the logged intervals of the second
# half of training, with its standard error — and the right side directly, as the
# supervised MSE of the two final networks on training and on test images. The training
# logs average over networks that were still improving, so the two sides agree only
# approximately.


# %%
sc, lc = hist_c.series("loss")
sn, ln = hist_n.series("loss")
assert sc == sn, "the two runs log at the same steps"
half = len(lc) // 2
curve_gap, curve_gap_se = figs.paired_mean(np.array(ln[half:]) - sigma ** 2, lc[half:])
n_fit = min(32, len(ex.train_clean))
fit_gap = figs.paired_mean([figs.unclipped_mse(n2n.denoise(y), x) for y, x in zip(sup.noisy[:n_fit], sup.clean)],
                           [figs.unclipped_mse(n2c.denoise(y), x) for y, x in zip(sup.noisy[:n_fit], sup.clean)])
test_gap = figs.paired_mean([figs.unclipped_mse(o, x) for o, x in zip(outputs["Noise2Noise"], ex.test_clean)],
                            [figs.unclipped_mse(o, x) for o, x in zip(outputs["Noise2Clean"], ex.test_clean)])
course.glue("curve_gap", curve_gap)
course.glue("curve_gap_se", curve_gap_se)
course.glue("fit_gap", fit_gap[0])
course.glue("fit_gap_se", fit_gap[1])
course.glue("test_gap", test_gap[0])
course.glue("test_gap_se", test_gap[1])
show_figure(figs.training_gap_figure(sc, lc, sn, ln, sigma ** 2),
            alt="Training curves on a log scale: the Noise2Clean network's training loss and the Noise2Noise "
                "network's training loss minus σ², against the training step.",
            caption=f"Training losses of the two runs ({hist_c.steps} steps of {budget.batch_size} patches of "
                    f"{budget.patch_size}², logged every 25 steps), the Noise2Noise one shifted down by σ².")
table(["", "per-pixel MSE", "± s.e."],
      [("(N2N training loss − σ²) − N2C training loss, second half of training", curve_gap, curve_gap_se),
       (f"supervised-error gap of the final networks, {n_fit} training images", *fit_gap),
       (f"supervised-error gap of the final networks, {len(ex.test_clean)} test images", *test_gap)],
      digits=[None, 6, 6])


# %% [markdown]
# **What to take away.** For each fixed network — the identity, random weights or either
# trained denoiser — the two losses differ by $\sigma^2$ within the Monte-Carlo error:
# that is the theorem, and it says that the clean target enters the loss only through a
# constant. The *minimisers* agree, but the road to them does not: every Noise2Noise
# gradient carries the extra term $-2\,\mathbf G_\theta^\top n'$, zero on average but
# noisy, and the targets' noise is drawn once. At a fixed budget Noise2Noise is therefore
# expected to trail Noise2Clean slightly; the quality table shows by how much here,
# against the gain both make over the noisy input, and the last table shows the same gap
# as a difference of supervised errors.
#
# :::{admonition} Exercise
# :class: tip
# Replace the independent draw `y2` by `y1` itself (the *same* noise in input and
# target) and re-run the offset cell. Which network now has the smallest
# "Noise2Noise loss", and why does this predict that training on a single noisy image
# as its own target learns the identity? (Part 2 builds on the answer.)
# :::


# %% tags=["remove-cell"]
course.provenance()
