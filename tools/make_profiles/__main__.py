"""`python -m tools.make_profiles [--check]`: see the package's docstring."""

from __future__ import annotations

import sys

from tools.make_profiles.generate import main

sys.exit(main())
