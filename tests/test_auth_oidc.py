"""``auth.mode: alb-oidc``: the load balancer's OIDC headers map an agent to a tenant; bearer stays the default.

The tokens here are built the way the load balancer builds ``x-amzn-oidc-data`` (three base64url segments,
the header naming the signer), with a dummy signature: the service does not verify it (see careqa/auth.py).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from careqa.auth import AlbOidcAuthenticator, AuthError, ForbiddenError, TokenAuthenticator, authenticator_for
from careqa.config import AlbOidcConfig, Settings, load_settings
from careqa.errors import ConfigError
from careqa.service.app import create_app
from careqa.types import Feedback

ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/careqa/0123456789abcdef"
NOW = 1_800_000_000.0
TENANTS = [{"id": "pharmacy", "name": "Northwind Pharmacy"}, {"id": "clinic", "name": "Lakeside Family Clinic"}]
IDENTITIES = [
    {"claim": "group", "value": "northwind-care-agents", "tenant": "pharmacy"},
    {"claim": "sub", "value": "supervisor-1", "tenant": "pharmacy"},
    {"claim": "group", "value": "lakeside-front-desk", "tenant": "clinic"},
]


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def oidc_headers(
    sub: str,
    groups: list[str] | None = None,
    *,
    exp: float = NOW + 60,
    signer: str = ALB_ARN,
    token_sub: str | None = None,
) -> dict[str, str]:
    claims: dict[str, Any] = {"sub": token_sub or sub, "exp": exp, "iss": "https://login.example-health.com"}
    if groups is not None:
        claims["groups"] = groups
    header = {"alg": "ES256", "kid": "k1", "signer": signer, "client": "careqa", "typ": "JWT"}
    return {"x-amzn-oidc-identity": sub, "x-amzn-oidc-data": f"{_segment(header)}.{_segment(claims)}.c2ln"}


def authenticator(**overrides: Any) -> AlbOidcAuthenticator:
    config = AlbOidcConfig.model_validate({"identities": IDENTITIES, "load_balancer_arn": ALB_ARN, **overrides})
    return AlbOidcAuthenticator(config, clock=lambda: NOW)


def test_a_group_maps_the_agent_to_its_tenant() -> None:
    principal = authenticator().authenticate_request(oidc_headers("00u-agent", ["staff", "lakeside-front-desk"]))
    assert (principal.subject, principal.tenant) == ("00u-agent", "clinic")


def test_a_subject_mapping_applies_without_any_group() -> None:
    assert authenticator().authenticate_request(oidc_headers("supervisor-1")).tenant == "pharmacy"


def test_groups_are_read_from_the_configured_claim() -> None:
    headers = oidc_headers("00u-agent")
    header, claims, sig = headers["x-amzn-oidc-data"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=="))
    headers["x-amzn-oidc-data"] = ".".join([header, _segment({**decoded, "roles": "northwind-care-agents"}), sig])
    assert authenticator(group_claim="roles").authenticate_request(headers).tenant == "pharmacy"
    with pytest.raises(ForbiddenError):
        authenticator().authenticate_request(headers)


@pytest.mark.parametrize(
    "headers,message",
    [
        ({}, "not signed in"),
        ({"x-amzn-oidc-identity": "00u-agent"}, "not signed in"),
        ({"x-amzn-oidc-identity": "00u-agent", "x-amzn-oidc-data": "garbage"}, "not a signed token"),
        ({"x-amzn-oidc-identity": "00u-agent", "x-amzn-oidc-data": "a.b.c"}, "cannot be decoded"),
        (oidc_headers("00u-agent", ["lakeside-front-desk"], exp=NOW - 1), "expired"),
        (oidc_headers("00u-agent", ["lakeside-front-desk"], token_sub="someone-else"), "differ"),
        (oidc_headers("00u-agent", ["lakeside-front-desk"], signer=ALB_ARN + "0"), "not issued by this"),
        ({"authorization": "Bearer demo-pharmacy-agent"}, "not signed in"),
    ],
    ids=["none", "no-data", "not-jwt", "undecodable", "expired", "subject-mismatch", "other-signer", "bearer"],
)
def test_a_missing_or_unbelievable_identity_is_refused(headers: dict[str, str], message: str) -> None:
    with pytest.raises(AuthError, match=message):
        authenticator().authenticate_request(headers)


def test_an_identity_no_tenant_claims_or_two_tenants_claim_is_forbidden() -> None:
    with pytest.raises(ForbiddenError, match="not mapped"):
        authenticator().authenticate_request(oidc_headers("00u-stranger", ["everyone"]))
    with pytest.raises(ForbiddenError, match="more than one tenant"):
        authenticator().authenticate_request(
            oidc_headers("00u-agent", ["northwind-care-agents", "lakeside-front-desk"])
        )


# -- settings ---------------------------------------------------------------------------------------------


def _settings(tmp_path: Path, auth: dict[str, Any] | None) -> Settings:
    config = tmp_path / "config.yaml"
    body: dict[str, Any] = {"tenants": TENANTS}
    if auth is not None:
        body["auth"] = auth
    config.write_text(yaml.safe_dump(body))
    return load_settings(config)


def test_bearer_tokens_stay_the_default(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None)
    assert settings.auth.mode == "bearer"
    assert isinstance(authenticator_for(settings), TokenAuthenticator)


@pytest.mark.parametrize(
    "auth,field",
    [
        ({"mode": "alb-oidc"}, "alb_oidc is required"),
        ({"mode": "alb-oidc", "alb_oidc": {"identities": []}}, "auth.alb_oidc.identities"),
        (
            {"mode": "alb-oidc", "alb_oidc": {"identities": [{"claim": "group", "value": "g", "tenant": "dentist"}]}},
            "auth.alb_oidc.identities.0.tenant: unknown tenant 'dentist'",
        ),
        (
            {"mode": "alb-oidc", "alb_oidc": {"identities": [{"claim": "email", "value": "a@b", "tenant": "clinic"}]}},
            "auth.alb_oidc.identities.0.claim",
        ),
        (
            {
                "mode": "alb-oidc",
                "alb_oidc": {
                    "identities": [
                        {"claim": "group", "value": "g", "tenant": "clinic"},
                        {"claim": "group", "value": "g", "tenant": "pharmacy"},
                    ]
                },
            },
            "identities.1: group 'g' is mapped to 'clinic' and 'pharmacy'",
        ),
        ({"mode": "oidc"}, "auth.mode"),
    ],
)
def test_bad_oidc_settings_fail_with_the_field_named(tmp_path: Path, auth: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _settings(tmp_path, auth)
    assert field in exc.value.message


# -- the service --------------------------------------------------------------------------------------------


class RecordingStore:
    """Records which tenant each rating was stored for."""

    def __init__(self) -> None:
        self.tenants: list[str] = []

    def record_answer(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not used")

    def add_feedback(self, *, tenant: str, subject: str, answer_id: str, rating: str, comment: str) -> Feedback:
        self.tenants.append(tenant)
        return Feedback(
            feedback_id="f" * 32,
            answer_id=answer_id,
            tenant=tenant,
            subject=subject,
            rating=rating,
            comment=comment,
            created_at="2026-01-01T00:00:00Z",
        )

    def export(self, tenant: str | None = None) -> Any:
        return iter(())


@pytest.fixture()
def oidc_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, RecordingStore]:
    # Expiry is checked against the real clock in the service: tokens there expire in the far future.
    settings = _settings(tmp_path, {"mode": "alb-oidc", "alb_oidc": {"identities": IDENTITIES}})
    store = RecordingStore()
    runtime = SimpleNamespace(engine=SimpleNamespace(link=None))
    app = create_app(settings, runtime=runtime, feedback_store=store, warm_up=False)  # type: ignore[arg-type]
    return TestClient(app), store


def test_the_service_answers_401_without_the_load_balancers_headers(oidc_service) -> None:
    client, _ = oidc_service
    for response in (
        client.get("/v1/whoami"),
        client.post("/v1/ask", json={"question": "q"}),
        client.get("/v1/whoami", headers={"Authorization": "Bearer demo-pharmacy-agent"}),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert "www-authenticate" not in response.headers


def test_the_service_answers_403_to_an_identity_of_no_tenant(oidc_service) -> None:
    client, _ = oidc_service
    response = client.get("/v1/whoami", headers=oidc_headers("00u-stranger", ["everyone"], exp=NOW * 2))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_the_tenant_comes_from_the_identity_never_from_the_body(oidc_service) -> None:
    client, store = oidc_service
    headers = oidc_headers("00u-agent", ["lakeside-front-desk"], exp=NOW * 2)
    assert client.get("/v1/whoami", headers=headers).json() == {
        "subject": "00u-agent",
        "tenant": "clinic",
        "tenant_name": "Lakeside Family Clinic",
    }
    response = client.post(
        "/v1/feedback", headers=headers, json={"answer_id": "a" * 32, "rating": "up", "tenant": "pharmacy"}
    )
    assert response.status_code == 201
    assert store.tenants == ["clinic"]
