from messaging.migrations import run_alembic_env
from services.customers.models import Base

run_alembic_env(Base.metadata)
