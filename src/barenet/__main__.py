"""``python -m barenet ...`` runs the command line, as the ``barenet`` script does."""

import sys

from barenet.cli import main

sys.exit(main())
