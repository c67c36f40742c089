"""Customers service: thin nameko entrypoints over the domain rules."""

from __future__ import annotations

from typing import Any

from nameko.rpc import rpc
from sqlalchemy import select

from messaging.consumer import consume_event
from messaging.contracts import CUSTOMER_CREATED, ORDER_PLACED, load_payload
from messaging.envelope import Envelope
from messaging.errors import ServiceError
from messaging.health import HealthEndpoints
from messaging.logs import LogContext
from messaging.outbox import emit
from services.customers import domain
from services.customers.dependencies import customers_database
from services.customers.models import Customer, CustomerSpend
from services.customers.schemas import CustomerSchema


class CustomersService(HealthEndpoints):
    name = "customers"

    db = customers_database()
    log_context = LogContext()

    @rpc
    def get_customer_by_email(self, email: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            customer = session.scalars(
                select(Customer).where(Customer.email == domain.normalise_email(email))
            ).first()
            if customer is None:
                raise ServiceError("customer_not_found", "No such customer.", 404)
            return CustomerSchema().dump(customer)

    @consume_event("orders", ORDER_PLACED)
    def handle_order_placed(self, envelope: Envelope) -> None:
        order = load_payload(envelope)
        with self.db.transaction() as session:
            if self.db.already_processed(session, envelope):
                return
            email = domain.normalise_email(order["email"])
            customer = session.scalars(
                select(Customer).where(Customer.email == email).with_for_update()
            ).first()
            created = customer is None
            if created:
                customer = Customer(email=email, type="guest", orders_count=0)
                if order["customer_id"]:
                    customer.id = order["customer_id"]
                session.add(customer)
            domain.apply_order_placed(customer, order)
            session.flush()
            spend = session.get(CustomerSpend, (customer.id, order["currency"]))
            if spend is None:
                session.add(CustomerSpend(customer_id=customer.id, currency=order["currency"],
                                          amount=order["total"]))
            else:
                spend.amount += order["total"]
            if created:
                emit(session, CUSTOMER_CREATED, {
                    "customer_id": customer.id, "email": customer.email, "type": customer.type,
                    "first_name": customer.first_name, "last_name": customer.last_name,
                })
