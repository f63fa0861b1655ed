"""Web UI tests: the static resource, and browser tests (Playwright + Chromium)."""
