"""Who is asking, and for which tenant. The tenant always comes from the identity, never from a request body.

Two modes (``auth.mode``):

* ``bearer`` (the default, local runs): ``Authorization: Bearer <token>``, tokens listed as SHA-256.
* ``alb-oidc`` (AWS): the internal load balancer's authenticate-oidc action has logged the agent in at
  the organisation's identity provider and forwards ``x-amzn-oidc-identity`` (the subject) and
  ``x-amzn-oidc-data`` (a token with the user's claims, signed by the load balancer). The subject, or
  one of the groups in the claims, is mapped to a tenant by ``auth.alb_oidc.identities``.

The service trusts those headers because of where it runs, not because it checks the load balancer's
signature: the tasks' security group admits only the load balancer, every listener rule authenticates
before it forwards, and the load balancer sets the ``x-amzn-oidc-*`` headers itself on what it forwards.
Verifying the ES256 signature would need the load balancer's public key, which AWS publishes per key id
at a regional internet URL; the tasks have no route to the internet (and no VPC endpoint serves those
keys), so the check would either fail closed on every request or need the key copied in by hand at each
rotation. What the service does check: both headers are present, the claims decode, the token has not
expired, its subject is the identity header's, and (when ``load_balancer_arn`` is set) its signer is
this deployment's load balancer. See cdk/README.md, "Authentication".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from careqa.config import AlbOidcConfig, IdentityConfig, Settings
from careqa.errors import CareQAError

#: the headers the load balancer's authenticate-oidc action adds to every forwarded request
OIDC_IDENTITY_HEADER = "x-amzn-oidc-identity"
OIDC_DATA_HEADER = "x-amzn-oidc-data"


class AuthError(CareQAError):
    """No identity, or one that cannot be believed: 401."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(CareQAError):
    """A genuine identity that no tenant claims (or that two tenants claim): 403."""

    code = "forbidden"
    http_status = 403


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant: str


class Authenticator(Protocol):
    #: the WWW-Authenticate value sent with a 401, if the scheme has one
    challenge: str | None

    def authenticate_request(self, headers: Mapping[str, str]) -> Principal:
        """The caller's identity and tenant from the request's headers; raise AuthError or ForbiddenError."""
        ...


class TokenAuthenticator:
    challenge: str | None = "Bearer"

    def __init__(self, identities: list[IdentityConfig]) -> None:
        self._by_hash = {i.token_sha256: Principal(i.subject, i.tenant) for i in identities}
        self.has_demo_tokens = any(i.demo for i in identities)

    def authenticate_request(self, headers: Mapping[str, str]) -> Principal:
        return self.authenticate(headers.get("authorization"))

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing bearer token (send 'Authorization: Bearer <token>')")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        principal = self._by_hash.get(hashlib.sha256(token.strip().encode("utf-8")).hexdigest())
        if principal is None:
            raise AuthError("invalid bearer token")
        return principal


def _decode_segment(segment: str) -> dict[str, Any]:
    value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class AlbOidcAuthenticator:
    """Maps the load balancer's authenticated OIDC subject or groups to a tenant (``auth.mode: alb-oidc``)."""

    challenge: str | None = None  # the load balancer runs the login; the service only answers 401

    def __init__(self, config: AlbOidcConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._subjects = {i.value: i.tenant for i in config.identities if i.claim == "sub"}
        self._groups = {i.value: i.tenant for i in config.identities if i.claim == "group"}
        self._group_claim = config.group_claim
        self._load_balancer_arn = config.load_balancer_arn
        self._clock = clock

    def _claims(self, subject: str, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError(f"the {OIDC_DATA_HEADER} header is not a signed token")
        try:
            header, claims = _decode_segment(parts[0]), _decode_segment(parts[1])
        except (ValueError, binascii.Error):
            raise AuthError(f"the {OIDC_DATA_HEADER} header cannot be decoded") from None
        if self._load_balancer_arn and header.get("signer") != self._load_balancer_arn:
            raise AuthError(f"the {OIDC_DATA_HEADER} token was not issued by this deployment's load balancer")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires <= self._clock():
            raise AuthError("the login session has expired; reload the page to sign in again")
        if claims.get("sub") != subject:
            raise AuthError(f"the {OIDC_IDENTITY_HEADER} header and the token's subject differ")
        return claims

    def authenticate_request(self, headers: Mapping[str, str]) -> Principal:
        subject = (headers.get(OIDC_IDENTITY_HEADER) or "").strip()
        token = (headers.get(OIDC_DATA_HEADER) or "").strip()
        if not subject or not token:
            raise AuthError("not signed in: the load balancer sent no OIDC identity")
        claims = self._claims(subject, token)
        tenant = self._subjects.get(subject)
        if tenant is None:
            groups = claims.get(self._group_claim) or []
            if isinstance(groups, str):
                groups = [groups]
            tenants = {self._groups[g] for g in groups if isinstance(g, str) and g in self._groups}
            if len(tenants) > 1:
                raise ForbiddenError("your groups belong to more than one tenant; ask an administrator to fix it")
            if not tenants:
                raise ForbiddenError("your identity is not mapped to any tenant; ask an administrator for access")
            (tenant,) = tenants
        return Principal(subject, tenant)


def authenticator_for(settings: Settings) -> Authenticator:
    """The authenticator ``settings.auth.mode`` names."""
    if settings.auth.mode == "alb-oidc":
        assert settings.auth.alb_oidc is not None  # the config validator guarantees it
        return AlbOidcAuthenticator(settings.auth.alb_oidc)
    return TokenAuthenticator(settings.identities)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
