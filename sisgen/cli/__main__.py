"""``python -m sisgen.cli``: the ``sisgen`` command (also under ``torchrun -m sisgen.cli``)."""

import sys

from . import main

sys.exit(main())
