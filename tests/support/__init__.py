"""Test helpers shared by the suites (daemons, ports, PostgreSQL)."""
