"""``python -m trtbuild``: Python put the current directory first on ``sys.path``; trtbuild (already
imported) does not need it, and a ``numpy.py`` lying there must not be imported, so it is dropped."""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from trtbuild.cli import run  # noqa: E402

run()
