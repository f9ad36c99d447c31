"""``python -m bot``: the quotabot command."""

import sys

from bot.cli import main

sys.exit(main())
