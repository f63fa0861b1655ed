"""Tests of the admin HTTP API (sentinel.api, sentinel.auth)."""
