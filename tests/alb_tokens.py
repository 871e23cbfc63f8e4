"""ALB-shaped ``x-amzn-oidc-data`` tokens signed with generated EC keys, and a fake public-key endpoint.

The tokens are built the way the ELB user guide describes the load balancer's: three base64url segments
*with* their padding, a header with ``alg`` ES256, ``kid``, ``signer`` (the load balancer ARN), ``iss``,
``client`` and ``exp``, claims from the IdP's userinfo, and an ES256 signature (raw r‖s) over the padded
``header.claims`` text. They are assembled here by hand, not with a JWT library, so that they carry the
padding standard encoders drop.

``KeyServer`` plays the regional public-key endpoint behind an ``httpx.MockTransport``: it answers a PEM
per known key id, 404 otherwise, and can be told to fail.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/careqa/0123456789abcdef"
KEY_URL = "https://public-keys.auth.elb.us-east-1.amazonaws.com/{kid}"
NOW = 1_800_000_000.0
ISSUER = "https://login.example-health.com"


@dataclass(frozen=True)
class AlbKey:
    """A load balancer signing key: the private half signs tokens, the public half is 'published'."""

    kid: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, kid: str, curve: ec.EllipticCurve | None = None) -> AlbKey:
        return cls(kid, ec.generate_private_key(curve or ec.SECP256R1()))

    @property
    def pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


def _padded(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()  # keeps the '=' padding, as the load balancer does


def alb_token(
    key: AlbKey,
    sub: str,
    groups: list[str] | None = None,
    *,
    exp: float = NOW + 60,
    claims_exp: float | None | str = "same",
    signer: str = ALB_ARN,
    kid: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A token shaped like the load balancer's, signed with ``key`` (``kid`` overrides the key id it names)."""
    head: dict[str, Any] = {
        "alg": "ES256",
        "kid": kid if kid is not None else key.kid,
        "signer": signer,
        "iss": ISSUER,
        "client": "careqa",
        "exp": int(exp),
        **(header or {}),
    }
    body: dict[str, Any] = {"sub": sub, "iss": ISSUER, "email": f"{sub}@example-health.com"}
    if claims_exp == "same":
        body["exp"] = int(exp)
    elif claims_exp is not None:
        body["exp"] = claims_exp
    if groups is not None:
        body["groups"] = groups
    body.update(claims or {})
    signing_input = f"{_padded(json.dumps(head).encode())}.{_padded(json.dumps(body).encode())}"
    r, s = decode_dss_signature(key.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_padded(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token with any header and signature bytes (for ``alg: none`` and HMAC forgeries)."""
    return ".".join(_padded(part) for part in (json.dumps(header).encode(), json.dumps(claims).encode(), signature))


def oidc_headers(token: str, identity: str) -> dict[str, str]:
    return {"x-amzn-oidc-identity": identity, "x-amzn-oidc-data": token}


@dataclass
class KeyServer:
    """The regional public-key endpoint, in memory. ``fail`` is a status code or an exception to raise."""

    keys: dict[str, str] = field(default_factory=dict)
    fail: int | Exception | None = None
    body: bytes | None = None
    requests: list[str] = field(default_factory=list)

    def publish(self, key: AlbKey) -> AlbKey:
        self.keys[key.kid] = key.pem
        return key

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if isinstance(self.fail, Exception):
            raise self.fail
        if self.fail is not None:
            return httpx.Response(self.fail, text="<Error>unavailable</Error>")
        if self.body is not None:
            return httpx.Response(200, content=self.body)
        kid = request.url.path.rsplit("/", 1)[-1]
        if kid not in self.keys:
            return httpx.Response(404, text="<Error><Code>NoSuchKey</Code></Error>")
        return httpx.Response(200, text=self.keys[kid])

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))
