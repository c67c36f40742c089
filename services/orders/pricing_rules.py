"""Pure pricing rules: a customer's price per category, order and cart lines priced from the
catalogue, and the limits a checkout is held to. No I/O: unit-tested in tests/test_pricing and
test_domain."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from messaging.contracts.orders import OrdersError
from messaging.errors import ServiceError

# Checkout limits (the merchant may change them): units of one product in one order, units
# in one order, and unpaid orders one email may hold stock with at once. A shopper's unpaid
# orders together never hold more of a product than one order may.
DEFAULT_CHECKOUT_LIMITS: dict[str, int] = {
    "max_units_per_product": 999,
    "max_units_per_order": 5000,
    "max_unpaid_orders_per_email": 5,
}


def checkout_limit_problems(quantities: Mapping[str, int], held_unpaid: Mapping[str, int],
                            unpaid_orders: int, limits: Mapping[str, int]
                            ) -> tuple[str, dict[str, Any]] | None:
    """Why a shopper's checkout of ``quantities`` (SKU lines merged) breaks the limits, given
    the units their unpaid orders already hold per SKU and how many unpaid orders they have:
    (code, errors), or None."""
    per_product = limits["max_units_per_product"]
    too_many = {sku: [f"at most {per_product} per order"]
                for sku, quantity in quantities.items() if quantity > per_product}
    if too_many:
        return OrdersError.QUANTITY_LIMIT, {"lines": too_many}
    if sum(quantities.values()) > limits["max_units_per_order"]:
        return OrdersError.QUANTITY_LIMIT, {"lines": [
            f"at most {limits['max_units_per_order']} units in one order"]}
    if unpaid_orders >= limits["max_unpaid_orders_per_email"]:
        return OrdersError.TOO_MANY_UNPAID_ORDERS, {"email": [
            f"{unpaid_orders} unpaid orders already hold stock: pay or cancel one first"]}
    held = {sku: [f"your unpaid orders already hold {held_unpaid[sku]}; at most "
                  f"{per_product} in all"]
            for sku, quantity in quantities.items()
            if held_unpaid.get(sku, 0) + quantity > per_product}
    if held:
        return OrdersError.UNPAID_LIMIT, {"lines": held}
    return None


CATALOGUE, HIDDEN = "catalogue", "hidden"  # where a price came from, besides a category


@dataclass(frozen=True)
class CategoryTerms:
    """What one category does to its members' prices."""

    category_id: str
    hidden: bool = False
    discount_percent: int = 0
    prices: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CustomerPrice:
    price: int | None  # None: hidden from this customer
    list_price: int  # the catalogue's
    source: str  # catalogue, hidden, or the category id the price comes from


def customer_price(sku: str, catalogue_price: int, terms: Iterable[CategoryTerms]
                   ) -> CustomerPrice:
    terms = list(terms)
    if any(t.hidden for t in terms):
        return CustomerPrice(None, catalogue_price, HIDDEN)
    best, source = catalogue_price, CATALOGUE
    discounted = [t for t in terms if t.discount_percent > 0]
    if discounted:
        biggest = max(discounted, key=lambda t: (t.discount_percent, t.category_id))
        # Rounded half up to the minor unit: 12.50 less 15% is 10.63, not 10.62.
        price = (catalogue_price * (100 - biggest.discount_percent) + 50) // 100
        if price < best:
            best, source = price, biggest.category_id
    for t in sorted(terms, key=lambda t: t.category_id):
        price = t.prices.get(sku)
        if price is not None and price < best:
            best, source = price, t.category_id
    return CustomerPrice(best, catalogue_price, source)


@dataclass(frozen=True)
class PricedLine:
    sku: str
    title: str
    quantity: int
    unit_price: int
    digital: bool
    list_price: int | None = None  # the catalogue price, when the customer's differs
    price_source: str = CATALOGUE

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


def merge_lines(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Quantities per SKU; the same SKU twice in a cart is one line."""
    merged: dict[str, int] = {}
    for line in lines:
        merged[line["sku"]] = merged.get(line["sku"], 0) + int(line["quantity"])
    return merged


def title_in(product: Any, locale: str | None) -> str:
    """The product's title in ``locale`` where the merchant gave one, else its own."""
    return ((product.titles or {}).get(locale) if locale else None) or product.title


def price_lines(quantities: Mapping[str, int], products: Mapping[str, Any],
                locale: str | None = None, terms: Iterable[CategoryTerms] = ()
                ) -> list[PricedLine]:
    """Price a cart from the catalogue and the customer's categories only; the client's idea
    of a price is never used. Titles are in ``locale`` where the product has one."""
    terms = list(terms)
    errors: dict[str, list[str]] = {}
    priced = []
    for sku, quantity in sorted(quantities.items()):
        product = products.get(sku)
        if product is None or not product.active:
            errors[sku] = ["unknown or unavailable product"]
            continue
        price = customer_price(sku, product.price, terms)
        if price.price is None:
            raise ServiceError(OrdersError.PRICES_HIDDEN,
                               "This store shows you no prices: contact it "
                               "to order.", 403)
        priced.append(PricedLine(sku, title_in(product, locale), quantity, price.price,
                                 product.digital,
                                 product.price if price.price != product.price else None,
                                 price.source))
    if errors:
        raise ServiceError(OrdersError.UNKNOWN_PRODUCT, "Some products are not for sale.", 422,
                           errors={"lines": errors})
    currencies = {products[line.sku].currency for line in priced}
    if len(currencies) > 1:
        raise ServiceError(OrdersError.MIXED_CURRENCIES,
                           "Products in one order must share a currency.",
                           422)
    return priced


def needs_shipping(lines: Iterable[PricedLine]) -> bool:
    return any(not line.digital for line in lines)


# carts -------------------------------------------------------------------------------------
# Why a cart line cannot be bought as it stands; None when it can.
LINE_ISSUES = ("unknown_product", "inactive", "prices_hidden", "out_of_stock", "insufficient_stock")


@dataclass(frozen=True)
class WantedLine:
    """A line as a cart, a link or an old order holds it: what and how many, and the price
    the shopper last saw (None: no price was shown yet)."""

    sku: str
    quantity: int
    price_seen: int | None = None
    title: str | None = None  # the title when ordered, for a product since removed


def price_cart(wanted: Iterable[WantedLine], products: Mapping[str, Any],
               terms: Iterable[CategoryTerms] = ()) -> dict[str, Any]:
    """A cart at today's prices (the customer's) and stock: every line kept, the ones that
    cannot be bought as they stand flagged with why (never silently dropped), a changed price
    shown with the old one. The subtotal counts the lines that can be bought."""
    terms = list(terms)
    lines = []
    for want in wanted:
        product = products.get(want.sku)
        issue = None
        price = customer_price(want.sku, product.price, terms) if product else None
        if product is None:
            issue = "unknown_product"
        elif not product.active:
            issue = "inactive"
        elif price is not None and price.price is None:
            issue = "prices_hidden"
        elif product.stock is not None and product.stock < want.quantity:
            issue = "out_of_stock" if product.stock == 0 else "insufficient_stock"
        unit_price = price.price if price else None
        lines.append({
            "sku": want.sku,
            "title": product.title if product else (want.title or want.sku),
            "quantity": want.quantity,
            "unit_price": unit_price,
            "line_total": unit_price * want.quantity if unit_price is not None else None,
            "currency": product.currency if product else None,
            "previous_unit_price": want.price_seen if (
                want.price_seen is not None and unit_price is not None
                and want.price_seen != unit_price) else None,
            "list_price": product.price if product and unit_price is not None
            and unit_price != product.price else None,
            "price_source": price.source if price else None,
            "available": issue is None,
            "issue": issue,
            "stock": product.stock if product else None,
        })
    buyable = [line for line in lines if line["available"]]
    currencies = sorted({line["currency"] for line in buyable})
    return {
        "lines": lines,
        "currency": currencies[0] if len(currencies) == 1 else None,
        "subtotal": sum(line["line_total"] for line in buyable),
        "item_count": sum(line["quantity"] for line in lines),
        "ready_for_checkout": bool(lines) and len(buyable) == len(lines)
        and len(currencies) == 1,
    }


def merge_carts(saved: Mapping[str, int], guest: Mapping[str, int],
                products: Mapping[str, Any], max_quantity: int
                ) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """A guest's cart merged into the saved one at login: quantities of the same product are
    added, then capped at the stock there is (and the per-line maximum). A line whose product
    is sold out keeps its quantity and is flagged when the cart is read, rather than vanishing.
    Returns the merged quantities and what was changed on the way, for the shopper to see."""
    merged = dict(saved)
    adjustments: list[dict[str, Any]] = []
    for sku, quantity in guest.items():
        product = products.get(sku)
        if product is None:
            adjustments.append({"sku": sku, "requested": quantity, "quantity": 0,
                                "reason": "unknown_product"})
            continue
        wanted = saved.get(sku, 0) + quantity
        cap = max_quantity if product.stock is None else min(max_quantity, product.stock)
        merged[sku] = min(wanted, cap) if cap > 0 else min(wanted, max_quantity)
        if merged[sku] != wanted:
            adjustments.append({"sku": sku, "requested": wanted, "quantity": merged[sku],
                                "reason": "capped_at_stock" if product.stock is not None
                                and product.stock < wanted else "capped_at_maximum"})
    return merged, adjustments
