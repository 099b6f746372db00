"""`python -m reprover`."""

import sys

from reprover.cli import main

sys.exit(main())
