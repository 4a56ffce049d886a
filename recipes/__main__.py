"""``python -m recipes list``, ``python -m recipes copy chapter.name``: see _snippets.py."""

import sys

from recipes._snippets import main

sys.exit(main())
