"""Tests for VIP failover (sentinel.ha, sentinel.api.ha, deploy files)."""
