"""The browser apps' files: what is served, with which headers, and what is not."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.blueprints.web import ADMIN_DIR, EXAMPLE_STORE_DIR, NODE_MODULES
from gateway.config import GatewayConfig


def client_for(monkeypatch: pytest.MonkeyPatch, example_store: bool) -> FlaskClient:
    if example_store:
        monkeypatch.setenv("EXAMPLE_STOREFRONT", "1")
    else:
        monkeypatch.delenv("EXAMPLE_STOREFRONT", raising=False)
    return create_app(GatewayConfig(amqp_uri="amqp://guest:guest@127.0.0.1:1/",
                                    rpc_timeout=1)).test_client()


def test_the_admin_page_and_its_files(monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_for(monkeypatch, example_store=False)
    page = client.get("/admin/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'x-data="admin"' in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-eval'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["Cache-Control"] == "no-cache" and page.headers.get("ETag")
    assert client.get("/admin").status_code == 200
    script = client.get("/admin/app.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert client.get("/admin/app.js", headers={"If-None-Match": script.headers["ETag"]}
                      ).status_code == 304


def test_no_way_out_of_the_served_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_for(monkeypatch, example_store=True)
    for path in ("/admin/../app.py", "/admin/%2e%2e/app.py", "/admin/..%2fblueprints/web.py",
                 "/admin/missing.js", "/example-store/../../gateway/app.py"):
        response = client.get(path)
        assert response.status_code == 404 or b"x-data" in response.data, path
        assert b"create_app" not in response.data, path


def test_only_the_named_vendor_files_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    client = client_for(monkeypatch, example_store=False)
    assert client.get("/assets/vendor/package.json").status_code == 404
    assert client.get("/assets/vendor/..%2falpinejs%2fpackage.json").status_code == 404
    if (NODE_MODULES / "alpinejs").is_dir():  # installed by `make setup`
        alpine = client.get("/assets/vendor/alpine.js")
        assert alpine.status_code == 200 and b"Alpine" in alpine.data
        assert client.get("/assets/vendor/chart.js").status_code == 200


def test_the_example_store_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_for(monkeypatch, example_store=False).get("/example-store/").status_code == 404
    client = client_for(monkeypatch, example_store=True)
    assert b'x-data="store"' in client.get("/example-store/").data
    # The links in emails land on the page, which routes on its path.
    for path in ("/example-store/reset-password?token=abc", "/example-store/b/k3m9x2pq",
                 "/example-store/recover/some-token", "/example-store/orders/1?token=x"):
        response = client.get(path)
        assert response.status_code == 200 and b'x-data="store"' in response.data, path
    assert b"alpine:init" in client.get("/example-store/store.js").data


# t('word') and t("word", {...}) with a literal word: t('st_' + state) builds its key, unchecked.
WORD_CALL = re.compile(r"\bt\(['\"](\w+)['\"]\s*[,)]")


def _keys(block: str) -> set[str]:
    """The keys of one language's object literal (key: "text", ...)."""
    return set(re.findall(r"(?:^|[{\s,])(\w+): \"", block))


def test_the_admin_speaks_both_languages_in_full() -> None:
    text = (ADMIN_DIR / "i18n.js").read_text(encoding="utf-8")
    words = {lang: _keys(body) for lang, body in
             re.findall(r"^  (\w\w): \{\n(.*?)^  \},$", text, flags=re.M | re.S)}
    assert set(words) == {"en", "es"} and len(words["en"]) > 200
    assert words["en"] - words["es"] == set(), "words with no Spanish"
    assert words["es"] - words["en"] == set(), "words with no English"
    used = set()
    for name in ("index.html", "app.js"):
        used |= set(WORD_CALL.findall((ADMIN_DIR / name).read_text("utf-8")))
    assert used - words["en"] == set(), "words the pages use that i18n.js lacks"


def test_the_example_store_speaks_both_languages_in_full() -> None:
    text = (EXAMPLE_STORE_DIR / "store.js").read_text(encoding="utf-8")
    english = _keys(text[text.index("  en: {"):text.index("  es: {")])
    spanish = _keys(text[text.index("  es: {"):text.index("\n};")])
    assert len(english) > 50 and english == spanish
    used = set(WORD_CALL.findall((EXAMPLE_STORE_DIR / "index.html").read_text("utf-8") + text))
    assert used - english == set(), "words the store uses that WORDS lacks"
