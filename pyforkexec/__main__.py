"""``python -m pyforkexec``: the same as the ``pyforkexec`` console script."""

import sys

from .cli import main

sys.exit(main())
