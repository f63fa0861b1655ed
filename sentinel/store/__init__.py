"""Persistent storage: SQLite (embedded default) or PostgreSQL."""

from sentinel.store.database import StoreUnavailable
from sentinel.store.entities import Changes, ConflictError, Entity
from sentinel.store.records import QueryLogFilter
from sentinel.store.store import Store

__all__ = ["Changes", "ConflictError", "Entity", "QueryLogFilter", "Store", "StoreUnavailable"]
