"""The permission model, role mapping, throttling and caches of labtrack.auth (no server)."""

from __future__ import annotations

import sqlite3
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labtrack.auth import throttle as throttle_mod
from labtrack.auth.cache import CredentialKeys, TtlCache
from labtrack.auth.enforce import Caller
from labtrack.auth.identity import Identity, RoleMap, client_address, parse_networks
from labtrack.auth.permissions import PERMISSIONS, Grants, allows, fold
from labtrack.auth.setup import is_loopback
from labtrack.auth.throttle import Throttle, TooManyAttempts
from labtrack.auth.tokens import hint, looks_like_token, new_token, token_hash

E = "experiment"


def test_fold_deny_vetoes_and_strongest_wins():
    assert fold([]) is None
    assert fold(["READ", "EDIT"]) == "EDIT"
    assert fold(["MANAGE", "DENY", "EDIT"]) == "DENY"
    assert fold(["NO_PERMISSIONS", "READ"]) == "READ"


def test_allows_matches_mlflow_capabilities():
    table = {
        "READ": {"READ"},
        "USE": {"READ", "USE"},
        "EDIT": {"READ", "USE", "EDIT"},
        "MANAGE": {"READ", "USE", "EDIT", "MANAGE"},
        "NO_PERMISSIONS": set(),
        "DENY": set(),
    }
    for permission, capabilities in table.items():
        got = {c for c in ("READ", "USE", "EDIT", "MANAGE") if allows(permission, c)}
        assert got == capabilities, permission


def test_effective_permission_uses_default_only_without_grants():
    grants = Grants.from_rows([(E, "1", "EDIT"), (E, "2", "NO_PERMISSIONS"), (E, "3", "DENY")])
    assert grants.effective(E, "1", "READ") == "EDIT"
    assert grants.effective(E, "2", "READ") == "NO_PERMISSIONS"
    assert grants.effective(E, "3", "MANAGE") == "DENY"
    assert grants.effective(E, "4", "READ") == "READ"
    star = Grants.from_rows([(E, "*", "READ"), (E, "5", "DENY"), (E, "6", "MANAGE")])
    assert star.effective(E, "7", "NO_PERMISSIONS") == "READ"
    assert star.effective(E, "5", "NO_PERMISSIONS") == "DENY"
    assert star.effective(E, "6", "NO_PERMISSIONS") == "MANAGE"


@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["1", "2", "3", "4", "*"]), st.sampled_from(PERMISSIONS)),
        max_size=8,
    ),
    default=st.sampled_from(["READ", "NO_PERMISSIONS"]),
)
def test_visibility_agrees_with_effective_permission(rows, default):
    """The SQL filter of a listing shows exactly what a point request may read."""
    grants = Grants.from_rows([(E, rid, p) for rid, p in rows])
    everything_but, ids = grants.visibility(E, default)
    for rid in ["1", "2", "3", "4", "5"]:
        readable = allows(grants.effective(E, rid, default), "READ")
        listed = (rid not in ids) if everything_but else (rid in ids)
        assert readable == listed, (rid, rows, default)


@given(
    rows=st.lists(st.tuples(st.integers(1, 6), st.sampled_from(PERMISSIONS)), max_size=8),
    default=st.sampled_from(["READ", "NO_PERMISSIONS"]),
)
def test_readable_sql_runs_and_filters(rows, default):
    grants = Grants.from_rows([(E, str(rid), p) for rid, p in rows])
    caller = Caller(Identity("u", "builtin"), 1, False, "creator", (), grants, default)
    sql, args = caller.readable_sql(E, "e.experiment_id", "sqlite")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE e (experiment_id INTEGER)")
    conn.executemany("INSERT INTO e VALUES (?)", [(i,) for i in range(1, 8)])
    got = {r[0] for r in conn.execute(f"SELECT experiment_id FROM e WHERE {sql}", args)}
    want = {i for i in range(1, 8) if caller.can(E, str(i), "READ")}
    assert got == want


def test_admins_read_everything_and_artifacts_outside_experiments_are_closed():
    admin = Caller(Identity("a", "builtin"), 1, True, "admin", (), Grants(), "NO_PERMISSIONS")
    assert admin.readable_sql(E, "x", "sqlite") is None and admin.can(E, "9", "MANAGE")
    user = Caller(Identity("u", "builtin"), 2, False, "creator", (), Grants(), "MANAGE")
    assert not user.can("deny", "", "READ")


def test_role_map():
    roles = RoleMap("admin=admin,data_scientist=creator,user=reader")
    assert roles.role_of("data_scientist") == "creator"
    assert roles.role_of("user", "admin") == "admin"
    assert roles.role_of("unknown", None) is None
    with pytest.raises(ValueError):
        RoleMap("x=superuser")


def test_tokens_are_random_prefixed_and_hashed():
    a, b = new_token(), new_token()
    assert a != b and a.startswith("lt_") and len(a) >= 40 and looks_like_token(a)
    assert token_hash(a) != token_hash(b) and len(token_hash(a)) == 64
    assert a not in hint(a) and hint(a).startswith("lt_")
    assert not looks_like_token("password123")


def test_credential_cache_keys_hide_the_secret():
    keys = CredentialKeys()
    key = keys.key("Basic dXNlcjpwYXNz", "")
    assert b"dXNlcjpwYXNz" not in key and key == keys.key("Basic dXNlcjpwYXNz", "")
    assert CredentialKeys().key("Basic dXNlcjpwYXNz", "") != key  # per-process random key


def test_ttl_cache_expiry_and_bound():
    cache: TtlCache[int] = TtlCache(ttl=0.05, max_entries=3)
    cache.put(b"a", 1)
    assert cache.get(b"a") == 1
    cache.put(b"b", 2, ttl=-1)  # an already expired token is never cached
    assert cache.get(b"b") is None
    for i in range(5):
        cache.put(bytes([i]), i)
    assert len(cache) == 3
    time.sleep(0.06)
    assert cache.get(bytes([4])) is None


def test_throttle_per_user_and_address(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(throttle_mod.time, "monotonic", lambda: clock[0])
    t = Throttle()
    for _ in range(throttle_mod.USER_FREE_FAILURES):
        t.check("bob", "1.2.3.4")
        t.failed("bob", "1.2.3.4")
    with pytest.raises(TooManyAttempts):
        t.check("bob", "5.6.7.8")  # the user is slowed down from any address
    t.check("alice", "1.2.3.4")  # the address is not yet
    clock[0] += throttle_mod.BASE_DELAY + 0.01
    t.check("bob", "1.2.3.4")
    t.failed("bob", "1.2.3.4")
    with pytest.raises(TooManyAttempts) as err:
        t.check("bob", "1.2.3.4")
    assert err.value.headers[0][1] == b"2"  # the delay doubled
    t.succeeded("bob", "1.2.3.4")
    t.check("bob", "1.2.3.4")


def test_loopback_and_client_address():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("host")
    proxies = parse_networks("10.0.0.0/8")
    scope = {"client": ("10.0.0.5", 1), "headers": [(b"x-forwarded-for", b"6.6.6.6, 9.9.9.9")]}
    assert client_address(scope, proxies) == "9.9.9.9"
    assert client_address({"client": ("9.9.9.9", 1), "headers": scope["headers"]}, proxies) == (
        "9.9.9.9"
    )


def test_password_verification_and_the_unknown_user() -> None:
    """An unknown user (no stored hash) is verified against a dummy hash and never passes."""
    from labtrack.auth import passwords

    stored = passwords.hash_password("correct horse battery")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "wrong horse battery")
    assert not passwords.verify_password(None, "correct horse battery")
    assert not passwords.verify_password("not-a-hash", "correct horse battery")
    assert passwords._dummy_hash() == passwords._dummy_hash()  # made once
