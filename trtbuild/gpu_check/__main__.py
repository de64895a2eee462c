"""`python -m trtbuild.gpu_check`: see trtbuild/gpu_check/run.py."""

from __future__ import annotations

import sys

from trtbuild.gpu_check.run import main

if __name__ == "__main__":
    sys.exit(main())
