"""Accounts through the gateway: the login policy, registration, sessions, passwords, tokens.

Real identity, customers and notifications services; mail read from a real SMTP server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import time
import uuid
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import BIN, OWNER_EMAIL, OWNER_PASSWORD, REPO, System

ADDRESS = {"first_name": "Eva", "last_name": "Ruiz", "line1": "Rambla 3", "city": "Barcelona",
           "country": "ES"}
GOOD_PASSWORD = "una clave bastante larga 7"


def set_accounts(system: System, owner: dict[str, str], mode: str,
                 require_approval: bool = False) -> None:
    response = requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                            json={"customer_accounts": mode, "require_approval": require_approval})
    assert response.status_code == 200, response.text
    # every gateway worker caches the settings for STORE_SETTINGS_TTL (1 s)
    wait_for(lambda: requests.get(system.api("/store"), timeout=5).json()["customer_accounts"]
             == mode, timeout=5, message=f"mode {mode} in force")
    time.sleep(1.1)


def new_email(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def register(system: System, email: str, password: str = GOOD_PASSWORD, **extra: Any
             ) -> requests.Response:
    return requests.post(system.api("/customers"), timeout=10,
                         json={"email": email, "password": password, **extra})


def login(system: System, email: str, password: str = GOOD_PASSWORD) -> requests.Response:
    return requests.post(system.api("/auth/login"), json={"email": email, "password": password},
                         timeout=10, headers={"User-Agent": "pytest-browser"})


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def link_token(text: str, path: str) -> str:
    match = re.search(rf"/{path}\?token=([A-Za-z0-9_\-]+)", text)
    assert match, text
    return match.group(1)


def registered_account(system: System, smtp: SmtpSink, **extra: Any) -> tuple[str, dict]:
    email = new_email()
    assert register(system, email, **extra).status_code == 202
    smtp.wait_for_mail_to(email)
    response = login(system, email, extra.get("password", GOOD_PASSWORD))
    assert response.status_code == 200, response.text
    return email, response.json()


def test_disabled_store_offers_no_accounts(system: System, owner: dict[str, str]) -> None:
    set_accounts(system, owner, "disabled")
    for path, body in [("/customers", {"email": new_email(), "password": GOOD_PASSWORD}),
                       ("/auth/login", {"email": new_email(), "password": GOOD_PASSWORD}),
                       ("/auth/password/forgot", {"email": new_email()})]:
        response = requests.post(system.api(path), json=body, timeout=10)
        assert response.status_code == 403, path
        assert response.json()["code"] == "accounts_disabled"


def test_register_verify_login_and_me(system: System, smtp: SmtpSink,
                                      owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    email = new_email()
    first = register(system, email, first_name="Eva", locale="en")
    again = register(system, email, password="another fine password 99")
    # the same answer whether or not the email already has an account
    assert (first.status_code, first.json()) == (again.status_code, again.json()) == \
        (202, {"status": "accepted",
               "detail": "If this email can be registered, a confirmation is on its way."})

    [welcome] = smtp.wait_for_mail_to(email)
    assert welcome.subject.startswith("Welcome to ")
    assert "Hello Eva" in welcome.text()
    token = link_token(welcome.text(), "verify-email")

    tokens = login(system, email).json()
    me = requests.get(system.api("/me"), headers=bearer(tokens), timeout=10).json()
    assert (me["email"], me["status"], me["email_verified"]) == (email, "active", False)

    verified = requests.post(system.api("/auth/verify-email"), timeout=10,
                             json={"token": token, "password": GOOD_PASSWORD})
    assert verified.status_code == 200, verified.text  # logged in, with a new session
    me = requests.get(system.api("/me"), headers=bearer(verified.json()), timeout=10).json()
    assert me["email_verified"] is True
    # the session opened before the proof has ended
    assert requests.get(system.api("/me"), headers=bearer(tokens), timeout=10).json()[
        "code"] == "session_ended"
    reused = requests.post(system.api("/auth/verify-email"), timeout=10,
                           json={"token": token, "password": GOOD_PASSWORD})
    assert (reused.status_code, reused.json()["code"]) == (400, "invalid_token")

    # the customers service has the registered customer, under the account's id
    row = wait_for(lambda: next(iter(system.sql(
        "customers", "SELECT id, type, account_id FROM customers WHERE email = :e", e=email)),
        None), message="the registered customer")
    assert row.type == "registered" and str(row.account_id) == me["id"]
    time.sleep(1)
    assert len(smtp.to(email)) == 1  # the second registration sent nothing


def test_bad_logins_look_alike(system: System, smtp: SmtpSink, owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    email, _ = registered_account(system, smtp)
    wrong = login(system, email, "not the password at all")
    unknown = login(system, new_email(), "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_registration_refuses_weak_passwords_and_unknown_fields(
    system: System, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    email = new_email("weak")
    for password, needle in [("short", "at least 8"), ("password123", "too common"),
                             (f"{email.split('@')[0]}-secret", "email")]:
        response = register(system, email, password)
        assert response.status_code == 422, password
        assert needle in " ".join(response.json()["errors"]["password"])
    strict = requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                          json={"password_min_classes": 3})
    assert strict.status_code == 200
    time.sleep(1.1)
    try:
        response = register(system, new_email(), "only lower case words here")
        assert "Mix at least 3" in " ".join(response.json()["errors"]["password"])
        assert register(system, new_email(), "Mixed Case words 42").status_code == 202
    finally:
        requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                     json={"password_min_classes": 0})
    for field, value in [("role", "owner"), ("status", "active"), ("email_verified", True)]:
        response = register(system, new_email(), **{field: value})
        assert response.status_code == 422 and field in response.json()["errors"]


def test_a_64_character_unicode_password_is_used_whole(system: System, smtp: SmtpSink,
                                                       owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    password = "contraseña-ñandú-🦜-" + "ü" * 45
    assert len(password) == 64
    email, _ = registered_account(system, smtp, password=password)
    assert login(system, email, password[:-1] + "u").status_code == 401  # not truncated
    assert login(system, email, password).status_code == 200


def test_refresh_rotates_and_a_reused_token_ends_the_session(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    _, tokens = registered_account(system, smtp)
    rotated = requests.post(system.api("/auth/refresh"), timeout=10,
                            json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert fresh["session_id"] == tokens["session_id"]
    assert requests.get(system.api("/me"), headers=bearer(fresh), timeout=10).ok

    replayed = requests.post(system.api("/auth/refresh"), timeout=10,
                             json={"refresh_token": tokens["refresh_token"]})
    assert replayed.status_code == 401
    # the thief's replay revoked the family: the legitimate newer token is dead too
    after = requests.post(system.api("/auth/refresh"), timeout=10,
                          json={"refresh_token": fresh["refresh_token"]})
    assert after.status_code == 401


def test_sessions_are_listed_and_revoked(system: System, smtp: SmtpSink,
                                         owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    email, laptop = registered_account(system, smtp)
    phone = login(system, email).json()
    sessions = requests.get(system.api("/me/sessions"), headers=bearer(laptop),
                            timeout=10).json()["items"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions if s["id"] == laptop["session_id"]] == [True]
    assert all(s["user_agent"] == "pytest-browser" for s in sessions)

    signed_out = requests.delete(system.api("/me/sessions"), headers=bearer(laptop), timeout=10)
    assert signed_out.json() == {"revoked": 1}
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": phone["refresh_token"]}).status_code == 401
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": laptop["refresh_token"]}).status_code == 200

    other = login(system, email).json()
    gone = requests.delete(system.api(f"/me/sessions/{other['session_id']}"),
                           headers=bearer(laptop), timeout=10)
    assert gone.status_code == 204
    missing = requests.delete(system.api(f"/me/sessions/{uuid.uuid4()}"),
                              headers=bearer(laptop), timeout=10)
    assert missing.status_code == 404

    requests.post(system.api("/auth/logout"), json={"refresh_token": other["refresh_token"]},
                  timeout=10)
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": other["refresh_token"]}).status_code == 401


def test_forgotten_password_reset_end_to_end(system: System, smtp: SmtpSink,
                                             owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    email, session = registered_account(system, smtp)

    known = requests.post(system.api("/auth/password/forgot"), json={"email": email},
                          timeout=10)
    unknown = requests.post(system.api("/auth/password/forgot"), json={"email": new_email()},
                            timeout=10)
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert known.status_code == 202
    [_, first_reset] = smtp.wait_for_mail_to(email, count=2)
    first_token = link_token(first_reset.text(), "reset-password")

    def reset(token: str, password: str) -> requests.Response:
        return requests.post(system.api("/auth/password/reset"), timeout=10,
                             json={"token": token, "password": password})

    def new_link(count: int) -> str:
        requests.post(system.api("/auth/password/forgot"), json={"email": email}, timeout=10)
        return link_token(smtp.wait_for_mail_to(email, count=count)[-1].text(),
                          "reset-password")

    # an expired link is refused
    expired_token = new_link(3)
    with create_engine(system.database_urls["identity"]).begin() as connection:
        connection.execute(text("UPDATE one_time_tokens SET expires_at = now() - interval "
                                "'1 minute' WHERE token_hash = :h"),
                           {"h": hashlib.sha256(expired_token.encode()).hexdigest()})
    assert reset(expired_token, "a brand new passphrase 1").json()["code"] == "invalid_token"

    token = new_link(4)
    # a newer link supersedes the older ones
    assert reset(first_token, "a brand new passphrase 1").json()["code"] == "invalid_token"
    # a weak password is refused without spending the link
    assert reset(token, "123456").status_code == 422
    assert reset(token, "a brand new passphrase 1").status_code == 204
    # and a used one never works again
    assert reset(token, "yet another passphrase 2").json()["code"] == "invalid_token"

    assert login(system, email).status_code == 401
    assert login(system, email, "a brand new passphrase 1").status_code == 200
    # every earlier session is gone
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": session["refresh_token"]}).status_code == 401
    [*_, notice] = smtp.wait_for_mail_to(email, count=5)
    assert "password" in notice.subject.lower() or "contraseña" in notice.subject.lower()

    # only hashes are stored: the plaintext is nowhere in identity's or notifications' tables
    stored = {row.token_hash for row in system.sql("identity",
                                                   "SELECT token_hash FROM one_time_tokens")}
    assert hashlib.sha256(token.encode()).hexdigest() in stored
    for service in ("identity", "notifications"):
        for table in (["outbox", "one_time_tokens"] if service == "identity"
                      else ["deliveries", "outbox"]):
            dump = json.dumps([list(map(str, row)) for row in system.sql(
                service, f"SELECT * FROM {table}")])
            assert token not in dump and first_token not in dump, (service, table)
    assert token not in system.log_tail(5000)


def test_change_password_needs_the_current_one_and_signs_out_elsewhere(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    email, here = registered_account(system, smtp)
    elsewhere = login(system, email).json()
    wrong = requests.post(system.api("/me/password"), headers=bearer(here), timeout=10,
                          json={"current_password": "nope nope nope",
                                "new_password": "a new long passphrase"})
    assert wrong.status_code == 422 and "current_password" in wrong.json()["errors"]
    done = requests.post(system.api("/me/password"), headers=bearer(here), timeout=10,
                         json={"current_password": GOOD_PASSWORD,
                               "new_password": "a new long passphrase"})
    assert done.status_code == 204
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": elsewhere["refresh_token"]}).status_code == 401
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": here["refresh_token"]}).status_code == 200


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_forged_expired_and_misdirected_tokens_are_refused(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    _, tokens = registered_account(system, smtp)
    header = jwt.get_unverified_header(tokens["access_token"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})

    def me(token: str) -> requests.Response:
        return requests.get(system.api("/me"), timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    none_token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}."
    assert me(none_token).status_code == 401
    other_key = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                           headers={"kid": header["kid"]})
    assert me(other_key).status_code == 401
    hs256 = jwt.encode(claims, "guessable-secret-of-32-bytes-long!", algorithm="HS256",
                       headers={"kid": header["kid"]})
    assert me(hs256).status_code == 401
    assert me("not.a.token").status_code == 401
    assert me("").status_code == 401

    real_key = (system.workdir / "var" / "keys" / "jwt-signing.pem").read_bytes()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(real_key, None)
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, key, algorithm="EdDSA",
                         headers={"kid": header["kid"]})
    response = me(expired)
    assert (response.status_code, response.json()["code"]) == (401, "token_expired")
    foreign = jwt.encode({**claims, "aud": "another-app"}, key, algorithm="EdDSA",
                         headers={"kid": header["kid"]})
    assert me(foreign).status_code == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]

    # a customer token never opens an admin route, and a staff token never a storefront one
    admin_route = requests.get(system.api("/admin/settings"), headers=bearer(tokens),
                               timeout=10)
    assert (admin_route.status_code, admin_route.json()["code"]) == (403, "wrong_audience")
    assert requests.get(system.api("/me"), headers=owner, timeout=10).status_code == 403

    # refresh tokens, likewise, only at their own door
    staff_session = requests.post(system.api("/admin/auth/login"), timeout=10, json={
        "email": OWNER_EMAIL, "password": OWNER_PASSWORD}).json()
    assert requests.post(system.api("/auth/refresh"), timeout=10, json={
        "refresh_token": staff_session["refresh_token"]}).status_code == 401
    assert requests.post(system.api("/admin/auth/refresh"), timeout=10, json={
        "refresh_token": tokens["refresh_token"]}).status_code == 401
    assert requests.post(system.api("/admin/auth/refresh"), timeout=10, json={
        "refresh_token": staff_session["refresh_token"]}).status_code == 200


def test_only_the_owner_changes_settings(system: System, owner: dict[str, str]) -> None:
    email = new_email("staff")
    created = subprocess.run([str(BIN / "clientela"), "create-staff", email,
                              "--role", "staff", "--generate-password"],
                             cwd=REPO, env=system.env, capture_output=True, text=True,
                             check=True)
    password = created.stdout.strip().rsplit(" ", 1)[-1]
    staff = requests.post(system.api("/admin/auth/login"), timeout=10,
                          json={"email": email, "password": password}).json()
    assert requests.get(system.api("/admin/settings"), headers=bearer(staff), timeout=10).ok
    refused = requests.put(system.api("/admin/settings"), headers=bearer(staff), timeout=10,
                           json={"customer_accounts": "required"})
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    bad = requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                       json={"customer_accounts": "sometimes", "colour": "red"})
    assert bad.status_code == 422 and {"customer_accounts", "colour"} <= set(
        bad.json()["errors"])


def checkout(system: System, headers: dict[str, str] | None = None,
             email: str | None = None) -> requests.Response:
    body = {"lines": [{"sku": "TSHIRT-RED-M", "quantity": 1}], "shipping_address": ADDRESS,
            "email": email or new_email("guest")}
    return requests.post(system.api("/checkout"), json=body, headers=headers or {}, timeout=15)


def test_checkout_follows_the_login_policy(system: System, smtp: SmtpSink,
                                           owner: dict[str, str]) -> None:
    set_accounts(system, owner, "optional")
    guest = checkout(system)
    assert guest.status_code == 201 and guest.json()["offer_account"] is True
    email, tokens = registered_account(system, smtp)
    mine = checkout(system, bearer(tokens), email="someone-else@example.com")
    assert mine.status_code == 201
    order = mine.json()["order"]
    me = requests.get(system.api("/me"), headers=bearer(tokens), timeout=10).json()
    assert (order["customer_id"], order["email"]) == (me["id"], email)

    set_accounts(system, owner, "required")
    refused = checkout(system)
    assert (refused.status_code, refused.json()["code"]) == (401, "login_required")
    assert checkout(system, bearer(tokens)).status_code == 201

    set_accounts(system, owner, "required", require_approval=True)
    _, pending = registered_account(system, smtp)
    blocked = checkout(system, bearer(pending))
    assert (blocked.status_code, blocked.json()["code"]) == (403, "account_not_approved")

    set_accounts(system, owner, "disabled")
    assert checkout(system).json()["offer_account"] is False
    assert checkout(system, bearer(tokens)).json()["code"] == "accounts_disabled"


def test_failed_logins_are_throttled_but_never_the_reset_path(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    email, _ = registered_account(system, smtp)
    client = {"X-Forwarded-For": "203.0.113.7"}

    def attempt(password: str, who: str = email, headers: dict | None = None
                ) -> requests.Response:
        return requests.post(system.api("/auth/login"), timeout=10, headers=headers or client,
                             json={"email": who, "password": password})

    assert [attempt("wrong password!").status_code for _ in range(5)] == [401] * 5
    locked = attempt(GOOD_PASSWORD)  # even the right password waits now
    assert locked.status_code == 429 and locked.json()["code"] == "too_many_attempts"
    assert int(locked.headers["Retry-After"]) >= 1

    # the reset path is never throttled, and a reset lifts the lock
    assert requests.post(system.api("/auth/password/forgot"), json={"email": email},
                         timeout=10).status_code == 202
    token = link_token(smtp.wait_for_mail_to(email, count=2)[-1].text(), "reset-password")
    assert requests.post(system.api("/auth/password/reset"), timeout=10,
                         json={"token": token, "password": "freshly reset pass 3"}
                         ).status_code == 204
    assert attempt("freshly reset pass 3").status_code == 200

    # one address trying many accounts is slowed down too
    spray = {"X-Forwarded-For": "203.0.113.99"}
    statuses = [attempt("Winter2026!", new_email("spray"), spray).status_code
                for _ in range(21)]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429


def test_merchant_invites_a_customer_who_activates_the_account(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "required")
    email = new_email("invited")
    created = requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                            json={"email": email, "first_name": "Iker", "locale": "es",
                                  "send_invite": True})
    assert created.status_code == 201, created.text
    assert created.json()["account"]["status"] == "invited"
    [invitation] = smtp.wait_for_mail_to(email)
    assert "te invita" in invitation.subject and "Hola Iker" in invitation.text()
    token = link_token(invitation.text(), "activate")
    assert login(system, email).status_code == 401  # no password yet

    activated = requests.post(system.api("/auth/activate"), timeout=10,
                              json={"token": token, "password": GOOD_PASSWORD})
    assert activated.status_code == 200, activated.text
    me = requests.get(system.api("/me"), headers=bearer(activated.json()), timeout=10).json()
    assert (me["status"], me["email_verified"]) == ("active", True)
    again = requests.post(system.api("/auth/activate"), timeout=10,
                          json={"token": token, "password": GOOD_PASSWORD})
    assert again.json()["code"] == "invalid_token"
    assert checkout(system, bearer(activated.json())).status_code == 201

    # a customer added without an invitation, invited later
    other = new_email("added")
    added = requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                          json={"email": other, "first_name": "Ane"})
    assert added.status_code == 201 and added.json()["customer"]["type"] == "guest"
    duplicate = requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                              json={"email": other})
    assert duplicate.status_code == 409
    customer_id = added.json()["customer"]["id"]
    invited = requests.post(system.api(f"/admin/customers/{customer_id}/invite"),
                            headers=owner, timeout=10)
    assert invited.status_code == 200 and invited.json()["account"]["status"] == "invited"
    smtp.wait_for_mail_to(other)
    unknown = requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                            json={"email": new_email(), "role": "owner"})
    assert unknown.status_code == 422


def test_approval_and_disabling(system: System, smtp: SmtpSink,
                                owner: dict[str, str]) -> None:
    set_accounts(system, owner, "required", require_approval=True)
    email, pending = registered_account(system, smtp)
    assert checkout(system, bearer(pending)).json()["code"] == "account_not_approved"
    account_id = requests.get(system.api("/me"), headers=bearer(pending), timeout=10
                              ).json()["id"]
    wait_for(lambda: system.sql("customers", "SELECT id FROM customers WHERE id = :i",
                                i=account_id), message="the customer record")

    approved = requests.post(system.api(f"/admin/customers/{account_id}/approve"),
                             headers=owner, timeout=10)
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    [*_, notice] = smtp.wait_for_mail_to(email, count=2)
    assert "aprobada" in notice.subject or "approved" in notice.subject
    session = login(system, email).json()
    assert checkout(system, bearer(session)).status_code == 201

    disabled = requests.post(system.api(f"/admin/customers/{account_id}/disable"),
                             headers=owner, timeout=10)
    assert disabled.json()["status"] == "disabled"
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": session["refresh_token"]}).status_code == 401
    refused = login(system, email)
    assert (refused.status_code, refused.json()["code"]) == (403, "account_disabled")
    illegal = requests.post(system.api(f"/admin/customers/{account_id}/approve"),
                            headers=owner, timeout=10)
    assert (illegal.status_code, illegal.json()["code"]) == (409, "illegal_transition")
    assert requests.post(system.api(f"/admin/customers/{account_id}/enable"), headers=owner,
                         timeout=10).json()["status"] == "active"
    assert login(system, email).status_code == 200
    assert requests.post(system.api(f"/admin/customers/{account_id}/approve"),
                         headers=bearer(session), timeout=10).status_code == 403


def test_email_change_is_confirmed_by_the_new_address_and_revertible_from_the_old(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    old, tokens = registered_account(system, smtp)
    taken, _ = registered_account(system, smtp)
    new = new_email("moved")

    def change(body: dict[str, Any]) -> requests.Response:
        return requests.post(system.api("/me/email"), headers=bearer(tokens), json=body,
                             timeout=10)

    assert change({"password": "not it at all", "new_email": new}).status_code == 422
    assert change({"password": GOOD_PASSWORD, "new_email": old}).status_code == 422
    # A taken address answers as a free one does (no oracle); its owner gets a notice, no link.
    assert change({"password": GOOD_PASSWORD, "new_email": taken}).status_code == 202
    [*_, in_use] = smtp.wait_for_mail_to(taken, count=2)
    assert "confirm-email" not in in_use.text() and taken in in_use.text()
    assert change({"password": GOOD_PASSWORD, "new_email": new}).status_code == 202
    me = requests.get(system.api("/me"), headers=bearer(tokens), timeout=10).json()
    assert me["email"] == old  # nothing changes before the new address confirms

    [confirm] = smtp.wait_for_mail_to(new)
    confirmed = requests.post(system.api("/auth/email/confirm"), timeout=10,
                              json={"token": link_token(confirm.text(), "confirm-email")})
    assert confirmed.status_code == 200 and confirmed.json()["email"] == new
    wait_for(lambda: system.sql("customers", "SELECT 1 FROM customers WHERE email = :e "
                                             "AND account_id = :a", e=new, a=me["id"]),
             message="the customer's email updated")

    [*_, notice] = smtp.wait_for_mail_to(old, count=2)
    assert new in notice.text()
    reverted = requests.post(system.api("/auth/email/revert"), timeout=10,
                             json={"token": link_token(notice.text(), "revert-email")})
    assert reverted.status_code == 200 and reverted.json()["email"] == old
    assert requests.post(system.api("/auth/refresh"), timeout=10,
                         json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert login(system, old).status_code == 200
    assert login(system, new).status_code == 401
    wait_for(lambda: system.sql("customers", "SELECT 1 FROM customers WHERE email = :e "
                                             "AND account_id = :a", e=old, a=me["id"]),
             message="the customer's email restored")


def test_a_guest_accepts_the_account_offer_and_keeps_their_orders(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    email = new_email("guest")
    placed = [checkout(system, email=email) for _ in range(2)]
    assert [p.status_code for p in placed] == [201, 201]
    assert all("token" not in json.dumps(p.json()) for p in placed)  # only the email has it
    first, second = (p.json()["order"] for p in placed)
    mails = smtp.wait_for_mail_to(email, count=2)
    token = link_token(next(m for m in mails if first["number"] in m.subject).text(), "orders/"
                       + first["id"])
    assert f"/create-account?order={first['id']}&token={token}" in mails[0].text() + \
        mails[1].text()

    # the guest's order page, by the emailed token only
    assert requests.get(system.api(f"/orders/{first['id']}"), params={"token": token},
                        timeout=10).json()["number"] == first["number"]
    for order_id, tok in [(first["id"], "wrong"), (second["id"], token), (first["id"], "")]:
        assert requests.get(system.api(f"/orders/{order_id}"), params={"token": tok},
                            timeout=10).status_code == 404

    created = requests.post(system.api("/auth/activate"), timeout=10, json={
        "order_id": first["id"], "token": token, "password": GOOD_PASSWORD})
    assert created.status_code == 201, created.text
    session = created.json()
    me = requests.get(system.api("/me"), headers=bearer(session), timeout=10).json()
    assert (me["email"], me["email_verified"], me["first_name"]) == (email, True, "Eva")

    def my_orders() -> list[dict]:
        return requests.get(system.api("/me/orders"), headers=bearer(session),
                            timeout=10).json()["items"]

    orders = wait_for(lambda: len(my_orders()) == 2 and my_orders(), message="linked orders")
    assert [o["id"] for o in orders] == [second["id"], first["id"]]  # newest first
    assert requests.get(system.api(f"/me/orders/{first['id']}"), headers=bearer(session),
                        timeout=10).json()["number"] == first["number"]
    again = requests.post(system.api("/auth/activate"), timeout=10, json={
        "order_id": first["id"], "token": token, "password": GOOD_PASSWORD})
    assert (again.status_code, again.json()["code"]) == (410, "account_offer_expired")  # once
    wait_for(lambda: system.sql("customers", "SELECT 1 FROM customers WHERE email = :e AND "
                                             "type = 'registered' AND account_id = :a",
                                e=email, a=me["id"]), message="the guest record linked")

    # someone else's order is a 404 to this customer, never a 403
    _, stranger = registered_account(system, smtp)
    assert requests.get(system.api(f"/me/orders/{first['id']}"), headers=bearer(stranger),
                        timeout=10).status_code == 404


def test_registering_an_unproven_email_does_not_reveal_its_guest_orders(
    system: System, smtp: SmtpSink, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    victim = new_email("victim")
    assert checkout(system, email=victim).status_code == 201
    smtp.wait_for_mail_to(victim)
    assert register(system, victim).status_code == 202  # an intruder registers that email
    session = login(system, victim).json()
    time.sleep(1.5)
    assert requests.get(system.api("/me/orders"), headers=bearer(session),
                        timeout=10).json()["items"] == []
    [(kind, account_id)] = system.sql("customers", "SELECT type, account_id FROM customers "
                                                   "WHERE email = :e", e=victim)
    assert (kind, account_id) == ("guest", None)
    # only the inbox's owner can prove it, choosing the password as they do: the orders then
    # follow the owner's new session, and the intruder's session and password are worthless
    welcome = smtp.wait_for_mail_to(victim, count=2)[-1]
    owners_password = "the owner's own passphrase 9"
    proven = requests.post(system.api("/auth/verify-email"), timeout=10, json={
        "token": link_token(welcome.text(), "verify-email"), "password": owners_password})
    assert proven.status_code == 200, proven.text
    wait_for(lambda: len(requests.get(system.api("/me/orders"), headers=bearer(proven.json()),
                                      timeout=10).json()["items"]) == 1,
             message="the orders after verification")
    assert requests.get(system.api("/me/orders"), headers=bearer(session),
                        timeout=10).status_code == 401
    assert login(system, victim).status_code == 401
    assert login(system, victim, owners_password).status_code == 200


def test_abused_routes_are_rate_limited_per_address_across_gateway_processes(
    system: System, owner: dict[str, str]
) -> None:
    set_accounts(system, owner, "optional")
    client = {"X-Forwarded-For": "203.0.113.50"}
    statuses = [requests.post(system.api("/auth/password/forgot"), json={"email": new_email()},
                              headers=client, timeout=10) for _ in range(6)]
    # five per minute (the default), counted in Redis whichever gateway process answered
    assert [r.status_code for r in statuses] == [202] * 5 + [429]
    limited = statuses[-1]
    assert limited.headers["Content-Type"].startswith("application/problem+json")
    assert int(limited.headers["Retry-After"]) > 0
    # another address is not affected
    assert requests.post(system.api("/auth/password/forgot"), json={"email": new_email()},
                         headers={"X-Forwarded-For": "203.0.113.51"}, timeout=10
                         ).status_code == 202
