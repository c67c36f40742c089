"""A customer's address book (by account id) and what checkout is prefilled with."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from messaging.contracts.customers import AddressInputSchema, AddressSchemaOut, CustomersError
from messaging.database import Database
from messaging.errors import ServiceError, load_or_raise
from services.customers import domain
from services.customers.models import (
    Address,
    Customer,
)
from services.customers.records import (
    addresses_of,
    own_address,
    own_record,
)

log = logging.getLogger(__name__)


def list_addresses(db: Database, account_id: str) -> list[dict[str, Any]]:
    with db.transaction() as session:
        customer = own_record(session, account_id)
        return AddressSchemaOut(many=True).dump(addresses_of(session, customer.id))


def get_address(db: Database, account_id: str, address_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        customer = own_record(session, account_id)
        return AddressSchemaOut().dump(own_address(session, customer.id, address_id))


def add_address(db: Database, account_id: str, request: dict[str, Any]) -> dict[str, Any]:
    data = load_or_raise(AddressInputSchema(), request)
    with db.transaction() as session:
        customer = own_record(session, account_id, lock=True)
        addresses = addresses_of(session, customer.id)
        if len(addresses) >= domain.MAX_ADDRESSES:
            raise ServiceError(CustomersError.TOO_MANY_ADDRESSES,
                               f"An address book holds {domain.MAX_ADDRESSES} addresses; "
                               "delete one first.", 422)
        address = Address(customer_id=customer.id, default_shipping=False,
                          default_billing=False,
                          **{f: data[f] for f in domain.ADDRESS_FIELDS})
        session.add(address)
        addresses.append(address)
        domain.apply_defaults(addresses, address, data["default_shipping"],
                              data["default_billing"])
        session.flush()
        return AddressSchemaOut().dump(address)


def keep_checkout_address(session: Session, customer: Customer, address: dict[str, Any]
                          ) -> None:
    """The shipping address a logged-in customer asked at checkout to keep, added to their
    address book (in the transaction that records the order, so once). Not twice: the same
    address already there is kept as it is. A full book keeps the order, not the address."""
    if customer.account_id is None:  # a guest record has no address book
        return
    fields = {f: address.get(f) for f in domain.ADDRESS_FIELDS}
    addresses = addresses_of(session, customer.id)
    if any(all(getattr(saved, f) == value for f, value in fields.items())
           for saved in addresses):
        return
    if len(addresses) >= domain.MAX_ADDRESSES:
        log.info("checkout address not saved: the address book is full")
        return
    saved = Address(customer_id=customer.id, default_shipping=False, default_billing=False,
                    **fields)
    session.add(saved)
    addresses.append(saved)
    domain.apply_defaults(addresses, saved, None, None)  # the first is both defaults


def update_address(db: Database, account_id: str, address_id: str, request: dict[str, Any]
                   ) -> dict[str, Any]:
    data = load_or_raise(AddressInputSchema(partial=True), request)
    with db.transaction() as session:
        customer = own_record(session, account_id, lock=True)
        address = own_address(session, customer.id, address_id)
        for field in domain.ADDRESS_FIELDS:
            if field in data:
                setattr(address, field, data[field])
        domain.apply_defaults(addresses_of(session, customer.id), address,
                              data.get("default_shipping"), data.get("default_billing"))
        session.flush()
        return AddressSchemaOut().dump(address)


def delete_address(db: Database, account_id: str, address_id: str) -> None:
    with db.transaction() as session:
        customer = own_record(session, account_id, lock=True)
        session.delete(own_address(session, customer.id, address_id))


def checkout_prefill(db: Database, account_id: str) -> dict[str, Any]:
    """What a checkout form starts with: names, phone, default addresses."""
    with db.transaction() as session:
        customer = own_record(session, account_id)
        addresses = addresses_of(session, customer.id)
        shipping = next((a for a in addresses if a.default_shipping), None)
        billing = next((a for a in addresses if a.default_billing), None)
        return {
            "first_name": customer.first_name, "last_name": customer.last_name,
            "phone": customer.phone,
            "shipping_address": AddressSchemaOut().dump(shipping) if shipping else None,
            "billing_address": AddressSchemaOut().dump(billing) if billing else None,
        }
