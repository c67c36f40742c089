"""Keys shared by services: the access-token signing key and the token-sealing key.

Production passes them in the environment (``JWT_PRIVATE_KEY``, PEM; ``TOKEN_SEALING_KEY``,
Fernet). For ``make run`` and the tests, ``clientela keys`` writes them once under var/keys/,
where every local service reads them. Services never invent keys themselves: two replicas
with two different keys would reject each other's tokens.

Sealing: one-time tokens (password reset, invitation, ...) travel to the notifications service
inside events. Sealed, the plaintext exists only in the email: never in an outbox row, a queue
on the broker's disk, the delivery log or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messaging.database import var_dir

TOKEN_ISSUER = "clientela-identity"  # the `iss` of every access token
SIGNING_KEY_FILE = "jwt-signing.pem"
SEALING_KEY_FILE = "token-sealing.key"
# The signing key before the last rotation: its tokens stay verifiable until they expire.
PREVIOUS_SIGNING_KEY_FILE = "jwt-signing.previous.pem"


class MissingKey(RuntimeError):
    pass


def keys_dir() -> Path:
    return var_dir() / "keys"


def _read(env_name: str, file_name: str) -> bytes:
    value = os.environ.get(env_name)
    if value:
        return value.encode()
    path = _key_path(os.environ.get(f"{env_name}_FILE"), file_name,
                     os.environ.get("CLIENTELA_VAR_DIR"), os.getcwd())
    try:
        found = path.stat()
    except OSError:
        found = None
    if found is None or not stat.S_ISREG(found.st_mode):
        raise MissingKey(f"no {env_name}: set it, or run `clientela keys` to create {path}")
    return _file_bytes(path, (found.st_ino, found.st_mtime_ns, found.st_ctime_ns, found.st_size))


@lru_cache(maxsize=32)
def _key_path(explicit: str | None, file_name: str, var_setting: str | None, cwd: str) -> Path:
    """Where a key file is, found once per setting (what var_dir() depends on is part of the
    cache key): var_dir() resolves and creates the directory, 28 µs a call."""
    return Path(explicit) if explicit else keys_dir() / file_name


@lru_cache(maxsize=32)
def _file_bytes(path: Path, version: tuple[int, ...]) -> bytes:
    """A key file's bytes, read again only when the file changes: a rotation replaces it (a
    new inode), an edit changes its times."""
    return path.read_bytes()


def ensure_local_keys() -> list[Path]:
    """Create any missing key file under var/keys/ (for make run and tests); returns new ones."""
    directory = keys_dir()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    created = []
    signing = directory / SIGNING_KEY_FILE
    if not signing.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        signing.write_bytes(pem)
        created.append(signing)
    sealing = directory / SEALING_KEY_FILE
    if not sealing.exists():
        sealing.write_bytes(Fernet.generate_key())
        created.append(sealing)
    for path in created:
        os.chmod(path, 0o600)
    return created


def signing_key() -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(_read("JWT_PRIVATE_KEY", SIGNING_KEY_FILE), None)
    if not isinstance(key, Ed25519PrivateKey):
        raise MissingKey("JWT_PRIVATE_KEY must be an Ed25519 private key (PEM)")
    return key


def previous_signing_key() -> Ed25519PrivateKey | None:
    """The key in use before the last rotation (JWT_PREVIOUS_PRIVATE_KEY, or the file), if
    any: identity still publishes its public half so tokens it signed stay valid."""
    try:
        pem = _read("JWT_PREVIOUS_PRIVATE_KEY", PREVIOUS_SIGNING_KEY_FILE)
    except MissingKey:
        return None
    key = serialization.load_pem_private_key(pem, None)
    return key if isinstance(key, Ed25519PrivateKey) else None


def published_jwks() -> dict[str, list[dict[str, str]]]:
    """The current and the previous public keys, read afresh (after a rotation every identity
    replica publishes both, even one that has not restarted and still signs with the old)."""
    keys = [public_jwk(signing_key())]
    previous = previous_signing_key()
    if previous is not None and public_jwk(previous)["kid"] != keys[0]["kid"]:
        keys.append(public_jwk(previous))
    return {"keys": keys}


def rotate_signing_key() -> tuple[str, str]:
    """A new signing key in var/keys; the current one becomes the previous (the one before is
    dropped: rotate no more often than access tokens live). Returns (old kid, new kid)."""
    ensure_local_keys()
    directory = keys_dir()
    current = directory / SIGNING_KEY_FILE
    old = current.read_bytes()
    previous = directory / PREVIOUS_SIGNING_KEY_FILE
    previous.write_bytes(old)
    os.chmod(previous, 0o600)
    new = Ed25519PrivateKey.generate()
    staged = directory / (SIGNING_KEY_FILE + ".new")
    staged.write_bytes(new.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    os.chmod(staged, 0o600)
    os.replace(staged, current)  # atomic: a reader sees the old key or the new, whole
    old_key = serialization.load_pem_private_key(old, None)
    return public_jwk(old_key)["kid"], public_jwk(new)["kid"]  # type: ignore[arg-type]


def public_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return {
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
        "kid": hashlib.sha256(raw).hexdigest()[:16],
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }


def _fernet() -> Fernet:
    return _fernet_for(_read("TOKEN_SEALING_KEY", SEALING_KEY_FILE).strip())


@lru_cache(maxsize=8)
def _fernet_for(key: bytes) -> Fernet:
    # Every checkout seals a token and every order email unseals it: reading the key file
    # and building the cipher each time was two thirds of a seal (56 of 87 µs).
    return Fernet(key)


def seal(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    return _fernet().decrypt(sealed.encode()).decode()


def derived_secret(purpose: str) -> str:
    """A secret for one purpose, the same in every replica (they share the sealing key)."""
    key = _read("TOKEN_SEALING_KEY", SEALING_KEY_FILE).strip()
    return hmac.new(key, purpose.encode(), hashlib.sha256).hexdigest()


def new_token() -> tuple[str, str]:
    """(plaintext for a link, hash to store): 256 random bits; only the hash is kept."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    # The token is 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str | None) -> bool:
    return bool(stored_hash) and hmac.compare_digest(hash_token(token), stored_hash)
