"""Small helpers over boto3 answers that the control plane's modules share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError


def utcnow() -> datetime:
    return datetime.now(UTC)


def client_error(exc: ClientError) -> tuple[str, str]:
    """The AWS error code and message of a failed call."""
    err = exc.response.get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", str(exc)))


def tags_of(sagemaker: Any, arn: str) -> dict[str, str]:
    """All tags of a SageMaker resource, across pages."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = sagemaker.list_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]
