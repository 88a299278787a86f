"""Who may call /predict (and every protocol's scoring route: app/protocols) and /feedback: bearer tokens from
the environment, compared in constant time.

`FEEDBACK_TOKENS` and `PREDICT_TOKENS` each hold `name:token` pairs separated by commas, e.g.
`crm:3f9c...,billing:a01d...`. Empty (the default, for `make serve` on loopback): the endpoint is open. Set: a
request must send `Authorization: Bearer <token>` with one of the tokens, or get 401 with a `WWW-Authenticate`
header; the token's *name* (never the token) is then `g.client`, and /feedback records it with the label
(`feedback.client`), so labels can be attributed to a client. `AUTH_REQUIRED` names endpoints that must not be
open (`feedback`, `predict`): the deployed overlays set `AUTH_REQUIRED=feedback`, so a missing or empty token
list stops the server at start instead of leaving /feedback open. A malformed list stops it too, naming the
variable and the entry: a typo never opens an endpoint.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request

from app.api import json_response

# AUTH_REQUIRED's name for an endpoint -> (Flask's name for its view, the setting that holds its tokens)
PROTECTED = {
    "predict": ("api.predict", "PREDICT_TOKENS"),
    "feedback": ("api.post_feedback", "FEEDBACK_TOKENS"),
}
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # fits feedback.client (String(64)), safe in logs and metrics
MIN_TOKEN_LENGTH = 16
REALM = "api"  # the same for every project: the token, not the realm, says who may call


class AuthConfigError(ValueError):
    """A token setting the server refuses to start with (the message names the variable and what to fix)."""


@dataclass(frozen=True)
class Tokens:
    """One endpoint's tokens as (name, token bytes) pairs; empty means open."""

    pairs: tuple[tuple[str, bytes], ...] = ()

    def client(self, presented: str) -> str | None:
        """The name of the token presented, or None. Compares against every token (no early exit), each in
        constant time, so the time taken says nothing about which token, or how much of one, matched."""
        given = presented.encode()
        matched = None
        for name, token in self.pairs:
            if hmac.compare_digest(given, token) and matched is None:
                matched = name
        return matched


def parse_tokens(variable: str, raw: str | None) -> Tokens:
    """`name:token,name:token` -> Tokens; raises AuthConfigError naming the entry (by position, never by value)."""
    pairs: list[tuple[str, bytes]] = []
    for position, entry in enumerate((raw or "").split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, token = entry.partition(":")
        if not sep or not NAME.match(name):
            raise AuthConfigError(
                f"{variable}: entry {position} is not `name:token` (name: 1-64 of A-Z a-z 0-9 _ . -)"
            )
        if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise AuthConfigError(
                f"{variable}: the token of '{name}' must be at least {MIN_TOKEN_LENGTH} characters without "
                "spaces (e.g. `openssl rand -hex 32`)"
            )
        if any(existing == name for existing, _ in pairs):
            raise AuthConfigError(f"{variable}: the name '{name}' appears twice")
        pairs.append((name, token.encode()))
    return Tokens(tuple(pairs))


def load_tokens(config: dict) -> dict[str, Tokens]:
    """Each protected endpoint's Tokens from the app's settings; AuthConfigError when AUTH_REQUIRED is not met."""
    tokens = {view: parse_tokens(variable, config.get(variable)) for view, variable in PROTECTED.values()}
    for required in filter(None, (s.strip() for s in str(config.get("AUTH_REQUIRED") or "").split(","))):
        if required not in PROTECTED:
            raise AuthConfigError(
                f"AUTH_REQUIRED: unknown endpoint '{required}' (use {', '.join(sorted(PROTECTED))})"
            )
        view, variable = PROTECTED[required]
        if not tokens[view].pairs:
            raise AuthConfigError(f"AUTH_REQUIRED names /{required}, but {variable} holds no token")
    return tokens


def unauthorized(message: str, error: str | None) -> Response:
    response = json_response({"error": {"code": "unauthorized", "message": message}}, 401)
    challenge = f'Bearer realm="{REALM}"'
    if error:  # RFC 6750: a token was sent but is not valid
        challenge += f', error="{error}"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def authenticate() -> Response | None:
    """before_request: 401 for a protected endpoint without a valid token; sets g.client (None when open)."""
    g.client = None
    tokens = current_app.extensions["auth"].get(request.endpoint or "")
    if tokens is None or not tokens.pairs:
        return None
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return unauthorized("send `Authorization: Bearer <token>` (docs/serving.md, Authentication)", None)
    client = tokens.client(presented.strip())
    if client is None:
        return unauthorized("the bearer token is not valid for this endpoint", "invalid_token")
    g.client = client
    return None


def init_app(app: Flask) -> None:
    """Call after every blueprint is registered: each view marked `app.api.scoring` (the native /predict and every
    protocol adapter's scoring route) takes /predict's tokens."""
    tokens = load_tokens(app.config)
    for endpoint, view in app.view_functions.items():
        group = getattr(view, "protected_as", None)
        if group is not None:
            tokens[endpoint] = tokens[PROTECTED[group][0]]
    app.extensions["auth"] = tokens
    app.before_request(authenticate)
