"""`python -m jobsctl ...`"""

from __future__ import annotations

import sys

from jobsctl.cli import main

sys.exit(main())
