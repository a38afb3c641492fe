"""The ``denoise-lib`` command line: train a model on your images, denoise with it, and more.

Sub-commands::

    denoise-lib train --method NAME --noisy DIR [--second DIR | --clean DIR] [--noise SPEC]
                      [--budget smoke|quick|full|SECONDS] --out MODEL
    denoise-lib denoise (--model MODEL | --method bm3d|nlm|tv|dip|dip-y) INPUTS... --out DIR
    denoise-lib methods
    denoise-lib estimate-noise FILES...
    denoise-lib bench ARGS...            (the comparison harness, :mod:`denoise_lib.bench`)

``train`` checks what the method needs (``--clean`` for Noise2Clean, ``--second`` for
methods trained on pairs, ``--noise`` for those that use a known σ) before reading any
image, trains with :func:`denoise_lib.train.fit` (progress bar; checkpoint ``MODEL.ckpt``
resumed automatically after a Ctrl-C) and writes a **model file**: a ``torch.save`` dict
holding the weights, the method name and settings, the network arguments, the channel
count and the library version, read back by :func:`load_model` with ``weights_only=True``.

``denoise`` reads files or folders of images and writes each result under the same name
into ``--out``, in the input's format and bit depth (8 or 16 bits; alpha kept), tile by
tile (:func:`denoise_lib.tiling.denoise_tiled`) so that large images fit in memory and
the output equals the untiled one. Noise levels are in the library's [0, 1] units
(``--sigma 0.098`` or ``--sigma 25/255``); ``--noise`` takes a spec such as ``gaussian:25``.

Exit codes: 0 success, 2 usage or data error (message on stderr), 130 interrupted.
With ``WORLD_SIZE > 1`` (``torchrun``), ``train`` joins the process group and
:func:`~denoise_lib.train.fit` trains with DistributedDataParallel; rank 0 prints and
writes the checkpoint and the model file.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
import warnings
from pathlib import Path

import torch

__all__ = ["main", "load_model", "save_model", "ModelError", "MODEL_FORMAT"]

MODEL_FORMAT = "denoise_lib.model/1"
PROG = "denoise-lib"
#: suffixes write_image can produce; other inputs are written as PNG.
_WRITABLE = {".png", ".tif", ".tiff", ".jpg", ".jpeg"}
_CLASSICAL = ("bm3d", "nlm", "tv")
_PER_IMAGE = ("dip", "dip-y")


class ModelError(ValueError):
    """A file that is not a usable denoise_lib model file (the message says why)."""


class _Fail(Exception):
    """A user-facing error: printed as ``denoise-lib CMD: error: MESSAGE``, exit code 2."""


def _say(*parts, file=None) -> None:
    print(*parts, file=file or sys.stdout, flush=True)


# --------------------------------------------------------------------------- model files

def save_model(method, path, *, net: dict | None = None, patch_size: int | None = None) -> Path:
    """Write a trained method to a model file (atomically: a temporary file, then a rename).

    The file is a ``torch.save`` dict: ``format`` (:data:`MODEL_FORMAT`), ``method`` (registry
    name), ``settings`` (``method.config``; noise models as spec strings), ``net`` (network
    keyword arguments), ``patch_size`` (decides the blind-spot network's depth), ``channels``,
    ``version`` and ``state_dict`` (CPU tensors).

    Returns:
        the path written.
    """
    from . import __version__

    path = Path(path)
    state = {"format": MODEL_FORMAT, "method": method.name, "settings": method.config,
             "net": dict(net or {}), "patch_size": patch_size, "channels": int(method.channels),
             "version": __version__,
             "state_dict": {k: v.detach().cpu() for k, v in method.state_dict().items()}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_model(path, *, device: torch.device | str | None = None):
    """Read a model file written by ``denoise-lib train`` (or :func:`save_model`).

    Loaded with ``torch.load(..., weights_only=True, map_location="cpu")`` (no code is
    executed), rebuilt with :func:`denoise_lib.methods.build` from the stored name,
    settings, network arguments and channel count, then filled with the weights.

    Args:
        path: the model file.
        device: where to put the method (default: the CPU).

    Returns:
        the :class:`~denoise_lib.methods.base.Method`, in eval mode.

    Raises:
        ModelError: missing or unreadable file, not a model file (e.g. a training
            checkpoint), another format version, an unknown method, or weights that do
            not fit the rebuilt network.
    """
    from . import methods

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or foreign files raise many types
        raise ModelError(f"{path} is not a readable denoise_lib model file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt != MODEL_FORMAT:
        if isinstance(fmt, str) and fmt.startswith("denoise_lib.fit/"):
            raise ModelError(f"{path} is a training checkpoint, not a model file; run the same "
                             "`denoise-lib train` command again to finish and write the model")
        if isinstance(fmt, str) and fmt.startswith("denoise_lib.model/"):
            raise ModelError(f"{path} has model format {fmt!r} (library version {state.get('version')!r}); "
                             f"this version ({_version()}) reads {MODEL_FORMAT!r}")
        raise ModelError(f"{path} is not a denoise_lib model file (no {MODEL_FORMAT!r} format tag)")
    name = state.get("method")
    if name not in methods.REGISTRY:
        raise ModelError(f"{path}: unknown method {name!r} (this library knows "
                         f"{', '.join(methods.available())}); it was written by version {state.get('version')!r}")
    settings = dict(state.get("settings") or {})
    noise = settings.pop("noise", None)
    try:
        method = methods.build(name, int(state["channels"]), noise=noise, patch_size=state.get("patch_size"),
                               net=dict(state.get("net") or {}), **settings)
        method.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{path}: cannot rebuild {name!r} from the file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    method.eval()
    return method.to(device) if device is not None else method


def _version() -> str:
    from . import __version__

    return __version__


# --------------------------------------------------------------------------- files

def _image_files(folder: Path, flag: str) -> list[Path]:
    from .data import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise _Fail(f"{flag} {folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise _Fail(f"{flag} {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _expand_inputs(inputs: list[str]) -> list[Path]:
    out = []
    for s in inputs:
        p = Path(s).expanduser()
        if p.is_dir():
            out.extend(_image_files(p, "input"))
        elif p.is_file():
            out.append(p)
        else:
            raise _Fail(f"input not found: {p}")
    return out


def _info(path: Path):
    from .image import ImageError, image_info

    try:
        info = image_info(path)
    except ImageError as e:
        raise _Fail(str(e)) from None
    if info.pages > 1:
        raise _Fail(f"{path} holds {info.pages} pages; split it into single images first")
    return info


def _read(path: Path, channels: int | None = None) -> torch.Tensor:
    from .image import ImageError, read_image

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*alpha channel dropped", category=UserWarning)
        try:
            return read_image(path, channels=channels)
        except ImageError as e:
            raise _Fail(str(e)) from None


def _partner(folder: Path, f: Path) -> Path | None:
    from .data import IMAGE_SUFFIXES

    if (folder / f.name).is_file():
        return folder / f.name
    same = [p for p in sorted(folder.glob(f.stem + ".*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return same[0] if len(same) == 1 else None


def _partners(folder: Path, files: list[Path], flag: str) -> list[Path]:
    if not folder.is_dir():
        raise _Fail(f"{flag} {folder}: folder not found")
    found = [_partner(folder, f) for f in files]
    missing = [f.name for f, p in zip(files, found) if p is None]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise _Fail(f"{flag} {folder} has no image matching {', '.join(missing[:5])}{more} "
                    "(files are paired by name)")
    return found


def _channels_of(files: list[Path], flag: str) -> int:
    groups: dict[int, list[str]] = {}
    for f in files:
        groups.setdefault(_info(f).channels, []).append(f.name)
    if len(groups) > 1:
        desc = "; ".join(f"{c} channel{'s' if c > 1 else ''}: {', '.join(names[:5])}"
                         f"{f' and {len(names) - 5} more' if len(names) > 5 else ''}"
                         for c, names in sorted(groups.items(), key=lambda kv: len(kv[1]), reverse=True))
        raise _Fail(f"{flag}: the images do not all have the same channel count ({desc}); "
                    "pass --channels 1 or --channels 3 to convert them")
    return next(iter(groups))


# --------------------------------------------------------------------------- train

def _distributed_setup() -> tuple[int, int, torch.device | None]:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1``.

    Returns:
        ``(rank, world_size, device)``: the device is ``cuda:LOCAL_RANK`` on CUDA and None
        otherwise (or when not distributed).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    device = None
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0") or 0))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _distributed_teardown(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _needs_noise(name: str) -> bool:
    """Whether method ``name`` cannot be built without a noise model (a known σ)."""
    from . import methods

    cls = methods.method_class(name)
    if "noise" not in inspect.signature(cls.__init__).parameters:
        return False
    try:
        methods.build(name, 1)
    except ValueError:
        return True
    return False


def _cmd_train(args) -> int:
    from . import methods
    from .data import TrainingSet
    from .methods.base import PerImageMethod
    from .noise import parse_noise
    from .train import Budget, CheckpointError, fit, load_checkpoint, resolve_device

    name = args.method
    try:
        cls = methods.method_class(name)
    except KeyError as e:
        raise _Fail(e.args[0]) from None
    if issubclass(cls, PerImageMethod):
        raise _Fail(f"{name} has no training step: it is fitted to each image when denoising; "
                    f"run `{PROG} denoise --method {name} INPUTS --out DIR`")
    needs = cls.requires
    if needs == "clean" and not args.clean:
        raise _Fail(f"{name} trains on noisy images and their clean versions: pass --clean DIR "
                    "(clean images with the same file names as --noisy)")
    if needs == "pairs" and not args.second:
        raise _Fail(f"{name} trains on {cls.describe_data()}: pass --second DIR (the second noisy "
                    "observation of each image, same file names as --noisy)")
    noise = None
    if args.noise:
        try:
            noise = parse_noise(args.noise)
        except ValueError as e:
            raise _Fail(f"--noise: {e}") from None
    elif _needs_noise(name):
        raise _Fail(f"{name} uses the known noise level of the data: pass --noise SPEC, e.g. "
                    "--noise gaussian:25 (σ on the 0–255 scale); `denoise-lib estimate-noise` estimates it")

    out = Path(args.out).expanduser()
    if out.is_dir():
        raise _Fail(f"--out {out} is a folder; give a model file name such as {out / 'model.pt'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _Fail(f"--out {out}: cannot create its folder ({e})") from None
    files = _image_files(Path(args.noisy).expanduser(), "--noisy")
    extra_flag, extra_dir = ("--clean", args.clean) if args.clean else ("--second", args.second)
    extra = _partners(Path(extra_dir).expanduser(), files, extra_flag) if extra_dir else None
    channels = args.channels
    if channels is None:
        channels = _channels_of(files, "--noisy")
        if extra and _channels_of(extra, extra_flag) != channels:
            raise _Fail(f"the {extra_flag} images have {_channels_of(extra, extra_flag)} channels, the --noisy "
                        f"ones {channels}; pass --channels 1 or 3 to convert both")

    rank, world, dist_device = _distributed_setup()
    try:
        try:
            device = dist_device or resolve_device(args.device)
        except ValueError as e:
            raise _Fail(f"--device: {e}") from None
        try:
            budget = Budget.resolve(args.budget, device)
            changes = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size),
                                         ("patch_size", args.patch_size)) if v is not None}
            budget = budget.replace(**changes) if changes else budget
        except ValueError as e:
            raise _Fail(f"--budget: {e}") from None
        net = {k: v for k, v in (("features", args.features), ("depth", args.depth)) if v is not None}
        try:
            method = methods.build(name, channels, noise=noise, patch_size=budget.patch_size, net=net,
                                   seed=args.seed)
        except ValueError as e:
            raise _Fail(f"cannot build {name}: {e}") from None

        noisy = [_read(f, channels) for f in files]
        other = [_read(f, channels) for f in extra] if extra else None
        for f, y, t in zip(files, noisy, other or noisy):
            if t.shape != y.shape:
                raise _Fail(f"{f.name}: the {extra_flag} image has size {tuple(t.shape[-2:])}, "
                            f"the --noisy one {tuple(y.shape[-2:])}")
        if extra_flag == "--clean":
            data = TrainingSet("clean", noisy, clean=other)
        else:
            data = TrainingSet.from_noisy(noisy, other)
        if extra_dir and data.kind != needs and rank == 0:
            _say(f"note: {name} trains on single noisy images; {extra_flag} is not used", file=sys.stderr)

        ckpt = out.with_name(out.name + ".ckpt")  # fit: rank 0 writes it, every rank resumes from it
        resumed = ckpt.is_file()
        if resumed and rank == 0:
            _say(f"resuming from {ckpt}", file=sys.stderr)
        try:
            history = fit(method, data, budget, seed=args.seed, device=device, checkpoint=ckpt,
                          checkpoint_every=args.checkpoint_every, precision=args.precision,
                          progress=False if (args.no_progress or rank != 0) else None)
        except CheckpointError as e:
            raise _Fail(str(e)) from None
        except KeyboardInterrupt:
            step = "?"
            try:
                step = load_checkpoint(ckpt)["schedule"]["step"]
            except Exception:
                pass
            if rank == 0:
                _say(f"interrupted at step {step}; run the same command again to resume", file=sys.stderr)
            return 130
        except (TypeError, ValueError) as e:
            raise _Fail(str(e)) from None
        if rank == 0:
            save_model(method.cpu(), out, net=net, patch_size=budget.patch_size)
            _say(f"trained {name} for {history.steps} steps ({history.seconds:.1f} s of training); "
                 f"model written to {out}")
            ckpt.unlink(missing_ok=True)
        return 0
    finally:
        _distributed_teardown(world)


# --------------------------------------------------------------------------- denoise

def _output_paths(files: list[Path], out: Path, overwrite: bool) -> list[Path]:
    outs = []
    notes = set()
    for f in files:
        name = f.name if f.suffix.lower() in _WRITABLE else f.stem + ".png"
        if f.suffix.lower() not in _WRITABLE:
            notes.add(f.suffix.lower())
        outs.append(out / name)
    seen: dict[Path, Path] = {}
    for f, o in zip(files, outs):
        if o in seen:
            raise _Fail(f"{seen[o]} and {f} would both be written to {o}; denoise them into separate folders")
        seen[o] = f
    if not overwrite:
        resolved_inputs = {f.resolve() for f in files}
        clash = [o for o in outs if o.resolve() in resolved_inputs]
        folders = {f.parent.resolve() for f in files}
        if out.resolve() in folders or clash:
            raise _Fail(f"--out {out} holds input images, which would be overwritten; "
                        "choose another folder or pass --overwrite")
    if notes:
        _say(f"note: {', '.join(sorted(notes))} files are written as PNG (same bit depth)", file=sys.stderr)
    return outs


def _cmd_denoise(args) -> int:
    from . import classical, methods
    from .image import as_image, read_alpha, write_image
    from .tiling import denoise_tiled, exact_overlap, tile_settings
    from .train import resolve_device

    if bool(args.model) == bool(args.method):
        raise _Fail("give either --model MODEL (a trained model file) or --method "
                    f"{'|'.join(_CLASSICAL + _PER_IMAGE)}")
    sigma = _sigma(args.sigma)
    tile = None if args.tile == "auto" else _positive_int(args.tile, "--tile")
    overlap = None if args.overlap == "auto" else _positive_int(args.overlap, "--overlap", zero=True)
    files = _expand_inputs(args.inputs)
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise _Fail(f"--out {out} is a file; give a folder")
    targets = _output_paths(files, out, args.overwrite)
    infos = [_info(f) for f in files]
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise _Fail(f"--device: {e}") from None

    model = None
    if args.model:
        try:
            model = load_model(args.model, device=device)
        except ModelError as e:
            raise _Fail(str(e)) from None
        c = model.channels
        bad = [(f, i.channels) for f, i in zip(files, infos) if i.channels != c and not (i.channels == 1 and c == 3)]
        if bad:
            f, got = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise _Fail(f"{f} has {got} channels, but the model {args.model} was trained on {c}-channel "
                        f"images{more}; convert the images or train a {got}-channel model")
        try:
            tiling = tile_settings(model, tile=tile, overlap=overlap)
        except ValueError as e:
            raise _Fail(str(e)) from None
        if tiling["exact"] is False:
            _say(f"note: overlap {tiling['overlap']} px is below the exact one for this network "
                 f"({exact_overlap(model, blend=tiling['blend'])} px): tiles are cross-faded, the output "
                 "may differ slightly from an untiled pass", file=sys.stderr)
    elif args.method not in _CLASSICAL + _PER_IMAGE:
        raise _Fail(f"--method {args.method}: not a classical or per-image method "
                    f"({', '.join(_CLASSICAL + _PER_IMAGE)}); learned methods need `{PROG} train` and --model")

    out.mkdir(parents=True, exist_ok=True)
    from tqdm.std import tqdm

    dips: dict[int, object] = {}
    bar = tqdm(list(zip(files, infos, targets)), desc="denoise", unit="image", file=sys.stderr,
               disable=args.no_progress or os.environ.get("DENOISE_PROGRESS", "1").strip() == "0", leave=True)
    t0 = time.perf_counter()
    for f, info, target in bar:
        y = _read(f)
        alpha = read_alpha(f) if info.has_alpha else None
        if model is not None:
            try:
                x = denoise_tiled(model, y, tile=tile, overlap=overlap)
            except ValueError as e:
                raise _Fail(f"{f}: {e}") from None
            if y.shape[1] == 1 and x.shape[1] == 3:
                x = as_image(x.clamp(0, 1), channels=1)
        elif args.method in _CLASSICAL:
            x = classical.CLASSICAL[args.method](y, sigma)
        else:
            c = y.shape[1]
            if c not in dips:
                kw = {"iterations": args.iterations} if args.iterations is not None else {}
                dips[c] = methods.build(args.method, c, seed=args.seed, **kw).to(device)
            x = dips[c].denoise(y)
        write_image(target, x, like=info, alpha=alpha)
    bar.close()
    _say(f"denoised {len(files)} image{'s' if len(files) != 1 else ''} into {out} "
         f"({time.perf_counter() - t0:.1f} s)")
    return 0


def _sigma(text: str | None) -> float | None:
    """``--sigma``: a number in [0, 1] units or a fraction such as ``25/255``."""
    if text is None:
        return None
    try:
        num, _, den = text.partition("/")
        value = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        raise _Fail(f"--sigma must be a number such as 0.098 or a fraction such as 25/255, got {text!r}") from None
    if not 0 <= value <= 1:
        hint = f" (on the 0–255 scale write {text}/255)" if 1 < value <= 255 else ""
        raise _Fail(f"--sigma is in [0, 1] units, as estimate-noise prints, got {value:g}{hint}")
    return value


def _positive_int(text: str, flag: str, zero: bool = False) -> int:
    try:
        v = int(text)
    except ValueError:
        raise _Fail(f"{flag} must be an integer or 'auto', got {text!r}") from None
    if v < (0 if zero else 1):
        raise _Fail(f"{flag} must be {'≥ 0' if zero else '≥ 1'}, got {v}")
    return v


# --------------------------------------------------------------------------- methods, estimate-noise

def _flags(cls, name: str) -> str:
    from .methods.base import PerImageMethod

    if issubclass(cls, PerImageMethod):
        return f"denoise --method {name}"
    f = {"clean": "--noisy --clean", "pairs": "--noisy --second"}.get(cls.requires, "--noisy")
    return f + (" --noise" if _needs_noise(name) else "")


def _cmd_methods(args) -> int:
    from . import methods
    from .methods.base import PerImageMethod

    rows = []
    for name in methods.available():
        cls = methods.method_class(name)
        if issubclass(cls, PerImageMethod):
            data = "none: fitted to each noisy image while denoising"
            cost = "a full fit per image at denoising time"
        else:
            data, cost = cls.describe_data(), cls.cost_note
        rows.append((name, data, _flags(cls, name), cost))
    _say("| method | trains on | flags | cost per training step |")
    _say("|---|---|---|---|")
    for r in rows:
        _say("| " + " | ".join(r) + " |")
    _say("\nclassical (no training; `denoise --method NAME`): " + ", ".join(_CLASSICAL))
    return 0


def _cmd_estimate_noise(args) -> int:
    from .classical import estimate_sigma

    files = _expand_inputs(args.files)
    width = max(len(str(f)) for f in files)
    _say(f"{'file':<{width}}  sigma [0,1]  sigma [0,255]")
    for f in files:
        _info(f)
        try:
            s = float(estimate_sigma(_read(f))[0])
        except ValueError as e:
            raise _Fail(f"{f}: {e}") from None
        _say(f"{str(f):<{width}}  {s:11.5f}  {255 * s:13.2f}")
    return 0


# --------------------------------------------------------------------------- parser

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Train denoisers on your own images, denoise image "
                                "files and folders, list the methods, estimate noise levels.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a learned method on a folder of noisy images")
    t.add_argument("--method", required=True, help="a registered method (see `denoise-lib methods`)")
    t.add_argument("--noisy", required=True, metavar="DIR", help="folder of noisy training images")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--second", metavar="DIR", help="second noisy observations, paired by file name "
                   "(methods trained on pairs: n2n, self2align)")
    g.add_argument("--clean", metavar="DIR", help="clean targets, paired by file name (n2c)")
    t.add_argument("--noise", metavar="SPEC", help="noise of the data, e.g. gaussian:25 (needed by "
                   "methods that use a known σ: laine19-*)")
    t.add_argument("--budget", default=None, help="smoke | quick | full | paper | SECONDS "
                   "(default: $DENOISE_BUDGET, else full on CUDA, quick on CPU)")
    t.add_argument("--steps", type=int, help="override the budget's step count")
    t.add_argument("--batch-size", type=int, help="override the budget's batch size")
    t.add_argument("--patch-size", type=int, help="override the budget's patch side")
    t.add_argument("--channels", type=int, choices=(1, 3), help="convert the images to 1 or 3 channels "
                   "(default: the images' own, which must agree)")
    t.add_argument("--features", type=int, help="network width (default: the method's)")
    t.add_argument("--depth", type=int, help="network depth, number of poolings (default: the method's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"))
    t.add_argument("--device", default=None, help="e.g. cpu, cuda, cuda:1 (default: CUDA if available)")
    t.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--out", required=True, metavar="MODEL", help="model file to write (checkpoint: MODEL.ckpt)")
    t.set_defaults(func=_cmd_train)

    d = sub.add_parser("denoise", help="denoise image files or folders")
    d.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    d.add_argument("--model", metavar="MODEL", help="a model file written by `denoise-lib train`")
    d.add_argument("--method", help=f"instead of --model: {', '.join(_CLASSICAL + _PER_IMAGE)}")
    d.add_argument("--sigma", help="σ for bm3d/nlm/tv in [0, 1] units, or a fraction such as 25/255 "
                   "(default: estimated per image)")
    d.add_argument("--iterations", type=int, help="fitting iterations for dip/dip-y (default: the method's)")
    d.add_argument("--seed", type=int, default=0, help="seed of dip's initial weights")
    d.add_argument("--out", required=True, metavar="DIR", help="output folder (same file names)")
    d.add_argument("--tile", default="auto", help="tile side in pixels, or auto (1024, larger if the overlap needs it)")
    d.add_argument("--overlap", default="auto",
                   help="tile overlap in pixels, or auto (exact for the library's networks)")
    d.add_argument("--device", default=None)
    d.add_argument("--overwrite", action="store_true", help="allow writing into a folder of inputs")
    d.add_argument("--no-progress", action="store_true")
    d.set_defaults(func=_cmd_denoise)

    m = sub.add_parser("methods", help="list the methods, the data each needs and its cost")
    m.set_defaults(func=_cmd_methods)

    e = sub.add_parser("estimate-noise", help="estimate the Gaussian σ of noisy images (wavelet MAD)")
    e.add_argument("files", nargs="+", metavar="FILE", help="image files or folders")
    e.set_defaults(func=_cmd_estimate_noise)

    sub.add_parser("bench", help="the comparison harness (arguments as `python -m denoise_lib.bench`)",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Exit codes: 0 success, 2 a usage or data error (printed on stderr), 130 interrupted.
    """
    from .image import ImageError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from . import bench

        return bench.main(argv[1:])
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        return args.func(args)
    except (_Fail, ModelError) as e:
        _say(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (ImageError, FileNotFoundError) as e:  # e.g. an output that cannot be written
        _say(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _say("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
