"""``python -m hyperleaf.experiments ARGS`` = ``hyperleaf ablate ARGS``."""

import sys

from hyperleaf.experiments.runner import main

sys.exit(main())
