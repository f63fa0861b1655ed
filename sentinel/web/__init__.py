"""The web UI: static assets (package data in ``static/``) and the resource serving them."""

from sentinel.web.resource import WebUI

__all__ = ["WebUI"]
