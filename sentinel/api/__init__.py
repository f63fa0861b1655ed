"""The admin HTTP API (Klein): areas, admission gate, one error handler."""
