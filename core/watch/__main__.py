"""``python -m core.watch``: the watch-folder process (start_dashboard.py runs it)."""

import sys

from .runner import main

sys.exit(main())
