"""``python -m guidist``: the same as the ``guidist`` command."""

import sys

from .cli import main

sys.exit(main())
