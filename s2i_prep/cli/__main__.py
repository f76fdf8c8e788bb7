"""``python -m s2i_prep.cli``: the ``s2i-prep`` command without the console script."""

import sys

from . import main

sys.exit(main())
