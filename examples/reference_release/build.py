#!/usr/bin/env python3
"""Build the reference release: `python examples/reference_release/build.py [--variant NAME|--all-variants] [--out DIR]`.

Runs with any Python 3.11 on the host (stdlib only); venvstacks and its helpers live in a
separate tools venv under build/. See README.md for the release contract.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from refbuild.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
