"""``python -m noteexec``."""

import sys

from noteexec.cli import main

sys.exit(main())
