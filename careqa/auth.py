"""Bearer-token authentication. The tenant always comes from the token's identity, never from a request."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from careqa.config import IdentityConfig
from careqa.errors import CareQAError


class AuthError(CareQAError):
    code = "unauthorized"
    http_status = 401


@dataclass(frozen=True)
class Principal:
    subject: str
    tenant: str


class TokenAuthenticator:
    def __init__(self, identities: list[IdentityConfig]) -> None:
        self._by_hash = {i.token_sha256: Principal(i.subject, i.tenant) for i in identities}
        self.has_demo_tokens = any(i.demo for i in identities)

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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
