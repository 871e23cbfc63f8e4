"""``auth.mode: alb-oidc``: the load balancer's signed token is verified, then its subject or groups map to a tenant.

Tokens are shaped exactly like the load balancer's (tests/alb_tokens.py: padded segments, signer and kid in
the header, ES256) and signed with EC keys generated here; the public-key endpoint is an in-memory
``httpx.MockTransport``, so nothing touches the network. Bearer tokens stay the default mode.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from careqa.alb_keys import HttpsKeyFetcher
from careqa.auth import (
    AlbOidcAuthenticator,
    AuthError,
    AuthUnavailableError,
    ForbiddenError,
    TokenAuthenticator,
    authenticator_for,
)
from careqa.config import AlbOidcConfig, Settings, load_settings
from careqa.errors import ConfigError
from careqa.service.app import create_app
from careqa.service.errors import error_for
from careqa.types import Feedback
from tests.alb_tokens import ALB_ARN, KEY_URL, NOW, AlbKey, KeyServer, alb_token, oidc_headers, unsigned_token

TENANTS = [{"id": "pharmacy", "name": "Northwind Pharmacy"}, {"id": "clinic", "name": "Lakeside Family Clinic"}]
IDENTITIES = [
    {"claim": "group", "value": "northwind-care-agents", "tenant": "pharmacy"},
    {"claim": "sub", "value": "supervisor-1", "tenant": "pharmacy"},
    {"claim": "group", "value": "lakeside-front-desk", "tenant": "clinic"},
]
KID = "0b9c7a8e-1d2f-4a3b-9c8d-7e6f5a4b3c2d"


@pytest.fixture()
def server() -> KeyServer:
    return KeyServer()


@pytest.fixture()
def alb_key(server: KeyServer) -> AlbKey:
    """The load balancer's current signing key, published at the key endpoint."""
    return server.publish(AlbKey.generate(KID))


def oidc_config(**overrides: Any) -> AlbOidcConfig:
    return AlbOidcConfig.model_validate({"identities": IDENTITIES, "load_balancer_arn": ALB_ARN, **overrides})


def authenticator(server: KeyServer, *, clock: float = NOW, **overrides: Any) -> AlbOidcAuthenticator:
    config = oidc_config(**overrides)
    fetch = HttpsKeyFetcher(config.key_url_template, client=server.client())
    return AlbOidcAuthenticator(config, fetch_key=fetch, clock=lambda: clock)


def signed_in(key: AlbKey, sub: str, groups: list[str] | None = None, **token: Any) -> dict[str, str]:
    return oidc_headers(alb_token(key, sub, groups, **token), sub)


# -- a genuine token --------------------------------------------------------------------------------------


def test_a_valid_alb_token_maps_the_agents_group_to_its_tenant(server: KeyServer, alb_key: AlbKey) -> None:
    principal = authenticator(server).authenticate_request(
        signed_in(alb_key, "00u-agent", ["staff", "lakeside-front-desk"])
    )
    assert (principal.subject, principal.tenant) == ("00u-agent", "clinic")
    assert server.requests == [KEY_URL.format(kid=KID)]


def test_a_subject_mapping_applies_without_any_group(server: KeyServer, alb_key: AlbKey) -> None:
    assert authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1")).tenant == "pharmacy"


def test_groups_are_read_from_the_configured_claim(server: KeyServer, alb_key: AlbKey) -> None:
    headers = signed_in(alb_key, "00u-agent", claims={"roles": "northwind-care-agents"})
    assert authenticator(server, group_claim="roles").authenticate_request(headers).tenant == "pharmacy"
    with pytest.raises(ForbiddenError):
        authenticator(server).authenticate_request(headers)


def test_an_expiry_within_the_clock_skew_leeway_is_still_accepted(server: KeyServer, alb_key: AlbKey) -> None:
    headers = signed_in(alb_key, "supervisor-1", exp=NOW - 10)
    assert authenticator(server).authenticate_request(headers).tenant == "pharmacy"


def test_a_token_without_an_expiry_in_its_claims_is_bounded_by_the_header_expiry(
    server: KeyServer, alb_key: AlbKey
) -> None:
    auth = authenticator(server)
    assert auth.authenticate_request(signed_in(alb_key, "supervisor-1", claims_exp=None)).tenant == "pharmacy"
    with pytest.raises(AuthError, match="expired"):
        auth.authenticate_request(signed_in(alb_key, "supervisor-1", exp=NOW - 3600, claims_exp=None))


def test_an_identity_no_tenant_claims_or_two_tenants_claim_is_forbidden(server: KeyServer, alb_key: AlbKey) -> None:
    auth = authenticator(server)
    with pytest.raises(ForbiddenError, match="not mapped"):
        auth.authenticate_request(signed_in(alb_key, "00u-stranger", ["everyone"]))
    with pytest.raises(ForbiddenError, match="more than one tenant"):
        auth.authenticate_request(signed_in(alb_key, "00u-agent", ["northwind-care-agents", "lakeside-front-desk"]))


# -- tokens that must not be believed ------------------------------------------------------------------------


def test_a_token_signed_by_another_key_under_the_load_balancers_key_id_is_refused(
    server: KeyServer, alb_key: AlbKey
) -> None:
    # Everything an attacker inside the VPC can know (the ARN, the key id, the claims) but the private key.
    forger = AlbKey.generate(KID)
    headers = signed_in(forger, "00u-agent", ["lakeside-front-desk"])
    with pytest.raises(AuthError, match="signature does not verify"):
        authenticator(server).authenticate_request(headers)


def test_a_token_whose_claims_were_altered_after_signing_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    genuine = alb_token(alb_key, "00u-agent", ["lakeside-front-desk"])
    forged = alb_token(AlbKey.generate(KID), "00u-agent", ["northwind-care-agents"])
    header, _, signature = genuine.split(".")
    spliced = ".".join([header, forged.split(".")[1], signature])
    with pytest.raises(AuthError, match="signature does not verify"):
        authenticator(server).authenticate_request(oidc_headers(spliced, "00u-agent"))


def test_an_expired_token_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    with pytest.raises(AuthError, match="expired"):
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1", exp=NOW - 31))


def test_an_expiry_in_the_claims_alone_is_enforced_too(server: KeyServer, alb_key: AlbKey) -> None:
    with pytest.raises(AuthError, match="expired"):
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1", claims_exp=NOW - 3600))


def test_a_token_from_another_load_balancer_is_refused_without_fetching_a_key(
    server: KeyServer, alb_key: AlbKey
) -> None:
    other = ALB_ARN.replace("careqa/0123456789abcdef", "other/fedcba9876543210")
    with pytest.raises(AuthError, match="not issued by this deployment's load balancer"):
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1", signer=other))
    assert server.requests == []


def test_a_token_naming_a_key_the_endpoint_does_not_have_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(AuthError, match="key the load balancer does not have") as exc:
        authenticator(server).authenticate_request(signed_in(AlbKey.generate(unknown), "supervisor-1"))
    assert error_for(exc.value).status == 401
    assert server.requests == [KEY_URL.format(kid=unknown)]


def test_a_key_id_that_is_not_an_id_never_reaches_the_key_url(server: KeyServer, alb_key: AlbKey) -> None:
    with pytest.raises(AuthError, match="no valid key id"):
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1", kid="../../attacker/key"))
    assert server.requests == []


def test_an_identity_header_that_differs_from_the_tokens_subject_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    headers = oidc_headers(alb_token(alb_key, "00u-agent", ["lakeside-front-desk"]), "supervisor-1")
    with pytest.raises(AuthError, match="differ"):
        authenticator(server).authenticate_request(headers)


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-amzn-oidc-identity": "00u-agent"}, {"x-amzn-oidc-data": "a.b.c"}, {"authorization": "Bearer x"}],
    ids=["none", "no-token", "no-identity", "bearer"],
)
def test_missing_load_balancer_headers_are_refused(server: KeyServer, headers: dict[str, str]) -> None:
    with pytest.raises(AuthError, match="not signed in"):
        authenticator(server).authenticate_request(headers)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "e30=.e30=.e30="], ids=["not-jwt", "undecodable", "empty"])
def test_a_token_that_is_not_an_alb_token_is_refused(server: KeyServer, token: str) -> None:
    with pytest.raises(AuthError):
        authenticator(server).authenticate_request(oidc_headers(token, "supervisor-1"))
    assert server.requests == []


def test_an_unsigned_alg_none_token_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    header = {"alg": "none", "kid": KID, "signer": ALB_ARN, "exp": int(NOW + 60)}
    token = unsigned_token(header, {"sub": "supervisor-1", "exp": int(NOW + 60)})
    with pytest.raises(AuthError, match="ES256"):
        authenticator(server).authenticate_request(oidc_headers(token, "supervisor-1"))


def test_an_hmac_token_keyed_with_the_public_key_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    # The classic algorithm confusion: HS256 with the (public) PEM as the shared secret.
    import hashlib
    import hmac

    header = {"alg": "HS256", "kid": KID, "signer": ALB_ARN, "exp": int(NOW + 60)}
    unsigned = unsigned_token(header, {"sub": "supervisor-1", "exp": int(NOW + 60)}).rsplit(".", 1)[0]
    mac = hmac.new(alb_key.pem.encode(), unsigned.encode(), hashlib.sha256).digest()
    token = unsigned_token(header, {"sub": "supervisor-1", "exp": int(NOW + 60)}, mac)
    with pytest.raises(AuthError, match="ES256"):
        authenticator(server).authenticate_request(oidc_headers(token, "supervisor-1"))
    assert server.requests == []


def test_a_token_without_a_header_expiry_is_refused(server: KeyServer, alb_key: AlbKey) -> None:
    with pytest.raises(AuthError, match="no expiry"):
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1", header={"exp": None}))


# -- the key endpoint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        500,
        503,
        429,
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
    ],
    ids=["500", "503", "429", "connection-error", "connect-timeout", "read-timeout"],
)
def test_a_key_endpoint_that_fails_makes_the_identity_unverifiable_for_now(
    server: KeyServer, alb_key: AlbKey, failure: int | Exception
) -> None:
    server.fail = failure
    with pytest.raises(AuthUnavailableError) as exc:
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1"))
    error = error_for(exc.value)
    assert (error.status, error.headers["Retry-After"]) == (503, "5")


@pytest.mark.parametrize(
    "body", [b"-----BEGIN PUBLIC KEY-----\n" + b"A" * 5000, b"<html>captive portal</html>"], ids=["huge", "not-pem"]
)
def test_a_key_endpoint_answer_that_is_not_a_key_is_an_outage_not_a_verdict(
    server: KeyServer, alb_key: AlbKey, body: bytes
) -> None:
    server.body = body
    with pytest.raises(AuthUnavailableError):
        authenticator(server).authenticate_request(signed_in(alb_key, "supervisor-1"))


def test_a_published_key_on_the_wrong_curve_is_not_used(server: KeyServer) -> None:
    server.publish(AlbKey.generate(KID, ec.SECP384R1()))
    with pytest.raises(AuthUnavailableError):
        authenticator(server).authenticate_request(signed_in(AlbKey.generate(KID), "supervisor-1"))


def test_the_key_is_fetched_once_per_key_id_and_cached(server: KeyServer, alb_key: AlbKey) -> None:
    auth = authenticator(server)
    for sub in ("supervisor-1", "supervisor-1", "00u-agent"):
        auth.authenticate_request(signed_in(alb_key, sub, ["lakeside-front-desk"]))
    rotated = server.publish(AlbKey.generate("99999999-8888-7777-6666-555555555555"))
    auth.authenticate_request(signed_in(rotated, "supervisor-1"))
    auth.authenticate_request(signed_in(rotated, "supervisor-1"))
    assert server.requests == [KEY_URL.format(kid=KID), KEY_URL.format(kid=rotated.kid)]


def test_a_failed_fetch_is_not_cached_and_the_next_request_succeeds(server: KeyServer, alb_key: AlbKey) -> None:
    auth = authenticator(server)
    server.fail = 503
    with pytest.raises(AuthUnavailableError):
        auth.authenticate_request(signed_in(alb_key, "supervisor-1"))
    server.fail = None
    assert auth.authenticate_request(signed_in(alb_key, "supervisor-1")).tenant == "pharmacy"
    assert len(server.requests) == 2


def test_the_key_url_follows_the_load_balancers_partition_and_region() -> None:
    gov = "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:111122223333:loadbalancer/app/careqa/0123456789abcdef"
    assert oidc_config(load_balancer_arn=gov).key_url_template == (
        "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/{kid}"
    )
    eu = ALB_ARN.replace("us-east-1", "eu-central-1")
    assert oidc_config(load_balancer_arn=eu).key_url_template == (
        "https://public-keys.auth.elb.eu-central-1.amazonaws.com/{kid}"
    )
    china = "arn:aws-cn:elasticloadbalancing:cn-north-1:111122223333:loadbalancer/app/careqa/0123456789abcdef"
    configured = "https://keys.example.cn/alb/{kid}"
    assert oidc_config(load_balancer_arn=china, public_key_url=configured).key_url_template == configured


# -- settings -------------------------------------------------------------------------------------------------


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


def _oidc(**fields: Any) -> dict[str, Any]:
    return {"mode": "alb-oidc", "alb_oidc": {"identities": IDENTITIES[:1], "load_balancer_arn": ALB_ARN, **fields}}


@pytest.mark.parametrize(
    "auth,field",
    [
        ({"mode": "alb-oidc"}, "alb_oidc is required"),
        ({"mode": "alb-oidc", "alb_oidc": {"identities": IDENTITIES[:1]}}, "auth.alb_oidc.load_balancer_arn"),
        (_oidc(load_balancer_arn="arn:aws:ec2:us-east-1:111122223333:instance/i-1"), "auth.alb_oidc.load_balancer_arn"),
        (_oidc(identities=[]), "auth.alb_oidc.identities"),
        (
            _oidc(identities=[{"claim": "group", "value": "g", "tenant": "dentist"}]),
            "auth.alb_oidc.identities.0.tenant: unknown tenant 'dentist'",
        ),
        (
            _oidc(identities=[{"claim": "email", "value": "a@b", "tenant": "clinic"}]),
            "auth.alb_oidc.identities.0.claim",
        ),
        (
            _oidc(
                identities=[
                    {"claim": "group", "value": "g", "tenant": "clinic"},
                    {"claim": "group", "value": "g", "tenant": "pharmacy"},
                ]
            ),
            "identities.1: group 'g' is mapped to 'clinic' and 'pharmacy'",
        ),
        (_oidc(public_key_url="http://keys.example.com/{kid}"), "auth.alb_oidc.public_key_url"),
        (_oidc(public_key_url="https://keys.example.com/key.pem"), "auth.alb_oidc.public_key_url"),
        (
            _oidc(load_balancer_arn=ALB_ARN.replace("arn:aws:", "arn:aws-cn:").replace("us-east-1", "cn-north-1")),
            "set auth.alb_oidc.public_key_url",
        ),
        (_oidc(key_fetch_timeout_s=0), "auth.alb_oidc.key_fetch_timeout_s"),
        ({"mode": "oidc"}, "auth.mode"),
    ],
    ids=[
        "no-alb-oidc",
        "no-arn",
        "not-an-alb-arn",
        "no-identities",
        "unknown-tenant",
        "unknown-claim",
        "two-tenants",
        "http-key-url",
        "key-url-without-kid",
        "undocumented-partition",
        "zero-timeout",
        "unknown-mode",
    ],
)
def test_bad_oidc_settings_fail_with_the_field_named(tmp_path: Path, auth: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _settings(tmp_path, auth)
    assert field in exc.value.message


def test_the_configured_key_function_is_used_instead_of_a_direct_fetch(tmp_path: Path) -> None:
    from careqa.alb_keys import LambdaKeyFetcher
    from careqa.auth import key_fetcher_for

    settings = _settings(tmp_path, _oidc(key_function="careqa-alb-keys"))
    assert settings.auth.alb_oidc is not None
    assert isinstance(key_fetcher_for(settings.auth.alb_oidc), LambdaKeyFetcher)
    direct = _settings(tmp_path, _oidc())
    assert direct.auth.alb_oidc is not None
    assert isinstance(key_fetcher_for(direct.auth.alb_oidc), HttpsKeyFetcher)


# -- the service ----------------------------------------------------------------------------------------------


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
def oidc_service(tmp_path: Path, server: KeyServer) -> tuple[TestClient, RecordingStore]:
    settings = _settings(
        tmp_path, {"mode": "alb-oidc", "alb_oidc": {"identities": IDENTITIES, "load_balancer_arn": ALB_ARN}}
    )
    assert settings.auth.alb_oidc is not None
    store = RecordingStore()
    runtime = SimpleNamespace(engine=SimpleNamespace(link=None))
    auth = AlbOidcAuthenticator(
        settings.auth.alb_oidc,
        fetch_key=HttpsKeyFetcher(settings.auth.alb_oidc.key_url_template, client=server.client()),
        clock=lambda: NOW,
    )
    app = create_app(settings, runtime=runtime, feedback_store=store, auth=auth, warm_up=False)  # type: ignore[arg-type]
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


def test_the_service_answers_401_to_a_forged_token(oidc_service, alb_key: AlbKey) -> None:
    client, store = oidc_service
    forged = signed_in(AlbKey.generate(KID), "00u-agent", ["lakeside-front-desk"])
    response = client.post("/v1/feedback", headers=forged, json={"answer_id": "a" * 32, "rating": "up"})
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "unauthorized", "message": "the x-amzn-oidc-data token's signature does not verify"}
    }
    assert store.tenants == []


def test_the_service_answers_503_with_retry_after_when_the_key_cannot_be_fetched(
    oidc_service, server: KeyServer, alb_key: AlbKey
) -> None:
    client, _ = oidc_service
    server.fail = httpx.ConnectTimeout("timed out")
    response = client.get("/v1/whoami", headers=signed_in(alb_key, "00u-agent", ["lakeside-front-desk"]))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "auth_unavailable"
    server.fail = None
    assert client.get("/v1/whoami", headers=signed_in(alb_key, "00u-agent", ["lakeside-front-desk"])).status_code == 200


def test_the_service_answers_403_to_an_identity_of_no_tenant(oidc_service, alb_key: AlbKey) -> None:
    client, _ = oidc_service
    response = client.get("/v1/whoami", headers=signed_in(alb_key, "00u-stranger", ["everyone"]))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_the_tenant_comes_from_the_verified_identity_never_from_the_body(oidc_service, alb_key: AlbKey) -> None:
    client, store = oidc_service
    headers = signed_in(alb_key, "00u-agent", ["lakeside-front-desk"])
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


def test_the_service_documents_503_on_every_authenticated_route(oidc_service) -> None:
    client, _ = oidc_service
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/v1/whoami", "get"), ("/v1/feedback", "post"), ("/v1/ask", "post")):
        assert "503" in paths[path][method]["responses"], path
