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
# # J-invariance in practice: the identity collapse, masking and D(f)
#
# With only one noisy observation $\y$ of each image, the obvious self-supervised loss
# $\frac1d\norm{f(\y) - \y}^2$ is minimised by the identity. The theory page
# {doc}`../book/02_j_invariance` shows that the loss becomes useful when the network
# cannot see the pixel it predicts: for a $\J$-invariant $f$, the self-supervised loss
# equals the supervised loss plus a constant {cite}`batson2019noise2self`. Noise2Void
# {cite}`krull2019noise2void` and Noise2Self enforce this during training by
# **masking**: a few pixels are replaced, and the loss is computed on them only.
#
# This notebook shows, on real images:
#
# 1. **the identity collapse** — the course U-Net trained on the unmasked loss converges
#    towards the identity and reproduces its noisy input;
# 2. **masked training works** — the same U-Net, trained with Noise2Void's masks on the
#    same data, denoises;
# 3. **how J-invariant the results are** — the measure $\mathcal D(f)$ of Noise2Same
#    {cite}`xie2020noise2same`, Eq. (5), for the masked U-Nets, for the architecturally
#    blind network of Part 3 and for a Noise2Same network (Part 4).
#
# Two versions of the U-Net appear, and every result says which one it uses. The
# **plain** U-Net `UNet(1)`, the Noise2Noise U-Net, is the network of the theory page's
# proposition on the identity collapse; it starts from random weights, far from the
# identity. The **residual** U-Net `UNet(1, residual=True)`
# computes $f(\y) = \y + g(\y)$ with a plain U-Net $g$: it starts close to the
# identity, and its skip connection hands every output pixel its own noisy input. The
# residual form is what Part 4 trains.


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
import torch

from denoise_lib import course, invariance, metrics
from denoise_lib.course import figures_blindspot as figs
from denoise_lib.course import jinvariance
from denoise_lib.course.report import show_figure, table
from denoise_lib.methods.n2s_unmasked import UnmaskedSelfSupervised
from denoise_lib.methods.n2v import Noise2Void
from denoise_lib.methods.noise2same import Noise2Same
from denoise_lib.models import UNet
from denoise_lib.models.blindspot import BlindSpotUNet
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="02_j_invariance")
_ = torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators


# %% [markdown]
# ## Data: one fixed noisy observation per image
#
# The training images are the 400 grayscale BSD400 crops. Each carries **one** draw of
# Gaussian noise, $\sigma = 25/255$, made once and kept for the whole training. Drawing
# new noise at every step would show the network several independent noisy versions of
# the same image, which is Noise2Noise's situation, not ours. The self-supervised
# methods never see a clean image. The test images are Set12, with noise drawn from a
# separate seed, the same in every notebook of the course.


# %%
sigma = 25 / 255
noise = Gaussian(sigma)
ex = course.experiment(cfg, noise, kind="single")
assert ex.training.clean is None  # a self-supervised set holds no clean image
psnr_noisy = course.glue("psnr_noisy", ex.mean_psnr(ex.test_noisy))
course.glue("n_test", len(ex.test_clean))
print(ex.describe())


# %% [markdown]
# ## Partitions, masks and replacements
#
# Noise2Self's grid partition splits the image into $s^2$ blocks of pixels $s$ apart
# ($s = 4$: 16 blocks). A **stratified mask** places one pixel at a random position in
# every cell of a regular grid of cells: Noise2Void masks 0.2 % of the pixels (cells of
# $22 \times 22$); the figure uses cells of $6 \times 6$ so that the pixels are visible.
# The masked pixels are then replaced: by a random neighbour in the $5 \times 5$ window,
# never the pixel itself (Noise2Void's UPS), by uniform noise (Noise2Self), by the plain
# mean of the 8 neighbours (the "donut" of `denoise_lib.masks`), or by Gaussian noise
# (Noise2Same). Every replacement reads only unmasked pixels, so the masked image
# carries no information about the hidden values $\y_J$.


# %%
patch = ex.test_noisy[0][..., 56:80, 56:80]
show_figure(figs.mask_figure(patch, grid=4, fraction=1 / 36, seed=0),
            alt="Eight panels of a 24 by 24 noisy patch: the 16 blocks of the grid partition, one block, "
                "a stratified mask with one pixel per 6 by 6 cell, and the masked image for the UPS, uniform, "
                "donut and Gaussian replacements, with the masked pixels outlined in red.",
            caption="Top: a noisy patch, the 16 blocks of the grid partition with s = 4 (one colour per "
                    "block), one block outlined, and a stratified mask (one pixel per 6×6 cell). Bottom: the "
                    "masked input for four replacement strategies; red squares mark the replaced pixels.",
            glue="mask_fig")


# %% [markdown]
# ## The identity collapse
#
# ### The plain U-Net
#
# We train the **plain** U-Net on the **unmasked** self-supervised loss
# $\frac1d\norm{f(\y) - \y}^2$ (`UnmaskedSelfSupervised`), in chunks, and after each
# chunk measure two things on the test images: the PSNR of $f(\y)$ against the clean
# image, and the distance of $f$ from the identity, $\overline{(f(\y) - \y)^2} / \sigma^2$.
# The second number is $0$ for the identity and close to $1$ for a denoiser that
# removes the noise, since then $f(\y) - \y \approx -\nz$.
#
# Starting from random weights, the network first fits the smooth structure of its
# input and can pass through a phase where its output is smoother than $\y$; the
# unmasked loss keeps pulling it towards the minimiser of the theory page's
# proposition, the identity, and the PSNR falls back to that of the noisy input.


# %%
def distance_to_identity(outputs):
    """Mean (f(y) − y)² over the test pixels, in units of σ²."""
    return sum(float(((o - y) ** 2).mean()) for o, y in zip(outputs, ex.test_noisy)) / len(outputs) / sigma ** 2


def psnr_and_distance(method):
    outputs = [method.denoise(y) for y in ex.test_noisy]
    return ex.mean_psnr(outputs), distance_to_identity(outputs)


_ = torch.manual_seed(cfg.seed)
plain_unmasked = UnmaskedSelfSupervised(UNet(1))
hist_pu, curve = jinvariance.train_in_chunks(cfg, plain_unmasked, ex.training, "unmasked-plain",
                                             psnr_and_distance, chunks=8)
out_pu = [plain_unmasked.denoise(y) for y in ex.test_noisy]
peak = max(curve, key=lambda c: c[1])
course.glue("plain_collapse_steps", curve[-1][0])
course.glue("plain_collapse_psnr", curve[-1][1])
course.glue("plain_collapse_dist", curve[-1][2])
course.glue("plain_peak_psnr", peak[1])
course.glue("plain_peak_step", peak[0])
course.glue("plain_collapse_loss", hist_pu.log[-1]["loss"] / sigma ** 2)
show_figure(figs.collapse_figure([c[0] for c in curve], [c[1] for c in curve], [c[2] for c in curve],
                                 psnr_noisy=psnr_noisy, label="plain U-Net, unmasked loss"),
            alt="Two line plots against the training step of a plain U-Net trained on the unmasked loss: "
                "left, the PSNR of its output with the PSNR of the noisy input as a dashed line; right, on a "
                "log scale, the mean squared difference between output and noisy input divided by sigma squared.",
            caption="The identity collapse of the plain U-Net (unmasked loss, Set12). Left: PSNR of f(y) "
                    "against the clean images; dashed: the noisy input. Right: distance to the identity, "
                    "mean (f(y) − y)² / σ², which is 0 for the identity.",
            glue="collapse_fig")
table(["step", "PSNR of f(y) (dB)", "(f(y) − y)² / σ²"], curve, digits=[None, 2, 4])


# %% [markdown]
# ### The residual U-Net
#
# The residual U-Net $f(\y) = \y + g(\y)$ is the identity as soon as $g = 0$, and its
# random initialisation is close to that. On the unmasked loss there is nothing for it
# to learn but to make $g$ vanish, and it stays at the identity from the start.


# %%
_ = torch.manual_seed(cfg.seed)
res_unmasked = UnmaskedSelfSupervised(UNet(1, residual=True))
hist_ru = cfg.train(res_unmasked, ex.training, "unmasked")
out_ru = [res_unmasked.denoise(y) for y in ex.test_noisy]
psnr_ru = course.glue("res_collapse_psnr", ex.mean_psnr(out_ru))
dist_ru = course.glue("res_collapse_dist", distance_to_identity(out_ru))
course.glue("res_collapse_steps", hist_ru.steps)
table(["network (unmasked loss)", "steps", "final training loss / σ²", "PSNR (dB)", "(f(y) − y)² / σ²"],
      [["plain U-Net", hist_pu.steps, hist_pu.log[-1]["loss"] / sigma ** 2, curve[-1][1], curve[-1][2]],
       ["residual U-Net", hist_ru.steps, hist_ru.log[-1]["loss"] / sigma ** 2, psnr_ru, dist_ru],
       ["noisy input y", None, None, psnr_noisy, 0.0]],
      digits=[None, None, 4, 2, 4])


# %% [markdown]
# For both networks the training loss ends far below the noise variance $\sigma^2$: the
# network reproduces its input, noise included, and the PSNR ends at that of the noisy
# image. A $\J$-invariant network could not get below $\sigma^2$ (the theory page's
# corollary on the per-pixel offset).


# %% [markdown]
# ## Masked training: Noise2Void
#
# The same networks, the same data and the same optimiser, but every training patch is
# masked: about 0.2 % of its pixels (one per $22\times22$ cell) are replaced by a random
# neighbour (UPS, centre excluded), and the loss is the mean squared error **on the
# masked pixels only**, divided by their number. At test time the network is applied
# once to the unmasked image, as in the paper. We train both the plain and the residual
# U-Net.


# %%
n2v = {}
hists = {}
for label, residual in (("n2v-plain", False), ("n2v", True)):
    torch.manual_seed(cfg.seed)
    n2v[label] = Noise2Void(UNet(1, residual=residual))
    hists[label] = cfg.train(n2v[label], ex.training, label)
out_v = {label: [m.denoise(y) for y in ex.test_noisy] for label, m in n2v.items()}
psnr_v = {label: ex.mean_psnr(o) for label, o in out_v.items()}
course.glue("psnr_n2v_plain", psnr_v["n2v-plain"])
course.glue("psnr_n2v_res", psnr_v["n2v"])
course.glue("n2v_steps", hists["n2v"].steps)
rows = [["noisy input y", "—", None, psnr_noisy],
        ["unmasked loss", "plain", hist_pu.steps, curve[-1][1]],
        ["unmasked loss", "residual", hist_ru.steps, psnr_ru],
        ["Noise2Void", "plain", hists["n2v-plain"].steps, psnr_v["n2v-plain"]],
        ["Noise2Void", "residual", hists["n2v"].steps, psnr_v["n2v"]]]
table(["training", "U-Net", "steps", "PSNR (dB)", "gain (dB)"], [r + [r[3] - psnr_noisy] for r in rows],
      digits=[None, None, None, 2, 2],
      caption=f"Set12, σ = 25/255, {len(ex.test_clean)} images; batch {cfg.budget_for('n2v').batch_size} × "
              f"{cfg.budget_for('n2v').patch_size}² patches, "
              f"{float(hists['n2v'].log[-1]['masked_pixels']):.0f} masked pixels per batch.")


# %%
k = min(4, len(ex.test_clean) - 1)
sl = (slice(60, 188), slice(60, 188)) if cfg.name != "smoke" else None
show_figure(figs.image_panels({"clean x": ex.test_clean[k], "noisy y": ex.test_noisy[k],
                               "unmasked (plain)": out_pu[k], "N2V (plain)": out_v["n2v-plain"][k],
                               "N2V (residual)": out_v["n2v"][k]},
                              reference=ex.test_clean[k], crop=sl, columns=5),
            alt="Five grayscale crops of one Set12 test image: clean, noisy, the output of the plain U-Net "
                "trained without masks, and the outputs of the plain and residual Noise2Void U-Nets.",
            caption="One test image (crop; PSNR on the whole image). The network trained without masks "
                    "returns its noisy input; both Noise2Void networks denoise.")


# %% [markdown]
# ### J-invariant inference
#
# The trained network is applied to the **unmasked** image, so at test time it can see
# the pixel it predicts: it is not $\J$-invariant. Noise2Self's $\J$-invariant inference
# restores the guarantee at the price of $s^2$ forward passes: for each of the
# $4 \times 4 = 16$ grid phases, the pixels of that phase are replaced by the donut
# average and the network's output is kept on them. We check the invariance by changing
# one input pixel, then compare the PSNR of both inference modes.


# %%
def jinv(net, y):
    return invariance.j_invariant_predict(net.eval(), y, grid=4, replacement="donut")


net_plain = n2v["n2v-plain"].net.eval()
with torch.no_grad():
    y0 = ex.test_noisy[0][..., :64, :64].to(cfg.device)
    y1 = y0.clone()
    y1[..., 30, 30] += 0.5
    a, b = jinv(net_plain, y0), jinv(net_plain, y1)
    plain_a, plain_b = net_plain(y0), net_plain(y1)


# %%
# NBVAL_CHECK_OUTPUT
print("J-invariant prediction ignores the changed pixel:", bool(a[..., 30, 30] == b[..., 30, 30]))
print("one-pass prediction ignores the changed pixel:   ", bool(plain_a[..., 30, 30] == plain_b[..., 30, 30]))


# %%
def mean_psnr_first(outputs, n):
    """Mean PSNR of the first ``n`` outputs against the first ``n`` clean test images."""
    return sum(metrics.psnr(o, x) for o, x in zip(outputs[:n], ex.test_clean[:n])) / n


n_j = cfg.pick(smoke=1, quick=3, full=12)
jinv_rows = []
with torch.no_grad():
    for label, name in (("n2v-plain", "plain"), ("n2v", "residual")):
        out_j = [jinv(n2v[label].net, y.to(cfg.device)).cpu() for y in ex.test_noisy[:n_j]]
        one, inv = mean_psnr_first(out_v[label], n_j), mean_psnr_first(out_j, n_j)
        jinv_rows.append([f"Noise2Void, {name} U-Net", one, inv, inv - one])
course.glue("jinv_n", n_j)
course.glue("jinv_onepass_plain", jinv_rows[0][1])
course.glue("jinv_jinv_plain", jinv_rows[0][2])
course.glue("jinv_onepass_res", jinv_rows[1][1])
course.glue("jinv_jinv_res", jinv_rows[1][2])
table(["network", "one pass (dB)", "J-invariant, 16 passes (dB)", "difference (dB)"], jinv_rows, digits=2,
      caption=f"PSNR on the first {n_j} test image(s).")


# %% [markdown]
# In Noise2Self's experiments the one-pass prediction was the better of the two: at test
# time the network can use some of the centre pixel (Noise2Same §3.2 and the theory page
# discuss why this helps). How much it uses is what $\mathcal D(f)$ measures.


# %% [markdown]
# ## How J-invariant is each network? The measure $\mathcal D(f)$
#
# Noise2Same's Eq. (5), in our notation:
#
# $$
# \mathcal D(f) = \E_J \E_{\y} \frac{\norm{f(\y_{J^c})_J - f(\y)_J}^2}{\lvert J \rvert},
# $$
#
# with $J$ a stratified sample of 0.01 % of the pixels and $\y_{J^c}$ the image whose
# pixels in $J$ are replaced by Gaussian noise of standard deviation $\sigma_m = 0.5$, on
# images normalised to zero mean and unit variance; $\mathcal D$ is in those normalised
# units (`jinvariance.measure_d`, `normalize=True`). We measure it for
#
# * the two **Noise2Void** U-Nets trained above, plain and residual;
# * a **Noise2Same** U-Net (Part 4, residual), trained here with $\lambda_{\mathrm{inv}} = 2\sigma$;
# * the **blind-spot U-Net** of Part 3 {cite}`laine2019highquality`, whose output at a
#   pixel never depends on the input at that pixel. Its blindness is a property of the
#   architecture, so it holds before and after training; we use it untrained.
#
# With several pixels of $J$ masked at once, a blind network still sees the *other*
# masked pixels of $J$ in its receptive field ("mutual influence"), so its sparse
# $\mathcal D$ is small but not zero. Masking **one pixel per forward pass** removes that
# effect, and then $\mathcal D$ of the blind-spot network must vanish up to rounding.


# %%
_ = torch.manual_seed(cfg.seed)
n2same = Noise2Same(UNet(1, residual=True), lambda_inv="2sigma", noise=noise)
hist_s = cfg.train(n2same, ex.training, "noise2same")
psnr_s = course.glue("psnr_n2same", ex.mean_psnr([n2same.denoise(y) for y in ex.test_noisy]))
_ = torch.manual_seed(cfg.seed)
blind = BlindSpotUNet(1).to(cfg.device).eval()
table(["network", "steps", "PSNR (dB)"],
      [["Noise2Same, residual U-Net (λ_inv = 2σ)", hist_s.steps, psnr_s], ["blind-spot U-Net", "untrained", None]],
      digits=[None, None, 2])


# %%
side = cfg.pick(smoke=64, quick=128, full=256)
centre = lambda y: y[..., (y.shape[-2] - side) // 2:, (y.shape[-1] - side) // 2:][..., :side, :side]  # noqa: E731
d_images = torch.cat([centre(y) for y in ex.test_noisy[:cfg.pick(smoke=2, quick=4, full=12)]])
d_images = d_images.to(cfg.device)
draws = cfg.pick(smoke=1, quick=3, full=16)
nets = {"n2v_plain": ("Noise2Void, plain U-Net", n2v["n2v-plain"].net.eval()),
        "n2v_res": ("Noise2Void, residual U-Net", n2v["n2v"].net.eval()),
        "n2same": ("Noise2Same, residual U-Net", n2same.net.eval()),
        "blind": ("blind-spot U-Net", blind)}
d_sparse, d_one = {}, {}
one = d_images[:2, :, :64, :64]
for key, (name, net) in nets.items():
    d_sparse[key] = jinvariance.measure_d(net, d_images, fraction=1e-4, sigma_m=0.5, draws=draws,
                                          generator=torch.Generator().manual_seed(1))
    course.glue(f"d_{key}_e3", 1e3 * float(d_sparse[key]))
    if key != "n2same":
        d_one[key] = jinvariance.measure_d(net, one, fraction=1e-4, one_at_a_time=True, draws=4,
                                           generator=torch.Generator().manual_seed(2))
        course.glue(f"d1_{key}", float(d_one[key]))
course.glue("d_ratio_res_plain", float(d_sparse["n2v_res"]) / max(float(d_sparse["n2v_plain"]), 1e-30))
table(["network", "sparse D (×10⁻³)", "± s.e. (×10⁻³)", "one pixel at a time: D"],
      [[name, 1e3 * float(d_sparse[k]), 1e3 * d_sparse[k].stderr, f"{float(d_one[k]):.1e}" if k in d_one else None]
       for k, (name, _) in nets.items()],
      digits=[None, 3, 3, None],
      caption=f"D(f) in normalised units on {len(d_images)} central crops of {side}×{side}, {draws} mask "
              f"draw(s) each ({d_sparse['blind'].pixels} masked pixels); one pixel at a time: "
              f"{d_one['blind'].pixels} pixels of two 64×64 crops.")


# %%
# NBVAL_CHECK_OUTPUT
print("blind-spot U-Net, one pixel at a time: D ≤ 1e-10:", float(d_one["blind"]) <= 1e-10)


# %% [markdown]
# **Reading the numbers.** Both Noise2Void networks, trained with masks but applied
# without them, depend on their centre pixel: their $\mathcal D$ is far above that of
# the blind-spot network, as in Noise2Same's Table 1 (UPS: $18.31 \times 10^{-3}$;
# shifted receptive field: $0.105 \times 10^{-3}$, on BSD68 after full training). During training the centre input is the value of a neighbour, which is
# informative about the pixel, so the network learns to use it; at test time that input
# is the noisy pixel itself.
#
# The two Noise2Void rows differ only in the skip connection. The residual network
# starts with a direct path from $y_j$ to its output at $j$ (its output moves one for
# one with $y_j$ when $g$ is small), which masked training can only cancel through
# $g$; the plain network has no such path to begin with. Compare the two rows to see
# how much of it this training left; $\mathcal D$ of the plain network, which has no
# such built-in path, is the one that measures what masked training itself leaves. The
# Noise2Same network is not
# $\J$-invariant either, by design: its invariance term penalises the dependence on
# $\y_J$ with a weight that trades it against the reconstruction (Part 4). The
# blind-spot network is exactly blind: one pixel at a time, $\mathcal D = 0$ up to
# rounding; its sparse $\mathcal D$ comes only from the other masked pixels in its
# receptive field.
#
# :::{admonition} Exercise
# :class: tip
# 1. Train `Noise2Self(UNet(1), replacement="donut")` and
#    `Noise2Self(UNet(1), replacement="random")` (module `denoise_lib.methods.n2s`)
#    with the same budget, and add them to the PSNR table and to the $\mathcal D(f)$
#    measurement. Which replacement gives the most $\J$-invariant network, and is it the
#    best denoiser? Compare with Noise2Same's Table 1.
# 2. Let the UPS replacement pick the centre pixel too (write a variant of
#    `masks.ups` that keeps the offset $(0, 0)$). What happens to $\mathcal D(f)$, and
#    to the PSNR, after the same training? Relate your answer to the proof that the
#    masked loss equals the supervised loss plus a constant.
# :::


# %% tags=["remove-cell"]
course.provenance()
