"""``python -m bot.cli``: the quotabot command."""

import sys

from bot.cli import main

sys.exit(main())
