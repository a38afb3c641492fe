"""Run ``denoise-lib …`` command lines inside a notebook's kernel, and show them as a shell would.

The "Denoise your own images" notebook demonstrates the command-line tool. Starting a
new process for every command would load torch again each time, and its output would
not be captured by the executed notebook; :func:`shell` runs the same command through
:func:`denoise_lib.cli.main` in the running kernel instead::

    from denoise_lib.course.commands import shell
    shell("denoise-lib estimate-noise noisy")

It prints the command line (``$ …``) and what the command printed, with machine-specific
folders replaced by short placeholders, so that a published page shows no local path.
"""
from __future__ import annotations

import contextlib
import io
import shlex
from pathlib import Path

__all__ = ["shell", "RUN_CACHE_PLACEHOLDER"]

#: what the run cache's folder is shown as (the environment variable that sets it)
RUN_CACHE_PLACEHOLDER = "$DENOISE_RUN_CACHE"


def _placeholders(extra: dict | None) -> list[tuple[str, str]]:
    from . import run_cache

    pairs = []
    cache = run_cache()
    if cache is not None:
        pairs.append((str(cache), RUN_CACHE_PLACEHOLDER))
    pairs.append((str(Path.cwd()) + "/", ""))                   # paths below the working folder: relative
    pairs += list((extra or {}).items())
    return sorted(pairs, key=lambda kv: -len(kv[0]))           # longest first: nested folders


def _hide(text: str, pairs) -> str:
    for path, shown in pairs:
        if path:
            text = text.replace(path, shown)
    return text


def shell(command: str, *, placeholders: dict[str, str] | None = None) -> None:
    """Print ``command`` and run it with :func:`denoise_lib.cli.main` in this process.

    Args:
        command: a command line starting with ``denoise-lib`` (split with shell rules,
            :func:`shlex.split`; no pipes or redirections).
        placeholders: more ``{folder: shown as}`` replacements for the printed text.
            Always replaced: the run cache folder (by ``$DENOISE_RUN_CACHE``) and the
            working folder (paths below it are shown relative).

    The command's standard output is printed after the command line; its standard
    error (progress bars) is left alone.

    Raises:
        ValueError: the command does not start with ``denoise-lib``.
        RuntimeError: the command exited with a non-zero status (the message holds it).
    """
    from .. import cli

    args = shlex.split(command)
    if not args or args[0] != "denoise-lib":
        raise ValueError(f"shell() runs denoise-lib commands only, got {command!r}")
    pairs = _placeholders(placeholders)
    print(f"$ {_hide(command, pairs)}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(args[1:])
    print(_hide(out.getvalue(), pairs), end="")
    if rc != 0:
        raise RuntimeError(f"{_hide(command, pairs)!r} exited with status {rc}")
