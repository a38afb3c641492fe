"""``python -m denoise_lib.course``: see :func:`denoise_lib.course.main`."""
import sys

from . import main

sys.exit(main())
