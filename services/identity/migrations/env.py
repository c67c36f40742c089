from messaging.migrations import run_alembic_env
from services.identity.models import Base

run_alembic_env(Base.metadata)
