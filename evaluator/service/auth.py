"""Bearer-token auth: each token belongs to one org, and every query is scoped to it.

Tokens come from ``IMAGEJURY_TOKENS="tok1=org1,tok2=org2"`` or the config's
``[server.tokens]`` (see ``server_config``). Comparison is constant-time against every
configured token, so response timing does not reveal a token's prefix. No or unknown
token → 401 with ``WWW-Authenticate: Bearer``; an org never learns that another org's
evaluation exists (the routes answer 404 for it).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer_scheme = HTTPBearer(auto_error=False, description="Bearer <token>; each token maps to one org")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the org id (uuid string) every query is scoped to."""

    org_id: str


class TokenTable:
    """token → org id, with constant-time lookup."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self._items = [(t.encode(), org) for t, org in tokens.items()]

    def __len__(self) -> int:
        return len(self._items)

    def lookup(self, token: str) -> str | None:
        given = token.encode()
        found = None
        for tok, org in self._items:  # no early exit: time does not depend on which token matched
            if hmac.compare_digest(given, tok):
                found = org
        return found


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def principal_from(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    table: TokenTable = request.app.state.tokens
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    org = table.lookup(credentials.credentials)
    if org is None:
        raise _unauthorized("unknown token")
    return Principal(org_id=org)
