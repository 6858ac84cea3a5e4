"""``python -m udfwidgets demo``: the same as the ``udfwidgets`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
