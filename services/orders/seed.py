"""Demo catalogue for `make run`: a few products, added once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from messaging.database import create_engine_for, database_url
from services.orders.models import Product

DEMO_PRODUCTS = [
    {"sku": "TSHIRT-RED-M", "title": "Camiseta roja (M)", "titles": {"en": "Red T-shirt (M)"},
     "price": 1990, "currency": "EUR", "stock": 50, "digital": False},
    {"sku": "MUG-LOGO", "title": "Taza con logo", "titles": {"en": "Logo mug"},
     "price": 1250, "currency": "EUR", "stock": 20, "digital": False},
    {"sku": "POSTER-A2", "title": "Póster A2", "titles": {"en": "A2 poster"},
     "price": 1500, "currency": "EUR", "stock": 5, "digital": False},
    {"sku": "EBOOK-RECIPES", "title": "Ebook de recetas", "titles": {"en": "Recipe ebook"},
     "price": 900, "currency": "EUR", "stock": None, "digital": True},
]


def seed_demo_catalogue() -> int:
    engine = create_engine_for(database_url("ORDERS_DATABASE_URL", "orders.db"), pool_size=1)
    added = 0
    with Session(engine) as session, session.begin():
        for product in DEMO_PRODUCTS:
            if session.get(Product, product["sku"]) is None:
                session.add(Product(active=True, **product))
                added += 1
    engine.dispose()
    return added
