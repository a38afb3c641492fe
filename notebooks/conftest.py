"""nbval runs the notebooks with the `smoke` budget unless DENOISE_BUDGET is set.

The kernel inherits this process's environment, so setting it here (at collection
time, before any kernel starts) is enough. Each test session trains from scratch, in a
fresh run cache of its own. Committed outputs are `quick` results;
tests/test_notebooks.py checks that they are complete and current.
"""
import os
import tempfile

os.environ.setdefault("DENOISE_BUDGET", "smoke")
os.environ.setdefault("DENOISE_PROGRESS", "0")
os.environ.setdefault("DENOISE_STATIC_OUTPUTS", "1")
os.environ["DENOISE_RUN_CACHE"] = tempfile.mkdtemp(prefix="nbval-runs-")
