"""Indexes per embedding model: which copy of a tenant's index holds vectors of which model.

Vectors of two models cannot be searched together, even of the same dimension, so every index records the
*identity* of the model that made its vectors (``ModelConfig.identity``: the model id and, for a tuned
model, a hash of its weights). Moving to another model never rewrites the index in service: ``careqa ingest
--reembed`` builds a second copy for the new model beside it (a *generation*) while the old copy keeps
serving, marks each tenant complete once its copy holds the whole knowledge base, and the service switches
when its embedding model becomes the new one (a config change locally; on SageMaker the swap tool records the
new model, and it refuses until every tenant is complete). Each driver names its copies from ``model_slug``.
"""

from __future__ import annotations

import hashlib
import re


def same_model(recorded: str | None, identity: str) -> bool:
    """Whether vectors recorded as made by ``recorded`` are those of the model ``identity``."""
    return recorded is not None and recorded == identity


def model_slug(identity: str) -> str:
    """A short, name-safe (lowercase, OpenSearch index names included) label for one model identity."""
    readable = re.sub(r"[^a-z0-9]+", "-", identity.split("+", 1)[0].lower()).strip("-")[:40].strip("-")
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"
