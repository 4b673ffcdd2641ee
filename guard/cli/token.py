"""``guard token create|revoke|list``: API tokens for the principals of an access policy.

``create`` prints the new token as its last line, once: only its SHA-256 digest is stored.
An unknown principal, a malformed policy or an unreadable state file exits 2 with one line.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from guard.errors import ConfigError

POLICY = click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="the access policy (TOML)",
)


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.group()
def token() -> None:
    """Create, revoke and list API tokens (stored only as hashes)."""


@token.command("create")
@POLICY
@click.option("--principal", required=True, help="a principal of the policy")
def create(policy_path: Path, principal: str) -> None:
    """Create a token for PRINCIPAL; it is shown once, on the last line."""
    from guard.defenses.access.policy import AccessPolicy
    from guard.defenses.access.tokens import TokenStore

    policy = AccessPolicy.load(policy_path)
    policy.principal(principal)
    tok = TokenStore(policy.state).create(principal)
    click.echo(f"token for {principal} (shown once, store it now; id {tok.split('_')[1]}):", err=True)
    click.echo(tok)


@token.command("revoke")
@POLICY
@click.option("--id", "token_id", help="the token id (the 8 hex characters after grd_)")
@click.option("--principal", help="revoke every token of this principal")
def revoke(policy_path: Path, token_id: str | None, principal: str | None) -> None:
    """Revoke one token by id, or all tokens of a principal."""
    from guard.defenses.access.policy import AccessPolicy
    from guard.defenses.access.tokens import TokenStore

    if (token_id is None) == (principal is None):
        raise ConfigError("give exactly one of --id and --principal")
    policy = AccessPolicy.load(policy_path)
    store = TokenStore(policy.state)
    if principal is not None:
        policy.principal(principal)
        n = store.revoke(principal, by="principal")
    else:
        assert token_id is not None  # noqa: S101 (checked above)
        if token_id not in {t.id for t in store.list()}:
            raise ConfigError(f"{policy_path}: no token with id {token_id!r}")
        n = store.revoke(token_id, by="id")
    click.echo(f"revoked {n} token(s)")


@token.command("list")
@POLICY
def list_tokens(policy_path: Path) -> None:
    """List tokens: id, principal, created, revoked (never the secret)."""
    from guard.defenses.access.policy import AccessPolicy
    from guard.defenses.access.tokens import TokenStore

    policy = AccessPolicy.load(policy_path)
    for t in TokenStore(policy.state).list():
        click.echo(f"{t.id}\t{t.principal}\tcreated {_when(t.created)}\trevoked {_when(t.revoked)}")
