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
# # J-invariance: learning from single noisy images
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
# 1. **the identity collapse** — a U-Net trained on the unmasked loss reproduces its noisy
#    input;
# 2. **masked training works** — the same U-Net, trained with Noise2Void's masks on the
#    same data, denoises;
# 3. **how J-invariant the results are** — the measure $\mathcal D(f)$ of Noise2Same
#    {cite}`xie2020noise2same`, Eq. (5), for the masked U-Net, for the architecturally blind
#    network of Part 3 and for a Noise2Same network (Part 4).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from denoise_lib import course, data, invariance, masks, metrics
from denoise_lib.course import jinvariance
from denoise_lib.methods.n2s_unmasked import UnmaskedSelfSupervised
from denoise_lib.methods.n2v import Noise2Void
from denoise_lib.methods.noise2same import Noise2Same
from denoise_lib.models import UNet
from denoise_lib.models.blindspot import BlindSpotUNet
from denoise_lib.noise import Gaussian

cfg = course.setup(seed=0, notebook="02_j_invariance")
torch.manual_seed(cfg.seed)  # for this notebook's own cells; the library draws from explicit generators

# %% [markdown]
# ## Data: one fixed noisy observation per image
#
# Training images are the 400 grayscale BSD400 crops, each with **one** noisy draw of
# Gaussian noise, $\sigma = 25/255$, made once (COURSE.md §3: redrawing the noise at
# every step would quietly turn this into Noise2Noise). The self-supervised methods
# never see a clean image. Testing uses Set12 with noise drawn from separate seeds.

# %%
sigma = 25 / 255
noise = Gaussian(sigma)
train_clean = data.load("bsd400", limit=cfg.pick(smoke=8, quick=400, full=400))
test_clean = data.load("set12", limit=cfg.pick(smoke=2, quick=7, full=12))
if cfg.name == "smoke":
    test_clean = [x[..., :96, :96] for x in test_clean]
single = data.TrainingSet.from_clean(train_clean, noise, kind="single", seed=cfg.seed)
test_noisy = data.add_noise(test_clean, noise, seed=1000)
assert single.clean is None  # a self-supervised set holds no clean image
print(f"training: {len(single.noisy)} noisy images of {tuple(single.noisy[0].shape[-2:])} "
      f"(one draw each); test: {len(test_clean)} Set12 images")


def mean_psnr(outputs, clean=test_clean):
    return float(np.mean([metrics.psnr(o, x) for o, x in zip(outputs, clean)]))


psnr_noisy = mean_psnr(test_noisy)
print(f"noisy input: {psnr_noisy:.2f} dB")

# %% [markdown]
# ## What a mask looks like
#
# A stratified mask places one pixel at a random position in every $s \times s$ cell
# ($s = 22$ for Noise2Void's 0.2 %; here $s = 8$ so that the pixels are visible). The
# masked pixels are then replaced: by a random neighbour in the $5\times5$ window,
# never the pixel itself (Noise2Void's UPS), by uniform noise (Noise2Self), or by the
# mean of the 8 neighbours (the "donut"). The replacement reads only unmasked pixels,
# so the masked image carries no information about $\y_J$.

# %%
patch = test_noisy[0][..., 24:72, 24:72]
g = torch.Generator().manual_seed(0)
mask = masks.stratified_mask(patch.shape, 1 / 64, generator=g)
views = [("noisy y", patch), ("mask J", mask.float())]
views += [(f"{s} replacement", masks.replace(patch, mask, s, generator=g)) for s in ("ups", "random", "donut")]
fig, axes = plt.subplots(1, 5, figsize=(14, 3))
for ax, (title, img) in zip(axes, views):
    ax.imshow(img[0, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 1. The identity collapse
#
# We train a U-Net on the **unmasked** self-supervised loss
# $\frac1d\norm{f(\y) - \y}^2$ (`UnmaskedSelfSupervised`). Both networks of this notebook
# are the course U-Net in its **residual** form, $f(\y) = \y + g(\y)$, so that they can
# represent the identity exactly ($g = 0$) and learn quickly on a CPU; the only
# difference between the two trainings is the mask. (The plain U-Net collapses too, but
# slowly: it first learns a smooth function of its input, which denoises for a while,
# before it fits the noise. That early-stopping effect is the subject of Part 8.)

# %%
make_unet = lambda: UNet(1, residual=True)  # noqa: E731
torch.manual_seed(cfg.seed)
unmasked = UnmaskedSelfSupervised(make_unet())
hist_u = cfg.train(unmasked, single, "unmasked")
out_u = [unmasked.denoise(y) for y in test_noisy]
psnr_u = mean_psnr(out_u)
dist = np.mean([float(((o - y) ** 2).mean()) for o, y in zip(out_u, test_noisy)])
print(f"unmasked: {hist_u.steps} steps, {hist_u.seconds:.0f} s; final training loss "
      f"{hist_u.log[-1]['loss']:.2e} (σ² = {sigma ** 2:.2e})")
print(f"PSNR noisy {psnr_noisy:.2f} dB → unmasked U-Net {psnr_u:.2f} dB "
      f"({psnr_u - psnr_noisy:+.2f} dB); mean (f(y) − y)² = {dist:.1e}")

# %% [markdown]
# The training loss falls far below the noise variance $\sigma^2$: the network
# reproduces its input, noise included, and the PSNR stays at that of the noisy image.

# %% [markdown]
# ## 2. Masked training: Noise2Void
#
# The same network, the same data and the same optimiser, but every training patch is
# masked: about 0.2 % of its pixels (one per $22\times22$ cell) are replaced by a random
# neighbour (UPS, centre excluded), and the loss is the mean squared error **on the
# masked pixels only**, divided by their number. At test time the network is applied
# once to the unmasked image, as in the paper.

# %%
torch.manual_seed(cfg.seed)
n2v = Noise2Void(make_unet())
hist_v = cfg.train(n2v, single, "n2v")
out_v = [n2v.denoise(y) for y in test_noisy]
psnr_v = mean_psnr(out_v)
print(f"Noise2Void: {hist_v.steps} steps in {hist_v.seconds:.0f} s ({hist_v.step_ms:.0f} ms/step), "
      f"{hist_v.log[-1]['masked_pixels']:.0f} masked pixels per batch of {cfg.budget_for('n2v').batch_size} patches")
print(f"{'':<24}{'PSNR (dB)':>10}{'gain':>9}")
for name, p in [("noisy input", psnr_noisy), ("unmasked U-Net", psnr_u), ("Noise2Void U-Net", psnr_v)]:
    print(f"{name:<24}{p:>10.2f}{p - psnr_noisy:>+9.2f}")

# %%
k = min(4, len(test_clean) - 1)
sl = (..., slice(60, 188), slice(60, 188)) if cfg.name != "smoke" else (...,)
panels = [("clean x", test_clean[k]), ("noisy y", test_noisy[k]), ("unmasked", out_u[k]), ("Noise2Void", out_v[k])]
fig, axes = plt.subplots(1, 4, figsize=(12.5, 3.5))
for ax, (title, img) in zip(axes, panels):
    ax.imshow(img[sl][0, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title if title == "clean x" else f"{title}: {metrics.psnr(img, test_clean[k]):.2f} dB")
    ax.axis("off")
plt.tight_layout()
plt.show()

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
with torch.no_grad():
    y0 = test_noisy[0][..., :64, :64]
    y1 = y0.clone()
    y1[..., 30, 30] += 0.5
    jinv = lambda y: invariance.j_invariant_predict(n2v.net.eval(), y, grid=4, replacement="donut")  # noqa: E731
    a, b = jinv(y0), jinv(y1)
    plain_a, plain_b = n2v.net(y0), n2v.net(y1)

# %%
# NBVAL_CHECK_OUTPUT
print("J-invariant prediction ignores the changed pixel:", bool(a[..., 30, 30] == b[..., 30, 30]))
print("one-pass prediction ignores the changed pixel:   ", bool(plain_a[..., 30, 30] == plain_b[..., 30, 30]))

# %%
n_j = cfg.pick(smoke=1, quick=3, full=12)
with torch.no_grad():
    out_j = [jinv(y) for y in test_noisy[:n_j]]
print(f"on {n_j} test image(s): one pass {mean_psnr(out_v[:n_j], test_clean[:n_j]):.2f} dB, "
      f"J-invariant (16 passes) {mean_psnr(out_j, test_clean[:n_j]):.2f} dB")

# %% [markdown]
# In Noise2Self's experiments the one-pass prediction was the better of the two, and it
# usually is here: at test time the network gets to use some of the centre pixel
# (Noise2Same §3.2 and the theory page discuss why this helps). How much it uses is
# what $\mathcal D(f)$ measures.

# %% [markdown]
# ## 3. How J-invariant is each network? The measure $\mathcal D(f)$
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
# * the **Noise2Void** U-Net trained above;
# * a **Noise2Same** U-Net (Part 4), trained here with $\lambda_{\mathrm{inv}} = 2\sigma$;
# * the **blind-spot U-Net** of Part 3 {cite}`laine2019highquality`, whose output at a
#   pixel never depends on the input at that pixel. Its blindness is a property of the
#   architecture, so it holds before and after training; we use it untrained.
#
# With several pixels of $J$ masked at once, a blind network still sees the *other*
# masked pixels of $J$ in its receptive field ("mutual influence"), so its sparse
# $\mathcal D$ is small but not zero. Masking **one pixel per forward pass** removes that
# effect, and then $\mathcal D$ of the blind-spot network must vanish up to rounding.

# %%
torch.manual_seed(cfg.seed)
n2same = Noise2Same(make_unet(), lambda_inv="2sigma", noise=noise)
hist_s = cfg.train(n2same, single, "noise2same")
out_s = [n2same.denoise(y) for y in test_noisy]
psnr_s = mean_psnr(out_s)
print(f"Noise2Same (λ_inv = 2σ = {2 * sigma:.3f}): {hist_s.steps} steps in {hist_s.seconds:.0f} s, "
      f"{psnr_s:.2f} dB ({psnr_s - psnr_noisy:+.2f} dB)")
torch.manual_seed(cfg.seed)
blind = BlindSpotUNet(1).to(cfg.device).eval()

# %%
side = cfg.pick(smoke=64, quick=128, full=256)
centre = lambda y: y[..., (y.shape[-2] - side) // 2:, (y.shape[-1] - side) // 2:][..., :side, :side]  # noqa: E731
d_images = torch.cat([centre(y) for y in test_noisy[:cfg.pick(smoke=2, quick=4, full=12)]])
d_images = d_images.to(cfg.device)
draws = cfg.pick(smoke=1, quick=3, full=16)
nets = {"Noise2Void U-Net": n2v.net.eval(), "Noise2Same U-Net": n2same.net.eval(), "blind-spot U-Net": blind}
d_sparse = {}
for name, net in nets.items():
    d_sparse[name] = jinvariance.measure_d(net, d_images, fraction=1e-4, sigma_m=0.5, draws=draws,
                                          generator=torch.Generator().manual_seed(1))
print(f"sparse D(f) on {len(d_images)} central crops of {side}×{side}, {draws} mask draw(s) each, "
      f"normalised units:")
for name, d in d_sparse.items():
    print(f"  {name:<18} D = {float(d):.3e} ± {d.stderr:.1e}  ({d.pixels} masked pixels)")

# %% [markdown]
# Now one pixel per forward pass, for the blind-spot network (in float32 the differences
# are rounding errors of about $10^{-7}$, so their squares stay far below $10^{-10}$),
# and for comparison for the Noise2Void network on the same pixels.

# %%
one = d_images[:2, :, :64, :64]
d_one_blind = jinvariance.measure_d(blind, one, fraction=1e-4, one_at_a_time=True, draws=4,
                                   generator=torch.Generator().manual_seed(2))
d_one_n2v = jinvariance.measure_d(n2v.net, one, fraction=1e-4, one_at_a_time=True, draws=4,
                                 generator=torch.Generator().manual_seed(2))
print(f"one pixel at a time ({d_one_blind.pixels} pixels): blind-spot D = {float(d_one_blind):.1e}, "
      f"Noise2Void D = {float(d_one_n2v):.1e}")

# %%
# NBVAL_CHECK_OUTPUT
print("blind-spot U-Net, one pixel at a time: D ≤ 1e-10:", float(d_one_blind) <= 1e-10)

# %% [markdown]
# **Reading the numbers.** The Noise2Void network, trained with masks but applied
# without them, depends on its centre pixel: its $\mathcal D$ is orders of magnitude
# above that of the blind-spot network, as in Noise2Same's Table 1 (UPS:
# $18 \times 10^{-3}$; shifted receptive field: $0.1 \times 10^{-3}$, on BSD68 after
# full training with a plain U-Net). One reason: during training the centre input is
# the value of a neighbour, which is informative about the pixel, so the network learns
# to use it; at test time that input is the noisy pixel itself. Our residual U-Net also
# starts from the identity, and a short training removes only part of that direct path,
# so its $\mathcal D$ is larger than the paper's. The Noise2Same network is not
# $\J$-invariant either, by design: its invariance term penalises the dependence on
# $\y_J$ with a weight that trades it against the reconstruction (Part 4). The
# blind-spot network is exactly blind: one pixel at a time, $\mathcal D = 0$ up to
# rounding; its sparse $\mathcal D$ comes only from the other masked pixels in its
# receptive field.
#
# :::{admonition} Exercise
# :class: tip
# 1. Train `Noise2Self(make_unet(), replacement="donut")` and
#    `Noise2Self(make_unet(), replacement="random")` (module `denoise_lib.methods.n2s`)
#    with the same budget, and add them to the PSNR table and to the $\mathcal D(f)$
#    measurement. Which replacement gives the most $\J$-invariant network, and is it the
#    best denoiser? Compare with Noise2Same's Table 1.
# 2. Let the UPS replacement pick the centre pixel too (write a variant of
#    `masks.ups` that keeps the offset $(0, 0)$). What happens to $\mathcal D(f)$, and
#    to the PSNR, after the same training? Relate your answer to the proof that the
#    masked loss equals the supervised loss plus a constant.
# :::

# %%
course.provenance()
