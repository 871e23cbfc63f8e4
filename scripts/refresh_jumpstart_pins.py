#!/usr/bin/env python3
"""Kept for old instructions: the same as ``careqa models refresh`` (careqa/jumpstart_pins.py does the work).

python scripts/refresh_jumpstart_pins.py [--dry-run] [CONFIG...] [--region R ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from careqa.cli_models import app  # noqa: E402

if __name__ == "__main__":
    app(["refresh", *sys.argv[1:]], prog_name="careqa models")
