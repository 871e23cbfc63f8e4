"""Who is asking, and for which tenant. The tenant always comes from the identity, never from a request body.

Two modes (``auth.mode``):

* ``bearer`` (the default, local runs): ``Authorization: Bearer <token>``, tokens listed as SHA-256.
* ``alb-oidc`` (AWS): the internal load balancer's authenticate-oidc action has logged the agent in at
  the organisation's identity provider and forwards ``x-amzn-oidc-identity`` (the subject) and
  ``x-amzn-oidc-data`` (a JWT with the user's claims, signed by the load balancer). The subject, or
  one of the groups in the claims, is mapped to a tenant by ``auth.alb_oidc.identities``.

In ``alb-oidc`` mode the headers are believed only once the token is verified the way AWS documents it
(ELB user guide, "User claims encoding and signature verification"), so that nothing else inside the VPC
can claim to be an agent by setting headers:

1. both headers are present and the token's header names ``alg: ES256`` (``none``, HMAC and every other
   algorithm are refused before any key is looked up);
2. the header's ``signer`` is exactly this deployment's load balancer ARN (``auth.alb_oidc.load_balancer_arn``);
3. the signature verifies with the public key the header's ``kid`` names, fetched from the endpoint where
   AWS publishes the load balancer keys of the ARN's region (careqa/alb_keys.py; on AWS through a small
   Lambda, since the tasks have no internet route) and cached by key id;
4. the token has not expired: the header's ``exp`` (always set by the load balancer) and the claims'
   ``exp`` when present, with ``CLOCK_SKEW_S`` of leeway;
5. the claims' ``sub`` is the ``x-amzn-oidc-identity`` header.

Any failure is a 401. A key that cannot be fetched (endpoint unreachable, slow or failing) is a 503 with
``Retry-After``: the identity may well be genuine, it just cannot be checked now.

The JOSE work (segment decoding, including the padding ALB tokens carry; ES256 signature checking;
algorithm pinning) is PyJWT's, with ``cryptography`` underneath: signature verification is not code to
write by hand. See cdk/README.md, "Authentication", for the network side.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from careqa.alb_keys import (
    KEY_ID,
    HttpsKeyFetcher,
    KeyCache,
    KeyFetcher,
    KeyNotFoundError,
    KeyUnavailableError,
    LambdaKeyFetcher,
)
from careqa.config import AlbOidcConfig, IdentityConfig, Settings
from careqa.errors import CareQAError

log = logging.getLogger("careqa.auth")

#: the headers the load balancer's authenticate-oidc action adds to every forwarded request
OIDC_IDENTITY_HEADER = "x-amzn-oidc-identity"
OIDC_DATA_HEADER = "x-amzn-oidc-data"
#: leeway for the expiry checks: the load balancer and the tasks keep time with the same NTP service
CLOCK_SKEW_S = 30


class AuthError(CareQAError):
    """No identity, or one that cannot be believed."""

    code = "unauthorized"


class ForbiddenError(CareQAError):
    """A genuine identity that no tenant claims (or that two tenants claim)."""

    code = "forbidden"


class AuthUnavailableError(CareQAError):
    """The load balancer's signing key cannot be fetched now, so no identity can be verified; retry shortly."""

    code = "auth_unavailable"


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


def _load_es256_key(pem: str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from the endpoint's PEM; anything else means the endpoint answered wrongly."""
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        raise KeyUnavailableError("the key endpoint's answer is not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyUnavailableError("the key endpoint's key is not a P-256 key")
    return key


def key_fetcher_for(config: AlbOidcConfig) -> KeyFetcher:
    """The configured way to fetch the load balancer's public keys: through the key Lambda, or directly."""
    if config.key_function:
        return LambdaKeyFetcher(config.key_function, region=config.region, timeout_s=config.key_fetch_timeout_s)
    return HttpsKeyFetcher(config.key_url_template, timeout_s=config.key_fetch_timeout_s)


def _expiry(value: Any) -> float | None:
    # bool is an int to Python, never a time to us
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class AlbOidcAuthenticator:
    """Verifies the load balancer's signed OIDC token and maps its subject or groups to a tenant."""

    challenge: str | None = None  # the load balancer runs the login; the service only answers 401

    def __init__(
        self,
        config: AlbOidcConfig,
        *,
        fetch_key: KeyFetcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._subjects = {i.value: i.tenant for i in config.identities if i.claim == "sub"}
        self._groups = {i.value: i.tenant for i in config.identities if i.claim == "group"}
        self._group_claim = config.group_claim
        self._load_balancer_arn = config.load_balancer_arn
        fetch = fetch_key or key_fetcher_for(config)
        self._keys: KeyCache[ec.EllipticCurvePublicKey] = KeyCache(lambda kid: _load_es256_key(fetch(kid)))
        self._clock = clock

    def _key(self, kid: str) -> ec.EllipticCurvePublicKey:
        try:
            return self._keys.get(kid)
        except KeyNotFoundError:
            log.warning("oidc token names an unknown key kid=%s", kid)
            raise AuthError(f"the {OIDC_DATA_HEADER} token names a key the load balancer does not have") from None
        except KeyUnavailableError as exc:
            log.warning("load balancer key kid=%s unavailable: %s", kid, exc)
            raise AuthUnavailableError(
                "your sign-in cannot be checked right now (the load balancer's key is unreachable); try again shortly"
            ) from None

    def _claims(self, subject: str, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError(f"the {OIDC_DATA_HEADER} header is not a signed token") from None
        if header.get("alg") != "ES256":
            raise AuthError(f"the {OIDC_DATA_HEADER} token must be signed with ES256")
        if header.get("signer") != self._load_balancer_arn:
            raise AuthError(f"the {OIDC_DATA_HEADER} token was not issued by this deployment's load balancer")
        kid = header.get("kid")
        if not isinstance(kid, str) or not KEY_ID.match(kid):
            raise AuthError(f"the {OIDC_DATA_HEADER} token names no valid key id")
        key = self._key(kid)
        try:
            # Expiry is checked below against the injected clock, in the header as well as the claims; the
            # audience is this load balancer's client, which the signer check above already pins.
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": ["sub"],
                },
            )
        except jwt.InvalidSignatureError:
            log.warning("oidc token with a bad signature kid=%s", kid)
            raise AuthError(f"the {OIDC_DATA_HEADER} token's signature does not verify") from None
        except jwt.InvalidTokenError:
            raise AuthError(f"the {OIDC_DATA_HEADER} token cannot be decoded") from None
        now = self._clock()
        header_exp = _expiry(header.get("exp"))
        if header_exp is None:
            raise AuthError(f"the {OIDC_DATA_HEADER} token carries no expiry")
        claims_exp = _expiry(claims.get("exp")) if "exp" in claims else header_exp
        if claims_exp is None:
            raise AuthError(f"the {OIDC_DATA_HEADER} token's expiry is not a time")
        if min(header_exp, claims_exp) + CLOCK_SKEW_S <= now:
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
