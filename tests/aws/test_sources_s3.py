"""Source links on AWS: the service reads the cited document from the knowledge-base bucket (moto's S3).

The settings are the ones the service stack gives the Fargate task: tenants without a ``kb_path`` (the task
has no knowledge-base folder) and ``CAREQA_SOURCES__*`` naming the bucket. Objects live under
``<tenant>/<path>``, as the ingestion Lambda reads them. Links are signed with the settings' own key, exactly
as the answer engine signs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from fastapi.testclient import TestClient
from moto import mock_aws

from careqa.config import Settings, load_settings
from careqa.runtime import Runtime
from careqa.service.app import create_app
from careqa.sources import LinkSigner

REPO = Path(__file__).resolve().parents[2]
SAMPLE_KB = REPO / "sample_kb"
REGION = "us-east-1"
BUCKET = "careqa-data-knowledgebase-test"
SECRET = "test-link-secret"
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
#: sample documents of each format the knowledge base takes (Markdown, HTML, text)
DOCUMENTS = [
    "procedures/claim-rejection-codes.md",
    "procedures/order-and-delivery-status.html",
    "procedures/insurance-and-billing.txt",
]


def link(tenant: str, path: str) -> str:
    """A signed link as the service hands it out (same key, same TTL), without its #fragment."""
    return LinkSigner(SECRET.encode(), 3600).link(tenant, path).split("#")[0]


@pytest.fixture()
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """moto's S3 with the knowledge-base bucket holding the sample knowledge base under <tenant>/<path>."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        for file in SAMPLE_KB.rglob("*"):
            if file.is_file():
                client.put_object(Bucket=BUCKET, Key=file.relative_to(SAMPLE_KB).as_posix(), Body=file.read_bytes())
        yield client


def aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **sources: str) -> Settings:
    """Settings as on Fargate: tenants from CAREQA_TENANTS (no kb_path), sources from CAREQA_SOURCES__*."""
    tenants = [{"id": "pharmacy", "name": "Northwind Pharmacy"}, {"id": "clinic", "name": "Lakeside Family Clinic"}]
    monkeypatch.setenv("CAREQA_TENANTS", json.dumps(tenants))
    for name, value in {"driver": "s3", "bucket": BUCKET, "region": REGION, **sources}.items():
        monkeypatch.setenv(f"CAREQA_SOURCES__{name.upper()}", value)
    return load_settings(REPO / "config" / "local.yaml", data_dir=tmp_path / "aws", link_secret=SECRET)


def client_for(settings: Settings, **kwargs: object) -> TestClient:
    return TestClient(create_app(settings, runtime=Runtime(settings), warm_up=False, **kwargs))  # type: ignore[arg-type]


def test_a_source_link_on_aws_opens_the_document_from_the_bucket(
    s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = aws_settings(monkeypatch, tmp_path)
    assert all(t.kb_path is None for t in settings.tenants)  # as on the Fargate task

    page = client_for(settings).get(link("pharmacy", "procedures/claim-rejection-codes.md"))

    assert page.status_code == 200, page.text
    assert "Prior authorization required" in page.text
    assert page.headers["content-security-policy"] == CSP


@pytest.mark.parametrize("path", DOCUMENTS)
def test_a_document_from_the_bucket_renders_exactly_like_the_local_one(
    s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str
) -> None:
    local = load_settings(REPO / "config" / "local.yaml", data_dir=tmp_path / "local", link_secret=SECRET)
    assert local.sources.driver == "local"
    from_folder = client_for(local).get(link("pharmacy", path))
    from_bucket = client_for(aws_settings(monkeypatch, tmp_path)).get(link("pharmacy", path))

    assert from_folder.status_code == from_bucket.status_code == 200
    assert from_bucket.text == from_folder.text
    assert from_bucket.headers["content-security-policy"] == from_folder.headers["content-security-policy"] == CSP


@pytest.mark.parametrize(
    "path",
    [
        "procedures/appointments.md",  # exists, but only under clinic/
        "../clinic/procedures/appointments.md",
        "procedures/../../clinic/procedures/appointments.md",
        "/clinic/procedures/appointments.md",
        "procedures//../../clinic/procedures/appointments.md",
    ],
)
def test_another_tenants_prefix_is_unreachable_even_with_a_signed_link(
    s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str
) -> None:
    client = client_for(aws_settings(monkeypatch, tmp_path))
    assert client.get(link("clinic", "procedures/appointments.md")).status_code == 200  # the document is there

    response = client.get(link("pharmacy", path))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "Cancel" not in response.text


def test_a_link_for_a_tenant_the_deployment_does_not_serve_is_a_404(
    s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="other/notes.md", Body=b"# Someone else's notes\n")  # type: ignore[attr-defined]
    response = client_for(aws_settings(monkeypatch, tmp_path)).get(link("other", "notes.md"))
    assert response.status_code == 404 and "notes" not in response.text.lower()


def test_a_missing_object_is_a_404_in_the_error_shape(
    s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    response = client_for(aws_settings(monkeypatch, tmp_path)).get(link("pharmacy", "procedures/withdrawn.md"))
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no such source document"}}


def test_an_object_over_the_size_cap_is_refused_without_rendering_it(
    s3: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="pharmacy/big.md", Body=b"# Big\n" + b"x" * 200)  # type: ignore[attr-defined]
    client = client_for(aws_settings(monkeypatch, tmp_path, max_bytes="100"))

    response = client.get(link("pharmacy", "big.md"))

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "source_too_large"
    s3.put_object(Bucket=BUCKET, Key="pharmacy/small.md", Body=b"# Small\n")  # type: ignore[attr-defined]
    assert client.get(link("pharmacy", "small.md")).status_code == 200


@pytest.mark.parametrize("code", ["AccessDenied", "KMS.DisabledException", "NoSuchBucket", "SlowDown"])
def test_an_s3_error_is_a_502_that_reveals_no_bucket_key_or_aws_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: str
) -> None:
    from careqa.sources import S3SourceStore

    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    store = S3SourceStore(BUCKET, tenants={"pharmacy", "clinic"}, max_bytes=1000, client=client)
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_object",
            service_error_code=code,
            service_message=f"{code} for {BUCKET}/pharmacy/procedures/refills.md",
            http_status_code=503 if code == "SlowDown" else 403,
            expected_params={"Bucket": BUCKET, "Key": "pharmacy/procedures/refills.md"},
        )
        response = client_for(aws_settings(monkeypatch, tmp_path), source_store=store).get(
            link("pharmacy", "procedures/refills.md")
        )

    assert response.status_code == 502
    body = response.json()
    assert body["error"]["code"] == "source_unavailable"
    for secret in (BUCKET, "refills", code):
        assert secret not in response.text


def test_an_unreachable_store_is_a_502(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from careqa.sources import S3SourceStore

    # Port 9 (discard) on loopback: the connection is refused at once, no AWS endpoint is ever contacted.
    client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1}),
    )
    store = S3SourceStore(BUCKET, tenants={"pharmacy"}, max_bytes=1000, client=client)
    response = client_for(aws_settings(monkeypatch, tmp_path), source_store=store).get(
        link("pharmacy", "procedures/refills.md")
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "source_unavailable"
