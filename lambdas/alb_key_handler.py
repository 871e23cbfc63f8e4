"""Load balancer key Lambda: fetches one ALB public key by id for the service, which has no internet route.

Event ``{"kid": "<key id>"}``; answer ``{"status": "found", "pem": ...}``, ``{"status": "not_found"}`` or
``{"status": "unavailable", "reason": ...}`` (``careqa.alb_keys.serve_key_request``). The function runs
outside the VPC so that it can reach AWS's public-key endpoint; it takes nothing but a key id and fetches
nothing but that key from the URL the service stack sets (``CAREQA_ALB_PUBLIC_KEY_URL``, AWS's endpoint for
the deployment's region), so it is not a way out of the VPC for anything else. It sees no PHI.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from careqa.alb_keys import HttpsKeyFetcher, serve_key_request

logger = Logger(service="careqa-alb-keys")
# Built once per container: the connection pool survives between invocations.
_fetch = HttpsKeyFetcher(os.environ["CAREQA_ALB_PUBLIC_KEY_URL"])


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    answer = serve_key_request(event, _fetch)
    logger.info("alb key", extra={"kid": str(event.get("kid"))[:80], "status": answer["status"]})
    return answer
