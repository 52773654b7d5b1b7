"""``python -m harness.testing.tart_standin``: the tart stand-in's command line."""

import sys

from harness.testing.tart_standin.cli import main

sys.exit(main())
