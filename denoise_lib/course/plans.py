"""What each notebook trains, per budget, and what that costs: the course's cost model.

:data:`PLANS` lists, for every notebook and every budget (``smoke``, ``quick``,
``full`` and, where a paper's own setting does not fit a free GPU session, ``paper``),
the training runs the notebook makes: method, steps, batch × patch², network. The
notebooks read their training budgets from it (:meth:`denoise_lib.course.Settings.run`),
and :meth:`~denoise_lib.course.Settings.train` refuses a network that differs from the
one listed, so the table is what runs.

A budget given in seconds (``DENOISE_BUDGET=120``) gives each run that many seconds of
training with the batch shape of ``quick`` on a CPU and of ``full`` on CUDA.

:func:`estimate` counts the FLOPs of one training step of each run with
:func:`denoise_lib.train.step_flops` (convolutions and matrix products, forward and
backward) and converts them to minutes with the sustained throughputs in
:data:`DEVICES`: the vendor's peak figure times a stated utilisation. Evaluation,
data loading and the optimiser update are not counted; the estimate is of training.

    python -m denoise_lib.course estimate            # the table for every notebook and budget
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["Run", "PLANS", "BUDGET_NAMES", "DEVICES", "Device", "runs_for", "estimate", "estimate_table",
           "PAPER_NOTES"]

BUDGET_NAMES = ("smoke", "quick", "full", "paper")


@dataclass(frozen=True)
class Run:
    """One training run (or ``repeat`` runs of the same shape) of a notebook.

    Attributes:
        label: the name the notebook uses for it.
        method: registry name (:func:`denoise_lib.methods.build`) of the trained method.
        steps, batch_size, patch_size, lr: its :class:`~denoise_lib.train.Budget`.
        channels: image channels (1 or 3).
        net: network keyword arguments (as ``build(..., net=net)``).
        repeat: number of runs of this shape (e.g. one per value of a swept weight).
    """

    label: str
    method: str
    steps: int
    batch_size: int
    patch_size: int
    lr: float
    channels: int = 1
    net: dict = field(default_factory=dict)
    repeat: int = 1

    def budget(self, name: str):
        """This run as a :class:`~denoise_lib.train.Budget` named ``name``."""
        from ..train import Budget

        return Budget(name=name, steps=self.steps, seconds=None, batch_size=self.batch_size,
                      patch_size=self.patch_size, lr=self.lr)


def _runs(specs, **shape) -> tuple[Run, ...]:
    return tuple(Run(**{**shape, **s}) for s in specs)


def _table(specs, *, smoke, quick, full, paper=None) -> dict[str, tuple[Run, ...]]:
    """One notebook's table: the same runs, with per-budget steps/shape/network.

    ``smoke``/``quick``/``full``/``paper`` map to dicts of Run fields (``steps`` may be a
    dict label → steps); each spec in ``specs`` gives label, method and fixed fields.
    """
    out = {}
    for name, shape in (("smoke", smoke), ("quick", quick), ("full", full), ("paper", paper)):
        if shape is None:
            continue
        shape = dict(shape)
        steps = shape.pop("steps")
        net = shape.pop("net", {})
        rows = []
        for s in specs:
            s = dict(s)
            st = steps[s["label"]] if isinstance(steps, dict) else steps
            rows.append(Run(steps=st, net={**net, **s.pop("net", {})}, **shape, **s))
        out[name] = tuple(rows)
    return out


SMOKE = dict(batch_size=2, patch_size=32, lr=1e-3)
QUICK = dict(batch_size=4, patch_size=64, lr=1e-3)
FULL = dict(batch_size=16, patch_size=128, lr=3e-4)

#: notebook (file stem) → budget name → training runs.
PLANS: dict[str, dict[str, tuple[Run, ...]]] = {
    "00_classical_baselines": {b: () for b in ("smoke", "quick", "full")},
    "09_comparison": {b: () for b in ("smoke", "quick", "full")},  # renders committed results
    "01_noise2clean_vs_noise2noise": _table(
        [dict(label="n2c", method="n2c"), dict(label="n2n", method="n2n")],
        smoke=dict(steps=3, **SMOKE), quick=dict(steps=900, **QUICK), full=dict(steps=10_000, **FULL)),
    "02_j_invariance": _table(
        [dict(label="unmasked-plain", method="n2s-unmasked"),
         dict(label="unmasked", method="n2s-unmasked", net={"residual": True}),
         dict(label="n2v-plain", method="n2v"),
         dict(label="n2v", method="n2v", net={"residual": True}),
         dict(label="noise2same", method="noise2same", net={"residual": True})],
        smoke=dict(steps=3, **SMOKE),
        quick=dict(steps={"unmasked-plain": 400, "unmasked": 200, "n2v-plain": 1000, "n2v": 1000,
                          "noise2same": 400}, **QUICK),
        full=dict(steps={"unmasked-plain": 1500, "unmasked": 1000, "n2v-plain": 6000, "n2v": 6000,
                         "noise2same": 3000}, **FULL)),
    "03_blind_spot": _table(
        [dict(label="L2", method="laine19-l2"), dict(label="per-component", method="laine19-percomp"),
         dict(label="full", method="laine19-pme")],
        smoke=dict(steps=3, batch_size=2, patch_size=32, lr=1e-3, channels=3, net={"features": 8, "depth": 2}),
        quick=dict(steps=1000, batch_size=4, patch_size=32, lr=3e-3, channels=3, net={"features": 16, "depth": 2}),
        full=dict(steps=4000, batch_size=4, patch_size=128, lr=3e-4, channels=3, net={"features": 48, "depth": 4}),
        paper=dict(steps=300_000, batch_size=4, patch_size=256, lr=3e-4, channels=3,
                   net={"features": 48, "depth": 5})),
    "04_noise2same": {
        "smoke": (Run("lambda sweep", "noise2same", 2, repeat=4, net={"residual": True}, **SMOKE),),
        "quick": (Run("lambda sweep", "noise2same", 250, repeat=5, net={"residual": True}, **QUICK),),
        "full": (Run("lambda sweep", "noise2same", 1500, repeat=7, net={"residual": True}, **FULL),),
    },
    "05_neighbor2neighbor": {
        "smoke": (Run("gamma sweep", "nb2nb", 2, repeat=6, **SMOKE),),
        "quick": (Run("gamma sweep", "nb2nb", 400, repeat=6, **QUICK),),
        "full": (Run("gamma sweep", "nb2nb", 4000, repeat=6, **FULL),),
    },
    "06_self2align": _table(
        [dict(label="N2N, raw pairs", method="n2n"), dict(label="aligned", method="self2align"),
         dict(label="aligned + sampler", method="self2align")],
        smoke=dict(steps=2, **SMOKE), quick=dict(steps=300, **QUICK), full=dict(steps=5000, **FULL)),
    "07_svid": _table(
        [dict(label="svid", method="svid"), dict(label="ablation", method="svid"),
         dict(label="branch", method="svid"), dict(label="other noise", method="svid")],
        smoke=dict(steps={"svid": 4, "ablation": 2, "branch": 2, "other noise": 3}, net={"features": 24}, **SMOKE),
        quick=dict(steps={"svid": 600, "ablation": 100, "branch": 200, "other noise": 300},
                   net={"features": 24}, **QUICK),
        full=dict(steps={"svid": 6000, "ablation": 1000, "branch": 1500, "other noise": 4000},
                  net={"features": 24}, **FULL),
        paper=dict(steps={"svid": 2_000_000, "ablation": 1000, "branch": 2000, "other noise": 2_000_000},
                   batch_size=1, patch_size=128, lr=2e-4)),
    "08_deep_image_prior": {
        # DIP fits one image: steps are iterations, the patch is the image side (lr: the method's own).
        "smoke": (Run("dip", "dip", 4, 1, 32, 1e-3), Run("dip-y", "dip-y", 4, 1, 32, 1e-3)),
        "quick": (Run("dip", "dip", 1000, 1, 128, 1e-3), Run("dip-y", "dip-y", 300, 1, 128, 1e-3)),
        "full": (Run("dip", "dip", 3000, 1, 256, 1e-3), Run("dip-y", "dip-y", 1500, 1, 256, 1e-3)),
    },
    # the CLI trains it (denoise-lib train); the notebook passes these steps and shapes
    "10_your_own_images": {
        "smoke": (Run("nb2nb", "nb2nb", 3, channels=3, **SMOKE),),
        "quick": (Run("nb2nb", "nb2nb", 400, channels=3, **QUICK),),
        "full": (Run("nb2nb", "nb2nb", 4000, channels=3, **FULL),),
    },
}
# repeats of runs listed once above
_REPEATS = {("07_svid", "ablation"): 3, ("07_svid", "branch"): 2, ("07_svid", "other noise"): 2}
for (nb, label), n in _REPEATS.items():
    for b, runs in PLANS[nb].items():
        PLANS[nb][b] = tuple(dataclasses.replace(r, repeat=n) if r.label == label else r for r in runs)

#: where a notebook has a ``paper`` budget: the paper's setting it follows and what differs.
PAPER_NOTES = {
    "03_blind_spot": "Laine et al. 2019, Sec. 5: Adam, lr 3·10⁻⁴, batch 4, 256×256 crops, until 1.2 M images "
                     "were shown (300 000 steps); the paper trains on 50 000 ImageNet images, the notebook on "
                     "the 199 BSD300 training images.",
    "07_svid": "Lin et al. 2022, Sec. 3.3: batch 1, 128×128 crops, lr 2·10⁻⁴ for 10⁶ iterations then a linear "
               "decay over 10⁶ more (2·10⁶ steps; the library's schedule is a cosine over the same steps), the "
               "paper's U-Net width; the ablation runs keep the notebook's lengths.",
}
#: notebooks without a ``paper`` budget, and why.
NO_PAPER = {
    "00_classical_baselines": "no training",
    "09_comparison": "renders the comparison's committed results; the harness (python -m denoise_lib.compare) "
                     "has its own cpu and gpu presets",
    "01_noise2clean_vs_noise2noise": "a baseline comparison; its paper is not one of the course's five",
    "02_j_invariance": "an analysis of J-invariance; no paper's training setting is reproduced",
    "04_noise2same": "the paper's text gives no step count or patch size for its Table 2 runs",
    "05_neighbor2neighbor": "the paper trains 100 epochs on the ImageNet validation images between 256² and "
                            "512² pixels (Sec. 4.1), a count it does not state, so its step count is unknown",
    "06_self2align": "the paper's denoiser setting (batch 200, '100 iterations') is ambiguous and uses "
                     "Vimeo-90K frames",
    "10_your_own_images": "a worked example on the reader's own images; no paper setting applies",
    "08_deep_image_prior": "one image per fit; full already uses 3000 iterations, the length DIP's "
                           "authors use for denoising",
}


def runs_for(notebook: str, budget) -> tuple[Run, ...]:
    """The runs of ``notebook`` under ``budget`` (a :class:`~denoise_lib.train.Budget` or name).

    ``paper`` falls back to ``full`` where the notebook has no paper budget; a seconds
    budget keeps the runs of ``quick`` (CPU) or ``full`` (CUDA) — as chosen by
    :meth:`~denoise_lib.train.Budget.resolve` — with no step limit.

    Raises:
        KeyError: an unknown notebook.
    """
    if notebook not in PLANS:
        raise KeyError(f"no training plan for notebook {notebook!r}; known: {', '.join(PLANS)}")
    table = PLANS[notebook]
    name = getattr(budget, "name", budget)
    if name == "seconds":
        shape = (budget.batch_size, budget.patch_size)
        name = "full" if shape == (FULL["batch_size"], FULL["patch_size"]) else "quick"
    if name == "paper" and "paper" not in table:
        name = "full"
    return table[name]


@dataclass(frozen=True)
class Device:
    """A GPU of the estimate: ``peak`` TFLOP/s (vendor data sheet) × ``utilisation``."""

    name: str
    precision: str
    peak_tflops: float
    utilisation: float
    source: str

    @property
    def sustained(self) -> float:
        """Assumed sustained throughput in FLOP/s."""
        return self.peak_tflops * 1e12 * self.utilisation


#: The devices of the estimate and the throughputs assumed for them. Peaks: NVIDIA's
#: data sheets (T4: 8.1 TFLOP/s fp32, 65 fp16 tensor; A100 SXM: 19.5 fp32, 312 bf16
#: tensor). Utilisations are assumptions for small U-Nets (few channels, many small
#: kernels), not measurements: 35 % of fp32 peak, 15 % of tensor peak with autocast.
DEVICES = (
    Device("T4", "fp32", 8.1, 0.35, "NVIDIA T4 data sheet"),
    Device("T4", "fp16 autocast", 65.0, 0.15, "NVIDIA T4 data sheet (tensor cores)"),
    Device("A100", "bf16 autocast", 312.0, 0.15, "NVIDIA A100 data sheet (tensor cores, dense)"),
)


def _flops(run: Run) -> int:
    """Counted FLOPs of one training step of ``run`` (one image counted, times the batch)."""
    import torch

    from .. import methods, noise as noise_
    from ..train import Budget, step_flops

    method = methods.build(run.method, channels=run.channels, noise=noise_.Gaussian(25 / 255),
                           patch_size=run.patch_size, net=run.net)
    side = run.patch_size + 8
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, run.channels, side, side, generator=g) for _ in range(2)]
    if isinstance(method, methods.PerImageMethod):  # one iteration of its per-image fit (DIP)
        from torch.utils.flop_counter import FlopCounterMode

        y = images[0][..., :run.patch_size, :run.patch_size]
        counter = FlopCounterMode(display=False)
        with counter:
            torch.mean((method.net(method.network_input(y)) - y) ** 2).backward()
        return int(counter.get_total_flops()) * run.batch_size
    data = type(method).training_set(images, noise_.Gaussian(25 / 255), seed=0)
    one = Budget(name="flops", steps=1, seconds=None, batch_size=1, patch_size=run.patch_size, lr=1e-3)
    return step_flops(method, data, one) * run.batch_size


def estimate(notebooks=None, budgets=BUDGET_NAMES) -> list[dict]:
    """One row per notebook, budget and run: steps, shape, network, FLOPs, minutes per device.

    Returns:
        list of dicts with keys ``notebook, budget, label, method, repeat, steps, batch_size,
        patch_size, net, step_flops, total_flops`` and ``minutes`` (device label → minutes).
    """
    cache: dict = {}
    rows = []
    for nb in notebooks or PLANS:
        for b in budgets:
            if b not in PLANS[nb]:
                continue
            for r in PLANS[nb][b]:
                key = (r.method, r.channels, r.patch_size, tuple(sorted(r.net.items())))
                if key not in cache:
                    cache[key] = _flops(dataclasses.replace(r, batch_size=1))
                f = cache[key] * r.batch_size
                total = f * r.steps * r.repeat
                rows.append(dict(notebook=nb, budget=b, label=r.label, method=r.method, repeat=r.repeat,
                                 steps=r.steps, batch_size=r.batch_size, patch_size=r.patch_size, net=r.net,
                                 step_flops=f, total_flops=total,
                                 minutes={f"{d.name} {d.precision}": total / d.sustained / 60 for d in DEVICES}))
    return rows


def estimate_table(rows: list[dict], *, per_run: bool = False) -> str:
    """Markdown: minutes per notebook and budget (``per_run``: one line per run), with the assumptions."""
    devs = [f"{d.name} {d.precision}" for d in DEVICES]
    lines = []
    if per_run:
        lines += ["| notebook | budget | run | method | runs × steps | batch × patch² | network | GFLOP/step |"
                  + "".join(f" {d} min |" for d in devs),
                  "|---|---|---|---|---|---|---|---|" + "---|" * len(devs)]
        for r in rows:
            net = ", ".join(f"{k}={v}" for k, v in r["net"].items()) or "default"
            lines.append(f"| {r['notebook']} | {r['budget']} | {r['label']} | {r['method']} | "
                         f"{r['repeat']} × {r['steps']:,} | {r['batch_size']} × {r['patch_size']}² | {net} | "
                         f"{r['step_flops'] / 1e9:,.1f} |" + "".join(f" {r['minutes'][d]:,.1f} |" for d in devs))
    else:
        lines += ["| notebook | budget | trainings | total TFLOP |" + "".join(f" {d} min |" for d in devs),
                  "|---|---|---|---|" + "---|" * len(devs)]
        groups: dict = {}
        for r in rows:
            groups.setdefault((r["notebook"], r["budget"]), []).append(r)
        for (nb, b), rs in groups.items():
            tot = sum(r["total_flops"] for r in rs)
            n = sum(r["repeat"] for r in rs)
            lines.append(f"| {nb} | {b} | {n} | {tot / 1e12:,.0f} |"
                         + "".join(f" {sum(r['minutes'][d] for r in rs):,.1f} |" for d in devs))
    lines += ["", "Assumed sustained throughput: " + "; ".join(
        f"{d.name} {d.precision}: {d.peak_tflops:g} TFLOP/s peak ({d.source}) × {d.utilisation:.0%} = "
        f"{d.sustained / 1e12:.2f} TFLOP/s" for d in DEVICES) + ". FLOPs counted with "
        "torch.utils.flop_counter (convolutions and matrix products, forward + backward) on one "
        "training step; training only (no evaluation, data loading or optimiser update)."]
    return "\n".join(lines)
