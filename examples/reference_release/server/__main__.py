"""`python -m server` is the same as `python -m server.main` (venvstacks launches the package)."""

import sys

from .main import main

sys.exit(main())
