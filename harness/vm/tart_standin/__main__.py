"""``python -m harness.vm.tart_standin``: the tart stand-in's command line."""

import sys

from harness.vm.tart_standin.cli import main

sys.exit(main())
