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
# # The comparison: every method under one protocol
#
# Which method should you use, and what does it cost? This notebook answers with
# measurements, not with the papers' claims: every method of the course, trained and tested
# under one protocol (stated on the theory page {doc}`../book/09_comparison`) on six noise
# models, on grey and on colour images.
#
# **It trains nothing.** The runs are made by the comparison command,
#
# ```
# python -m denoise_lib.compare --preset cpu
# ```
#
# which writes one JSON file per configuration under `book/results/compare/<preset>/`, with
# the provenance of every number (commit, library source, machine, threads, load). This
# notebook reads those files and the papers' published numbers
# (`book/results/published.json`) and renders
#
# 1. one table per noise type, grey and colour side by side (equal steps);
# 2. the comparison at equal time;
# 3. the cost-quality frontier: validation PSNR against steps and against time;
# 4. the papers' numbers beside ours, the gaps, and which orderings agree;
# 5. which method to use for the data you have.

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
from IPython.display import Markdown, display

from denoise_lib import course
from denoise_lib.course import comparison, report

cfg = course.setup(seed=0, notebook="09_comparison")
preset, results = comparison.load()
pub = comparison.published()
settings = next(iter(results.values()))["settings"]
course.glue("preset", preset)
course.glue("steps", settings["budget"]["steps"])
course.glue("batch", settings["budget"]["batch_size"])
course.glue("patch", settings["budget"]["patch_size"])
course.glue("test_images", len(settings["test_files"]))
course.glue("draws", settings["preset"]["draws"])
course.glue("seeds", len(settings["preset"]["seeds"]))
course.glue("eval_every", settings["preset"]["eval_every"])
course.glue("val_images", settings["preset"]["val_images"])
course.glue("val_crop", settings["preset"]["val_crop"])
course.glue("n_configs", len(results))
display(Markdown(course.glue("describe", comparison.describe(preset, results))))

# %% [markdown]
# The budget above is small: the learned methods are compared **early in training**, where
# the ordering rewards methods that learn fast. The frontier below shows which of them are
# still climbing; the papers trained for hundreds of thousands of steps. How small: the
# trained cells that end below the noisy input they were given, and DIP's fit:

# %%
display(Markdown(course.glue("below_noisy", comparison.below_noisy(results))))
display(Markdown(course.glue("dip_sentence", comparison.dip_sentence(results))))

# %% [markdown]
# ## One table per noise type
#
# PSNR (dB, 8-bit protocol) and SSIM, mean ± standard error over test images × noise draws ×
# seeds, every learned method after the same number of steps. *GFLOP/step* is the counted
# cost of one training step (forward and backward; Noise2Same and SVID run the U-Net twice,
# Laine19's blind-spot network has four branches); *train s* the measured training time on
# grey images. A cell that could not be measured says why.

# %%
for spec in comparison.NOISES:
    table = comparison.noise_table(results, spec)
    course.glue(f"table_{spec.replace(':', '_')}", comparison.Rich(table))
    display(comparison.Rich(f"**{comparison.noise_label(spec)}**\n\n" + table))

# %% [markdown]
# ## Equal steps and equal time
#
# The tables above compare the methods at **equal steps**: what each objective extracts from
# the same number of updates. The table below reads the frontier at **equal time**: the
# validation PSNR of each method at its last logged point within the same training time T,
# with T the whole budget of the cheapest learned method (its name in the first row). Time
# here is *quiet* time, steps × the calibrated step time of the method (a short bare
# forward/backward/Adam timing made before its training), so that a busy machine during one
# training does not penalise that method. "end" is the validation PSNR at the end of the
# budget, for comparison.

# %%
for channels, what in ((1, "grey"), (3, "colour")):
    table = comparison.equal_time_table(results, channels)
    course.glue(f"equal_time_{what}", comparison.Rich(table))
    display(comparison.Rich(f"**Validation PSNR (dB) at equal time, {what}**\n\n" + table))

# %% [markdown]
# ## The cost-quality frontier
#
# Validation PSNR (centre crops of BSD300 test images that are not in BSD68/CBSD68, one fixed
# noise draw) logged during training, against steps (left) and against quiet time (right, log
# scale; the dashed line is T). BM3D and the noisy input are horizontal lines. A curve that
# still rises at its right end is a method whose ranking the budget decides.

# %%
shown = [c for c in ("bsd68-gaussian25", "cbsd68-gaussian25") if c in results] or list(results)[:2]
fig = comparison.frontier_figure(results, shown)
if comparison.FRONTIER_PNG.parent.is_dir():   # the theory page's figure (not in Colab)
    fig.savefig(comparison.FRONTIER_PNG, dpi=110)
report.show_figure(fig, alt="Validation PSNR of every method against training steps (left) and against "
                            "quiet training time (right), one curve per method, for the grey and the colour "
                            "Gaussian σ = 25 configurations.",
                   caption="The cost-quality frontier: validation PSNR logged during training.")

# %% [markdown]
# ## The papers' numbers beside ours
#
# Each published number with its table, beside our measurement of the same method in the
# configuration that matches the paper's test set and noise (CBSD68 for the papers' colour
# BSD300 columns: 68 of those 100 images). The gap is ours − paper. The conditions differ in
# every row: the papers train for hundreds of thousands of steps on larger sets (ImageNet,
# Waterloo, Vimeo-90K) with their own networks; the sources below list them. The papers:
# Noise2Same {cite}`xie2020noise2same`, Laine et al. {cite}`laine2019improved`,
# Neighbor2Neighbor {cite}`huang2021neighbor2neighbor`, SVID {cite}`lin2022svid` and
# Self2Align {cite}`wang2022self2align`.

# %%
for sid, src in pub["sources"].items():
    display(comparison.Rich(f"**{src['paper']}, {src['where']}** — test: {src['test']}; "
                     f"noise: {src['noise']}; training data: {src['train']}; network: {src['network']}; "
                     f"training: {src['steps']}." + (f" {src['note']}." if src.get("note") else "")))
gaps = comparison.gap_table(results, pub)
display(course.glue("gap_table", comparison.Rich(gaps)))

# %% [markdown]
# **Orderings.** For each paper column: the paper's own method against every other method of
# that column that we measured, the paper's difference and ours, and whether the ordering
# agrees. The last column is how fast each method's validation PSNR was still rising over
# the last logged points of our budget: a disagreement between two methods of which the one
# behind is still climbing faster is first of all a question of budget.

# %%
display(course.glue("orderings", comparison.Rich(comparison.ordering_table(results, pub))))
display(course.glue("agreement_summary", comparison.Rich(comparison.agreement_summary(results, pub))))

# %% [markdown]
# Two orderings were questioned before this comparison was built (measured on held-out grey
# images after 1000 steps at σ = 25): Noise2Same below Noise2Void, while its paper reports
# it above, and SVID below Neighbor2Neighbor, while its paper reports it above. What the
# committed runs say:

# %%
n2same = comparison.pair_sentence(results, "bsd68-gaussian25", "noise2same", "n2v",
                                  comparison.paper_diff(pub, "noise2same-table3-bsd68", "noise2same", "n2v"),
                                  "Noise2Same's Table 3")
svid = comparison.pair_sentence(results, "cbsd68-gaussian25", "svid", "nb2nb",
                                comparison.paper_diff(pub, "svid-table1-gaussian25", "svid", "nb2nb"),
                                "SVID's Table 1")
svid_grey = comparison.pair_sentence(results, "bsd68-gaussian25", "svid", "nb2nb")
for key, sentence in (("sentence_noise2same", n2same), ("sentence_svid", svid), ("sentence_svid_grey", svid_grey)):
    display(Markdown(course.glue(key, sentence)))

# %% [markdown]
# **Budget or not?** A budget of a hundred steps cannot settle either question, so the two
# pairs (with N2C as the ceiling) were also trained for 1000 steps, the course's quick
# budget, on the grey σ = 25 configuration and tested on 12 images: the preset `cpu-long`,
#
# ```
# python -m denoise_lib.compare --preset cpu-long --configs bsd68-gaussian25 \
#     --methods noisy n2c n2v noise2same nb2nb svid
# python -m denoise_lib.compare --preset cpu-long --configs bsd68-gaussian25 \
#     --methods noise2same --option noise2same.lambda_inv=2 --out book/results/compare/cpu-long-lambda2
# ```
#
# The second command trains Noise2Same once more with the weight of its Theorem 1 taken
# literally, λ_inv = 2, instead of the library's 2·s (s the standard deviation of the
# noisy batch), the setting suspected in Part 4. The sentences, from these runs; then each
# pair at the two budgets (this preset's and the 1000 steps), on the test images both runs
# share; and the frontier of the 1000-step run:

# %%
try:
    _, long_run = comparison.load("cpu-long")
except FileNotFoundError:
    long_run = {}
if long_run:
    display(Markdown(course.glue("describe_long", comparison.describe("cpu-long", long_run))))
    for key, (a, b, src, where) in {
            "long_noise2same": ("noise2same", "n2v", "noise2same-table3-bsd68", "Noise2Same's Table 3"),
            "long_svid": ("svid", "nb2nb", "svid-table1-gaussian25", "SVID's Table 1")}.items():
        sentence = comparison.pair_sentence(long_run, "bsd68-gaussian25", a, b,
                                            comparison.paper_diff(pub, src, a, b), where)
        display(Markdown(course.glue(key, sentence)))
    try:   # the same run with Noise2Same's literal weight λ_inv = 2 (--option noise2same.lambda_inv=2)
        _, lam2 = comparison.load(folder=comparison.compare.DEFAULT_OUT / "cpu-long-lambda2")
    except FileNotFoundError:
        lam2 = {}
    display(Markdown(course.glue("long_lambda", comparison.option_sentence(
        long_run, lam2, "bsd68-gaussian25", "noise2same", "λ_inv = 2 (the theorem's weight for unit-variance data)",
        "λ_inv = 2·s (the library's default)", reference="n2v"))))
    # the same pairs at the two budgets, on the test images both runs share (the cpu preset's)
    for key, (a, b) in {"trend_noise2same": ("noise2same", "n2v"), "trend_svid": ("svid", "nb2nb")}.items():
        display(Markdown(course.glue(key, comparison.budget_sentence(results, long_run, "bsd68-gaussian25", a, b))))
    fig = comparison.frontier_figure(long_run, ["bsd68-gaussian25"])
    report.show_figure(fig, alt="Validation PSNR against training steps and against quiet time for N2C, N2V, "
                                "Noise2Same, Neighbor2Neighbor and SVID over 1000 steps, grey Gaussian σ = 25.",
                       caption="The 1000-step run of the disputed pairs: validation PSNR logged every 100 steps.",
                       glue="long_frontier")
else:
    missing = "The 1000-step run (`--preset cpu-long`) has not been made: no results under " \
              "`book/results/compare/cpu-long/`."
    for key in ("describe_long", "long_noise2same", "long_svid", "long_lambda", "trend_noise2same", "trend_svid",
                "long_frontier"):
        course.glue(key, missing, display=False)
    display(Markdown(missing))

# %% [markdown]
# ## Which method when
#
# From the data you have to the method, with the measured reason: among the methods that can
# use that data, the best PSNR in the matching configuration of these runs (and, as the
# ceiling, N2C trained on clean targets).

# %%
display(course.glue("which_when", comparison.Rich(comparison.which_method_when(results))))

# %% [markdown]
# ## On a GPU
#
# The same command with `--preset gpu` trains every method for the library's full budget and
# tests on all 68 images with two noise draws and three seeds.

# %%
try:
    _, gpu = comparison.load("gpu")
    gpu_text = comparison.describe("gpu", gpu)
except FileNotFoundError:
    gpu = None
    gpu_text = "The GPU comparison has not been run: no results under `book/results/compare/gpu/`."
display(Markdown(course.glue("gpu_status", gpu_text)))
if gpu:
    for spec in comparison.NOISES:
        display(comparison.Rich(f"**{comparison.noise_label(spec)} (GPU)**\n\n" + comparison.noise_table(gpu, spec)))

# %% tags=["remove-cell"]
course.provenance()
