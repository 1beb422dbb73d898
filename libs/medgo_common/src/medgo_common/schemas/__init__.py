"""Wire schemas shared across services (one source of truth per concept)."""
