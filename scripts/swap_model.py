#!/usr/bin/env python3
"""Swap the model behind a CareQA SageMaker endpoint: the same command as ``careqa models swap``.

    python scripts/swap_model.py ENDPOINT CONFIG [--dry-run] [--keep N] [--region R]
        [--canary-percent P] [--wait-minutes M] [--alarm NAME ...] [--accept-eula]

Kept as a script for operators' runbooks that call it by path; all logic is in endpoints/sagemaker/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout without installing

import typer  # noqa: E402

from careqa.cli_models import app  # noqa: E402

if __name__ == "__main__":
    swap = typer.main.get_group(app).commands["swap"]
    swap.main(sys.argv[1:], prog_name="swap_model.py")
