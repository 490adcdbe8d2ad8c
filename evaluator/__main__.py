"""``python -m imagejury`` is the ``imagejury`` command."""

import sys

from imagejury.cli import main

sys.exit(main())
