"""``python -m voltaro`` is the ``voltaro`` command."""

from voltaro.cli import main

raise SystemExit(main())
