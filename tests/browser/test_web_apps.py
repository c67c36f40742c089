"""The merchant admin (/admin/) and the example storefront (/example-store/) in a real browser.

Each test clicks through the pages as a person would and then checks, through the API, that
what the page said happened did happen.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import time
import uuid
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from harness.infra import wait_for
from harness.smtp import SmtpSink
from harness.system import BIN, OWNER_EMAIL, OWNER_PASSWORD, REPO, System
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.e2e

ADDRESS = {"first_name": "Lucía", "last_name": "Pardo", "line1": "Calle Luna 3",
           "city": "Sevilla", "postal_code": "41001", "country": "ES"}


def guest_order(system: System, email: str, **address: str) -> dict[str, Any]:
    response = requests.post(system.api("/checkout"), timeout=15, json={
        "email": email, "payment_method": "bank_transfer",
        "shipping_address": {**ADDRESS, **address},
        "lines": [{"sku": "MUG-LOGO", "quantity": 1}]})
    assert response.status_code == 201, response.text
    return response.json()["order"]


def set_login_option(system: System, owner: dict[str, str], option: str,
                     require_approval: bool = False) -> None:
    response = requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                            json={"customer_accounts": option,
                                  "require_approval": require_approval})
    assert response.status_code == 200, response.text
    wait_for_policy(system, option)


def wait_for_policy(system: System, option: str) -> None:
    # Each gateway process caches the settings for STORE_SETTINGS_TTL (1 s): past that, every
    # process has read them again, whichever one the browser's next request reaches.
    wait_for(lambda: requests.get(system.api("/store"), timeout=5).json()[
        "customer_accounts"] == option, timeout=10,
        message=f"the store's login option to be {option}")
    time.sleep(1.2)


def customer_id_for(system: System, owner: dict[str, str], email: str) -> str:
    def found() -> str | None:
        items = requests.get(system.api("/admin/customers"), params={"q": email},
                             headers=owner, timeout=10).json()["items"]
        return items[0]["id"] if items else None

    return wait_for(found, timeout=15, message=f"the customer {email}")


def sign_in(page: Page, system: System, email: str, password: str) -> None:
    page.goto(f"{system.url}/admin/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Categories")).to_be_visible()


def test_an_empty_store_shows_empty_pages_not_errors(page: Page, system: System) -> None:
    """First in the module, on a fresh system: no customers, orders or emails yet."""
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)
    expect(page.get_by_text("No customers match.")).to_be_visible()
    expect(page.get_by_text("No categories yet.")).to_be_visible()
    page.get_by_role("link", name="Orders").click()
    expect(page.get_by_text("No orders match.")).to_be_visible()
    page.get_by_role("link", name="Insights").click()
    expect(page.get_by_text("Nothing yet: figures appear with the first orders.").first
           ).to_be_visible()
    expect(page.locator("#chart-orders")).to_be_visible()
    screenshot(page, "admin-insights-empty")
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_text("No emails yet.")).to_be_visible()
    page.get_by_role("link", name="Settings").click()
    expect(page.locator("input[name=customer_accounts][value=disabled]")).to_be_checked()
    # An unknown order or customer is said in words, in place.
    page.goto(f"{system.url}/admin/#/orders/{uuid.uuid4()}")
    expect(page.get_by_role("alert")).to_contain_text("No such order")
    page.goto(f"{system.url}/admin/#/customers/{uuid.uuid4()}")
    expect(page.get_by_role("alert").first).to_be_visible()


def test_the_merchant_runs_the_store_from_the_admin(
        page: Page, system: System, owner: dict[str, str]) -> None:
    set_login_option(system, owner, "disabled")
    tag = uuid.uuid4().hex[:6]
    wholesale_email, other_email = f"bulk-{tag}@example.com", f"single-{tag}@example.com"
    order = guest_order(system, wholesale_email)
    guest_order(system, other_email)
    customer_id = customer_id_for(system, owner, wholesale_email)
    customer_id_for(system, owner, other_email)

    # A wrong password is said in words, in place; the right one lets the owner in.
    page.goto(f"{system.url}/admin/")
    page.get_by_label("Email").fill(OWNER_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"\w+"))
    screenshot(page, "admin-sign-in")
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)
    screenshot(page, "admin-customers")

    # Settings: the login option becomes "required".
    page.get_by_role("link", name="Settings").click()
    page.locator("input[name=customer_accounts][value=required]").check()
    page.locator("form", has=page.locator("input[name=customer_accounts]")).get_by_role(
        "button", name="Save").click()
    expect(page.get_by_text("Saved.").first).to_be_visible()
    screenshot(page, "admin-settings")
    wait_for_policy(system, "required")

    # A category, created in the sidebar, given to one customer, then used as a filter.
    page.get_by_role("link", name="Customers").click()
    page.get_by_label("New category").fill(f"Wholesale {tag}")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("button", name=f"Wholesale {tag}", exact=True)).to_be_visible()
    page.get_by_role("row", name=re.compile(wholesale_email)).get_by_role("link").click()
    expect(page.get_by_role("heading", name="Figures")).to_be_visible()
    page.get_by_label("Add to category").select_option(label=f"Wholesale {tag}")
    page.get_by_role("button", name="Add to category").click()
    expect(page.locator(".chips")).to_contain_text(f"Wholesale {tag}")
    screenshot(page, "admin-customer")
    page.get_by_role("link", name="← Customers").click()
    page.get_by_role("button", name=f"Wholesale {tag}", exact=True).click()
    rows = page.locator("table[aria-label=customers] tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(wholesale_email)
    category = requests.get(system.api(f"/admin/customers/{customer_id}"), headers=owner,
                            timeout=10).json()["customer"]["categories"]
    assert [c["name"] for c in category] == [f"Wholesale {tag}"]

    # The order: marked paid, then shipped with a tracking number.
    page.get_by_role("link", name="Orders").click()
    page.get_by_role("link", name=order["number"], exact=True).click()
    page.locator("select[name=payment_status]").select_option("paid")
    page.locator("form[aria-labelledby=payment-title]").get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("paid")
    expect(page.get_by_test_id("order-status")).to_have_text("paid")
    fulfillment = page.locator("form[aria-labelledby=fulfillment-title]")
    fulfillment.locator("select[name=fulfillment_status]").select_option("in_transit")
    fulfillment.locator("input[name=carrier]").fill("Correos")
    fulfillment.locator("input[name=tracking_number]").fill(f"PK{tag}ES")
    fulfillment.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("tracking")).to_have_text(f"Correos PK{tag}ES")
    expect(page.get_by_test_id("fulfillment-status")).to_have_text("in transit")
    expect(page.locator("ol.timeline li")).to_have_count(4)  # placed, paid (x2), shipped
    expect(page.locator("ol.timeline")).to_contain_text(f"you ({OWNER_EMAIL})")
    expect(page.locator("ol.timeline")).to_contain_text("the system: Status pending payment → "
                                                        "paid because payment became paid")
    screenshot(page, "admin-order")
    stored = requests.get(system.api(f"/admin/orders/{order['id']}"), headers=owner,
                          timeout=10).json()
    assert (stored["payment_status"], stored["fulfillment_status"]) == ("paid", "in_transit")
    assert (stored["carrier"], stored["tracking_number"]) == ("Correos", f"PK{tag}ES")

    # The export: the last three months by default, downloaded as a CSV file.
    page.get_by_role("link", name="← Orders").click()
    expect(page.locator("table[aria-label=orders] tbody tr").first).to_be_visible()
    screenshot(page, "admin-orders")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".csv")
    rows_out = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    mine = [row for row in rows_out if row["number"] == order["number"]]
    assert mine and mine[0]["payment_status"] == "paid", rows_out

    # Insights draw their charts; the delivery log lists the emails sent.
    page.get_by_role("link", name="Insights").click()
    expect(page.locator("#chart-orders")).to_be_visible()
    expect(page.get_by_role("heading", name="Best customers by spend")).to_be_visible()
    screenshot(page, "admin-insights")
    page.get_by_role("link", name="Notifications").click()
    expect(page.locator("table[aria-label=deliveries] tbody tr").first).to_be_visible()
    screenshot(page, "admin-notifications")

    # Spanish, remembered across a reload (and the session too, within the tab).
    page.get_by_label("Language").select_option("es")
    expect(page.get_by_role("link", name="Clientes")).to_be_visible()
    page.reload()
    expect(page.get_by_role("link", name="Pedidos")).to_be_visible()
    screenshot(page, "admin-notifications-es")
    page.get_by_role("button", name="Salir").click()
    expect(page.get_by_role("button", name="Entrar")).to_be_visible()


def test_manual_order_invitation_categories_and_resend(page: Page, system: System,
                                                      smtp: SmtpSink) -> None:
    tag = uuid.uuid4().hex[:6]
    email = f"phone-{tag}@example.com"
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete the category …?"
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)

    # A manual order, paid already (taken by phone, paid in cash).
    fill_manual_order(page, email, 3, ("Pablo", "Soto", "Rúa Nova 5", "Lugo", "27001"))
    expect(page.get_by_text("Total: €37.50")).to_be_visible()
    page.get_by_label("Payment method").select_option("cash")
    screenshot(page, "admin-manual-order")
    page.get_by_role("button", name="Create the order").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("paid")
    expect(page.locator("dl")).to_contain_text("admin")  # the channel
    # The order is in the language chosen on the form (the admin's, English): so are the
    # product titles that have an English one.
    expect(page.get_by_role("table", name="lines")).to_contain_text("Logo mug")

    # The customer the order made, invited to an account from their page.
    page.get_by_role("link", name=email).click()
    page.get_by_role("row", name=re.compile(email)).get_by_role("link").click()
    page.get_by_role("button", name="Invite").click()
    expect(page.get_by_role("status").first).to_have_text("Invitation sent.")
    expect(page.get_by_text("Account status: invited")).to_be_visible()
    wait_for(lambda: any("/activate?token=" in mail.text() for mail in smtp.to(email)),
             timeout=15, message="the invitation email")

    # A category renamed, then deleted.
    page.get_by_role("link", name="Customers", exact=True).click()
    page.get_by_label("New category").fill(f"Temp {tag}")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_role("button", name=f"Rename Temp {tag}").click()
    page.get_by_label("Category name").fill(f"Spain {tag}")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("button", name=f"Spain {tag}", exact=True)).to_be_visible()
    page.get_by_role("button", name=f"Delete Spain {tag}").click()
    expect(page.get_by_role("button", name=f"Spain {tag}", exact=True)).to_have_count(0)

    # An email sent again from the delivery log.
    page.get_by_role("link", name="Notifications", exact=True).click()
    page.get_by_label("Recipient").fill(email)
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table[aria-label=deliveries] tbody tr")
    expect(rows).to_have_count(3)  # confirmation, payment received, invitation
    expect(rows.first).to_contain_text("Invitation")
    rows.first.get_by_role("button", name="Resend").click()
    expect(page.get_by_text("Queued to send again.")).to_be_visible()
    expect(rows).to_have_count(4)
    smtp.wait_for_mail_to(email, count=4)
    screenshot(page, "admin-notifications-resent")


def fill_manual_order(page: Page, email: str, quantity: int,
                      address: tuple[str, str, str, str, str]) -> None:
    """The manual order form, from the order list: one line of the mug, shipped to address
    (first name, last name, street, city, postal code)."""
    page.get_by_role("link", name="Orders", exact=True).click()
    page.get_by_role("link", name="New manual order").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Product").select_option("MUG-LOGO")
    page.get_by_label("Quantity").fill(str(quantity))
    for label, value in zip(("First name", "Last name", "Address", "City", "Postal code"),
                            address, strict=True):
        page.get_by_label(label, exact=True).fill(value)


def test_staff_cannot_change_settings(page: Page, system: System) -> None:
    email = f"staff-{uuid.uuid4().hex[:6]}@shop.test"
    created = subprocess.run([str(BIN / "clientela"), "create-staff", email,
                              "--generate-password"], cwd=REPO, env=system.env,
                             capture_output=True, text=True, check=True)
    password = created.stdout.strip().rsplit(" ", 1)[-1]
    sign_in(page, system, email, password)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_text("Only the store owner can change these settings.")).to_be_visible()
    expect(page.locator("input[name=customer_accounts][value=optional]")).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    screenshot(page, "admin-settings-staff")

    # An expired access token: the page's parallel calls share one refresh (a refresh token
    # is single-use; presenting it twice would end the session) and the staff stays in.
    page.evaluate("Alpine.$data(document.body).token = 'expired'")
    page.get_by_role("link", name="Insights").click()
    expect(page.get_by_role("heading", name="Best customers by spend")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Best customers by spend")).to_be_visible()


def test_the_example_store_follows_the_login_option(
        page: Page, system: System, owner: dict[str, str], smtp: SmtpSink) -> None:
    # Disabled: no login anywhere, a guest checks out.
    set_login_option(system, owner, "disabled")
    page.goto(f"{system.url}/example-store/")
    expect(page.get_by_role("heading", name="Productos")).to_be_visible()
    expect(page.get_by_test_id("login-link")).to_have_count(0)
    screenshot(page, "store-catalogue")
    page.get_by_role("button", name="Añadir al carrito: Taza con logo").click()
    page.get_by_test_id("cart-link").click()
    email = f"guest-{uuid.uuid4().hex[:6]}@example.com"
    checkout(page, email)
    placed = page.get_by_test_id("order-placed")
    expect(placed).to_contain_text(re.compile(r"#\d+"))
    expect(page.get_by_test_id("account-offer")).to_be_hidden()
    screenshot(page, "store-order-placed")
    number = re.search(r"#\d+", placed.inner_text()).group(0)  # type: ignore[union-attr]
    orders = requests.get(system.api("/admin/orders"), params={"q": email}, headers=owner,
                          timeout=10).json()["items"]
    assert [o["number"] for o in orders] == [number]
    # The confirmation email's link opens the order on the store, no account needed.
    page.goto(link_in(smtp.wait_for_mail_to(email)[-1], "/orders/"))
    expect(page.get_by_role("heading", name=f"Pedido {number}")).to_be_visible()
    screenshot(page, "store-guest-order")

    # Optional: the login link shows, and a guest is offered an account after checkout.
    set_login_option(system, owner, "optional")
    page.goto(f"{system.url}/example-store/")
    expect(page.get_by_test_id("login-link")).to_be_visible()
    page.get_by_role("button", name="Añadir al carrito: Póster A2").click()
    page.get_by_test_id("cart-link").click()
    email = f"guest-{uuid.uuid4().hex[:6]}@example.com"
    checkout(page, email)
    expect(page.get_by_test_id("account-offer")).to_be_visible()
    screenshot(page, "store-account-offer")
    # The offer, accepted from the email: one password, and the order is in the account.
    page.goto(link_in(smtp.wait_for_mail_to(email)[-1], "/create-account?order="))
    page.get_by_label("Nueva contraseña").fill("guest turned customer 3")
    page.get_by_role("button", name="Crear mi cuenta").click()
    expect(page.get_by_role("heading", name="Hola, Lucía")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile(r"^#\d+$"))).to_have_count(1)
    page.get_by_role("button", name="Salir").click()

    # Required: the cart asks for a login before any checkout form.
    set_login_option(system, owner, "required")
    page.goto(f"{system.url}/example-store/")
    page.get_by_role("button", name="Añadir al carrito: Taza con logo").click()
    page.get_by_test_id("cart-link").click()
    expect(page.get_by_test_id("login-required")).to_be_visible()
    expect(page.get_by_role("button", name="Realizar pedido")).to_have_count(0)
    screenshot(page, "store-login-required")
    set_login_option(system, owner, "disabled")


def checkout(page: Page, email: str, submit: bool = True) -> None:
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Nombre", exact=True).fill(ADDRESS["first_name"])
    page.get_by_label("Apellidos").fill(ADDRESS["last_name"])
    page.get_by_label("Dirección", exact=True).fill(ADDRESS["line1"])
    page.get_by_label("Ciudad").fill(ADDRESS["city"])
    page.get_by_label("Código postal").fill(ADDRESS["postal_code"])
    screenshot(page, "store-checkout")
    if submit:
        page.get_by_role("button", name="Realizar pedido").click()


def test_a_customer_registers_and_resets_a_password_on_the_example_store(
        page: Page, system: System, owner: dict[str, str], smtp: SmtpSink) -> None:
    """The links in the emails lead to the example store's pages (STOREFRONT_URL), which do
    the rest: confirm the email, set a new password."""
    set_login_option(system, owner, "optional")
    email = f"shopper-{uuid.uuid4().hex[:6]}@example.com"
    page.goto(f"{system.url}/example-store/register")
    page.get_by_label("Nombre", exact=True).fill("Marta")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Contraseña").fill("first password 1")
    page.get_by_role("button", name="Crear una cuenta").click()
    expect(page.get_by_role("status")).to_contain_text("Revisa tu correo")
    page.goto(link_in(smtp.wait_for_mail_to(email)[-1], "/verify-email?token="))
    page.get_by_label("Contraseña").fill("first password 1")  # whoever holds the inbox sets it
    page.get_by_role("button", name="Confirmar mi correo").click()
    expect(page.get_by_role("heading", name="Hola, Marta")).to_be_visible()

    page.goto(f"{system.url}/example-store/login")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Contraseña").fill("first password 1")
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("heading", name="Hola, Marta")).to_be_visible()
    page.get_by_role("button", name="Añadir dirección").click()
    new_address = page.get_by_role("form", name="Nueva dirección")
    new_address.get_by_label("Nombre", exact=True).fill("Marta")
    new_address.get_by_label("Apellidos").fill("Gil")
    new_address.get_by_label("Dirección", exact=True).fill("Calle Sol 9")
    new_address.get_by_label("Ciudad").fill("Cádiz")
    new_address.get_by_label("Código postal").fill("11001")
    new_address.get_by_role("button", name="Añadir dirección").click()
    expect(page.locator("address")).to_contain_text("Calle Sol 9")

    # Checked out while logged in: the form starts from the account and its address, and the
    # order shows in the customer area.
    page.get_by_role("link", name="Productos").click()
    page.get_by_role("button", name="Añadir al carrito: Taza con logo").click()
    page.get_by_test_id("cart-link").click()
    expect(page.get_by_label("Correo electrónico")).to_have_value(email)
    expect(page.get_by_label("Dirección", exact=True)).to_have_value("Calle Sol 9")
    page.get_by_role("button", name="Realizar pedido").click()
    number = re.search(r"#\d+", page.get_by_test_id("order-placed").inner_text())
    assert number
    page.get_by_role("link", name="Mi cuenta").click()
    expect(page.get_by_role("cell", name=number.group(0), exact=True)).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(number.group(0)))).to_contain_text(
        "pendiente de pago")
    screenshot(page, "store-account")

    # The profile edited and the password changed from the customer area.
    profile = page.locator("form[aria-labelledby=profile-title]")
    profile.get_by_label("Apellidos").fill("Gil Ruiz")
    profile.get_by_label("Teléfono").fill("+34 600 111 222")
    profile.get_by_role("button", name="Guardar").click()
    expect(page.get_by_role("status")).to_have_text("Guardado.")
    passwords = page.locator("form[aria-labelledby=password-title]")
    passwords.get_by_label("Contraseña actual").fill("first password 1")
    passwords.get_by_label("Nueva contraseña").fill("changed password 3")
    passwords.get_by_role("button", name="Cambiar la contraseña").click()
    expect(page.get_by_role("status")).to_have_text("Contraseña cambiada.")
    page.reload()
    expect(profile.get_by_label("Apellidos")).to_have_value("Gil Ruiz")
    expect(profile.get_by_label("Teléfono")).to_have_value("+34 600 111 222")
    assert requests.post(system.api("/auth/login"), timeout=10, json={
        "email": email, "password": "changed password 3"}).status_code == 200

    # One of the orders, opened from the list.
    page.get_by_role("link", name=number.group(0), exact=True).click()
    expect(page.get_by_role("heading", name=f"Pedido {number.group(0)}")).to_be_visible()
    expect(page.get_by_text("Estado: pendiente de pago")).to_be_visible()
    page.get_by_role("link", name="Mi cuenta").click()
    page.get_by_role("button", name="Salir").click()
    expect(page.get_by_test_id("login-link")).to_be_visible()

    sent = len(smtp.to(email))
    page.goto(f"{system.url}/example-store/forgot-password")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_role("button", name="Envíame un enlace").click()
    expect(page.get_by_role("status")).to_contain_text("el enlace va de camino")
    page.goto(link_in(smtp.wait_for_mail_to(email, count=sent + 1)[-1],
                      "/reset-password?token="))
    page.get_by_label("Nueva contraseña").fill("second password 2")
    page.get_by_role("button", name="Guardar contraseña").click()
    expect(page.get_by_role("status")).to_contain_text("Contraseña guardada")
    login = requests.post(system.api("/auth/login"), timeout=10,
                          json={"email": email, "password": "second password 2"})
    assert login.status_code == 200, login.text
    set_login_option(system, owner, "disabled")


def link_in(mail: Any, marker: str) -> str:
    match = re.search(r"(http://\S+" + re.escape(marker) + r"\S+)", mail.text())
    assert match, mail.text()
    return match.group(1)


def test_the_customer_list_filters_sorts_pages_and_runs_account_actions(
        page: Page, system: System, owner: dict[str, str], smtp: SmtpSink) -> None:
    tag = uuid.uuid4().hex[:6]
    set_login_option(system, owner, "disabled")
    spain, portugal = f"list-es-{tag}@example.com", f"list-pt-{tag}@example.com"
    guest_order(system, spain)
    guest_order(system, spain)
    guest_order(system, portugal, city="Porto", postal_code="4000-001", country="PT")
    for n in range(23):
        created = requests.post(system.api("/admin/customers"), headers=owner, timeout=10,
                                json={"email": f"list-{n:02d}-{tag}@example.com"})
        assert created.status_code == 201, created.text
    # One registered account, waiting for the merchant's approval.
    set_login_option(system, owner, "required", require_approval=True)
    member = f"list-member-{tag}@example.com"
    registered = requests.post(system.api("/customers"), timeout=10, json={
        "email": member, "password": "member password 12", "first_name": "Nuria"})
    assert registered.status_code == 202, registered.text

    def listed() -> bool:
        found = requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                             params={"q": tag, "limit": 100}).json()["items"]
        counts = {c["email"]: c["orders_count"] for c in found}
        return len(found) == 26 and counts.get(spain) == 2 and member in counts

    wait_for(listed, timeout=20, message="the 26 customers with their orders")

    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)
    rows = page.locator("table[aria-label=customers] tbody tr")
    page.get_by_label("Search").fill(tag)
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("26 results")).to_be_visible()
    expect(rows).to_have_count(25)
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(25)

    # Sorted by orders, most first; a second click turns it round.
    page.get_by_role("button", name="Orders").click()
    expect(rows.nth(0)).to_contain_text(spain)
    expect(rows.nth(1)).to_contain_text(portugal)
    page.get_by_role("button", name=re.compile("^Orders ▼")).click()
    expect(page.get_by_role("button", name=re.compile("^Orders ▲"))).to_be_visible()
    expect(rows.nth(0)).not_to_contain_text(spain)
    expect(rows.last).to_contain_text(portugal)  # and Spain, with 2, first on the next page

    # Filters: the country, then registered customers only, then accounts.
    page.get_by_label("Country").fill("PT")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(portugal)
    page.get_by_label("Country").fill("")
    page.get_by_label("Type").select_option("registered")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(member)
    expect(rows.first).to_contain_text("waiting for approval")
    page.get_by_label("Type").select_option("guest")
    expect(page.get_by_text("25 results")).to_be_visible()
    page.get_by_label("Type").select_option("")
    page.get_by_label("Has account").select_option("true")
    expect(rows).to_have_count(1)
    screenshot(page, "admin-customers-filtered")

    # The account: approved, disabled (login refused), enabled again.
    rows.first.get_by_role("link").click()
    expect(page.get_by_text("Account status: waiting for approval")).to_be_visible()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("Account status: active")).to_be_visible()

    def login() -> int:
        return requests.post(system.api("/auth/login"), timeout=10, json={
            "email": member, "password": "member password 12"}).status_code

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_text("Account status: disabled")).to_be_visible()
    assert login() in (401, 403)
    page.get_by_role("button", name="Enable").click()
    expect(page.get_by_text("Account status: active")).to_be_visible()
    assert login() == 200
    account = requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                           params={"q": member}).json()["items"][0]
    wait_for(lambda: requests.get(system.api(f"/admin/customers/{account['id']}"),
                                  headers=owner, timeout=10).json()["customer"][
        "account_status"] == "active", timeout=15, message="the record to hear of it")

    # The customer's data, downloaded as JSON.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export data").click()
    exported = download.value.path().read_text(encoding="utf-8")
    assert member in exported and download.value.suggested_filename.endswith(".json")

    # Erasure asks for the email typed out; then the person is gone and cannot log in.
    page.get_by_role("button", name="Erase", exact=True).click()
    confirm = page.get_by_role("button", name="Erase for good")
    expect(confirm).to_be_disabled()
    page.locator("form.danger-zone").get_by_label("Email").fill("someone@else.example")
    expect(confirm).to_be_disabled()
    page.locator("form.danger-zone").get_by_label("Email").fill(member.upper())
    screenshot(page, "admin-customer-erase")
    confirm.click()
    expect(page.get_by_role("status").first).to_have_text("Personal data erased.")
    expect(page.get_by_role("button", name="Erase", exact=True)).to_have_count(0)
    wait_for(lambda: login() == 401, timeout=15, message="the erased account to be gone")
    assert not requests.get(system.api("/admin/customers"), headers=owner, timeout=10,
                            params={"q": member}).json()["items"]
    set_login_option(system, owner, "disabled")


def test_an_order_page_notes_prints_cancels_and_recovers(
        page: Page, system: System, owner: dict[str, str], smtp: SmtpSink) -> None:
    set_login_option(system, owner, "disabled")
    email = f"cancel-{uuid.uuid4().hex[:6]}@example.com"
    order = guest_order(system, email)
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)

    # Found by the list's search and filters.
    page.get_by_role("link", name="Orders", exact=True).click()
    rows = page.locator("table[aria-label=orders] tbody tr")
    page.get_by_label("Search").fill(email)
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    page.get_by_label(re.compile("^Payment")).select_option("paid")
    expect(page.get_by_text("No orders match.")).to_be_visible()
    page.get_by_label(re.compile("^Payment")).select_option("pending")
    page.get_by_label(re.compile("^Status")).first.select_option("pending_payment")
    expect(rows).to_have_count(1)
    rows.first.get_by_role("link", name=order["number"]).click()

    # A note for the team, in the history.
    page.get_by_label("Note", exact=True).fill("Called: the customer pays on Monday")
    page.get_by_role("button", name="Add a note").click()
    expect(page.locator("ol.timeline")).to_contain_text("Called: the customer pays on Monday")

    # The printable order and the shipping label, as PDF downloads.
    number = order["number"].lstrip("#")
    for button, name in (("Print (PDF)", "order"), ("Shipping label (PDF)", "label")):
        with page.expect_download() as download:
            page.get_by_role("button", name=button).click()
        assert download.value.suggested_filename == f"{name}-{number}.pdf"
        pdf = PdfReader(io.BytesIO(download.value.path().read_bytes()))
        assert number in pdf.pages[0].extract_text()

    # Canceled with a reason the customer is told of; the stock comes back.
    stock_before = product_stock(system, owner, "MUG-LOGO")
    page.get_by_label("Reason").fill("The transfer never arrived")
    page.get_by_role("button", name="Cancel the order").click()
    expect(page.get_by_test_id("order-status")).to_have_text("canceled")
    expect(page.locator("ol.timeline")).to_contain_text("The transfer never arrived")
    expect(page.get_by_role("button", name="Cancel the order")).to_be_hidden()
    wait_for(lambda: any("The transfer never arrived" in mail.text()
                         for mail in smtp.to(email)), timeout=20,
             message="the cancellation email, with the reason")
    if stock_before is not None:
        assert product_stock(system, owner, "MUG-LOGO") == stock_before + 1

    # Its recovery link, copied from the page, brings the order back into a cart.
    page.get_by_role("button", name="Get the link").click()
    link = page.get_by_label("Recovery link")
    expect(link).to_have_value(re.compile(r"/example-store/recover/\S+"))
    screenshot(page, "admin-order-canceled")
    page.goto(link.input_value())
    expect(page.get_by_text(f"Tu pedido anterior {order['number']}")).to_be_visible()
    expect(page.get_by_text("Taza con logo").first).to_be_visible()
    screenshot(page, "store-recovered-cart")


def test_a_manual_order_with_a_payment_link(page: Page, system: System,
                                            smtp: SmtpSink) -> None:
    email = f"link-{uuid.uuid4().hex[:6]}@example.com"
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)
    fill_manual_order(page, email, 1, ("Rosa", "Vidal", "Carrer Gran 8", "Girona", "17001"))
    page.get_by_label("Payment method").select_option("card")
    page.get_by_label("Send the customer a payment link").check()
    page.get_by_role("button", name="Create the order").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("pending")
    link = page.get_by_label("Payment link", exact=True)
    expect(link).to_have_value(re.compile(r"/example-store/orders/\S+\?token=\S+"))
    screenshot(page, "admin-order-payment-link")
    url = link.input_value()
    # The same link is in the customer's email, and opens the order on the store.
    wait_for(lambda: any(url in mail.text() for mail in smtp.to(email)), timeout=20,
             message="the payment link email")
    number = page.get_by_role("heading", name=re.compile(r"^Order #\d+")).inner_text()
    number = number.split()[-1]
    # The link opens the order on the store and goes on to the payment page (the test
    # provider's, as in `make run`); paying there brings the customer back to the store.
    page.goto(url)  # the page speaks the order's language: the admin's, English here
    expect(page.get_by_role("heading", name=f"Pay order {number}")).to_be_visible()
    screenshot(page, "test-provider-payment-page")
    page.get_by_role("button", name="Pay", exact=True).click()
    expect(page.get_by_test_id("payment-return")).to_contain_text("estamos confirmando tu pago")
    order = requests.get(system.api("/admin/orders"), params={"q": email},
                         headers=admin_headers(system), timeout=10).json()["items"][0]
    assert (order["number"], order["payment_status"], order["status"]) == (number, "paid",
                                                                          "paid")


def admin_headers(system: System) -> dict[str, str]:
    token = requests.post(system.api("/admin/auth/login"), timeout=10, json={
        "email": OWNER_EMAIL, "password": OWNER_PASSWORD}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_card_checkout_with_billing_details_paid_then_refunded_in_part(
        page: Page, system: System, owner: dict[str, str], smtp: SmtpSink) -> None:
    email = f"card-{uuid.uuid4().hex[:6]}@example.com"
    page.goto(f"{system.url}/example-store/")
    page.get_by_role("button", name="Añadir al carrito: Taza con logo").click()
    page.get_by_test_id("cart-link").click()
    checkout(page, email, submit=False)
    page.get_by_label("Datos de facturación distintos (factura)").check()
    billing = page.get_by_test_id("billing-address")
    billing.get_by_label("Empresa").fill("Pardo Hermanos SL")
    billing.get_by_label("NIF/CIF").fill("B87654321")
    billing.get_by_label("Nombre", exact=True).fill("Lucía")
    billing.get_by_label("Apellidos").fill("Pardo")
    billing.get_by_label("Dirección", exact=True).fill("Avenida Sol 10")
    billing.get_by_label("Ciudad").fill("Cádiz")
    billing.get_by_label("País").fill("ES")
    page.locator("select[name=payment_method]").select_option("card")
    screenshot(page, "store-checkout-billing")
    page.get_by_role("button", name="Realizar pedido").click()
    # Straight to the provider's page; Decline first, then pay from the email's link.
    expect(page.get_by_role("button", name="Rechazar")).to_be_visible()
    page.get_by_role("button", name="Rechazar").click()
    expect(page.get_by_test_id("payment-return")).to_contain_text("El pago no se completó")
    order = requests.get(system.api("/admin/orders"), params={"q": email}, headers=owner,
                         timeout=10).json()["items"][0]
    assert order["payment_status"] == "pending"
    detail = requests.get(system.api(f"/admin/orders/{order['id']}"), headers=owner,
                          timeout=10).json()
    assert detail["billing_address"]["tax_id"] == "B87654321"
    assert detail["billing_address"]["company"] == "Pardo Hermanos SL"

    # The confirmation email's card link: the store opens the order and the payment page.
    mail = smtp.wait_for_mail_to(email)[0]
    pay_url = re.search(r"(http://\S+/orders/\S+pay=1)", mail.text()).group(1)
    page.goto(pay_url)
    page.get_by_role("button", name="Pagar").click()
    expect(page.get_by_test_id("payment-return")).to_be_visible()
    # The confirmation, then the payment's email: two in all (the decline sends none).
    mails = smtp.wait_for_mail_to(email, count=2)
    assert mails[0].subject.startswith("Hemos recibido tu pedido")
    assert mails[1].subject.startswith("Pago recibido del pedido")
    time.sleep(1)
    assert len(smtp.to(email)) == 2

    # The merchant sees it paid by the provider, with the billing block, and refunds 5,00.
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)
    page.goto(f"{system.url}/admin/#/orders/{order['id']}")
    expect(page.get_by_test_id("payment-status")).to_have_text("paid")
    expect(page.get_by_test_id("billing-address")).to_contain_text("B87654321")
    expect(page.locator("ol.timeline")).to_contain_text("provider:test")
    refund = page.get_by_test_id("refund-form")
    refund.get_by_label(re.compile("^Amount")).fill("5,00")
    refund.get_by_label("Comment").fill("Chipped handle")
    screenshot(page, "admin-refund-form")
    refund.get_by_role("button", name="Refund").click()
    expect(page.get_by_test_id("payment-status")).to_have_text("partially refunded")
    stored = requests.get(system.api(f"/admin/orders/{order['id']}"), headers=owner,
                          timeout=10).json()
    assert (stored["refunded_total"], stored["refunds"][0]["provider"]) == (500, "test")


def product_stock(system: System, owner: dict[str, str], sku: str) -> int | None:
    products = requests.get(system.api("/admin/products"), headers=owner, timeout=10).json()
    return next(p["stock"] for p in products["items"] if p["sku"] == sku)


def test_category_prices_from_the_admins_pricing_tab_to_the_stores_three_displays(
        page: Page, system: System, owner: dict[str, str], smtp: SmtpSink,
        tmp_path: Any) -> None:
    from tests.e2e.test_accounts import GOOD_PASSWORD, registered_account

    set_login_option(system, owner, "optional")
    name = f"Mayorista {uuid.uuid4().hex[:4]}"
    category = requests.post(system.api("/admin/categories"), headers=owner, timeout=10,
                             json={"name": name}).json()["id"]
    email, _ = registered_account(system, smtp)
    member = customer_id_for(system, owner, email)
    requests.put(system.api(f"/admin/categories/{category}/customers/{member}"),
                 headers=owner, timeout=10)

    # The merchant: the category's pricing tab, a discount and a price list from a CSV.
    sign_in(page, system, OWNER_EMAIL, OWNER_PASSWORD)
    page.get_by_role("button", name=name, exact=True).click()
    tab = page.get_by_test_id("pricing-tab")
    tab.get_by_label("Discount (%)").fill("20")
    csv_file = tmp_path / "prices.csv"
    csv_file.write_text("sku,price\nEBOOK-RECIPES,7.00\n")
    tab.locator("input[name=prices_csv]").set_input_files(str(csv_file))
    expect(tab).to_contain_text("1 prices read")
    screenshot(page, "admin-category-pricing")
    tab.get_by_role("button", name="Save").click()
    expect(tab.get_by_role("status")).to_have_text("Saved.")
    listed = requests.get(system.api(f"/admin/categories/{category}/prices"), headers=owner,
                          timeout=10).json()["prices"]
    assert [(p["sku"], p["price"]) for p in listed] == [("EBOOK-RECIPES", 700)]
    terms = requests.get(system.api(f"/admin/categories/{category}/pricing"), headers=owner,
                         timeout=10).json()
    assert terms["discount_percent"] == 20

    # The member on the store: their price, the list price struck through.
    page.goto(f"{system.url}/example-store/login")
    page.get_by_label("Correo electrónico").fill(email)
    page.get_by_label("Contraseña").fill(GOOD_PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page).to_have_url(re.compile(r"/example-store/account"))
    page.goto(f"{system.url}/example-store/")
    ebook = page.locator("li.product", has_text="Ebook de recetas")
    expect(ebook.get_by_test_id("list-price")).to_have_text(re.compile(r"9,00"))
    expect(ebook.get_by_test_id("price")).to_contain_text("7,00")
    screenshot(page, "store-member-prices")

    # Hidden prices for the category: "contact us to order", no button.
    requests.put(system.api(f"/admin/categories/{category}/pricing"), headers=owner,
                 json={"price_display": "hidden"}, timeout=10)
    page.reload()
    expect(ebook.get_by_test_id("no-price")).to_contain_text("contacta con nosotros")
    expect(ebook.get_by_role("button")).to_be_hidden()
    page.get_by_role("button", name="Salir").click()

    # Prices for logged-in customers only: a visitor is asked to log in.
    requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                 json={"prices_visible": "logged_in"})
    time.sleep(1.2)
    try:
        page.goto(f"{system.url}/example-store/")
        expect(ebook.get_by_test_id("no-price")).to_contain_text("Entra para ver los precios")
        screenshot(page, "store-login-to-see-prices")
    finally:
        requests.put(system.api("/admin/settings"), headers=owner, timeout=10,
                     json={"prices_visible": "everyone"})
        set_login_option(system, owner, "disabled")
