"""``python -m pyforkexec.daemon``: the documented entry point of the service runner (the collection's
``manager: direct`` starts it). The runner itself is ``pyforkexec.service.daemon``."""

import sys

from ._startup import defer_inspect

defer_inspect()  # before the public dataclasses are imported: see _startup.py

from .service.daemon import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
