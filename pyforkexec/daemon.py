"""``python -m pyforkexec.daemon``: the documented entry point of the service runner (the collection's
``manager: direct`` starts it). The runner itself is ``pyforkexec.service.daemon``."""

import sys

from .service.daemon import main

if __name__ == "__main__":
    sys.exit(main())
