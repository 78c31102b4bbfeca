"""``python -m examples.ecommerce``: run the three scenarios (see run.py)."""

from .run import main

raise SystemExit(main())
