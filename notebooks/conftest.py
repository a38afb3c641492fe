"""nbval runs the notebooks with the `smoke` budget unless DENOISE_BUDGET is set.

The kernel inherits this process's environment, so setting it here (at collection
time, before any kernel starts) is enough. Committed outputs are `quick` results;
tests/test_notebooks.py checks that they are complete and current.
"""
import os

os.environ.setdefault("DENOISE_BUDGET", "smoke")
os.environ.setdefault("DENOISE_PROGRESS", "0")
