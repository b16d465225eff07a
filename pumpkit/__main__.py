"""``python -m pumpkit`` is the ``pumpkit`` command."""

import sys

from pumpkit.cli.main import main

sys.exit(main())
