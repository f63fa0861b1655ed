"""
VIP failover: HA settings (model), keepalived.conf rendering, and the
keepalived sidecar (``sentinel-keepalived``) with its helpers.  Keep this
file empty of imports: keepalived runs L{sentinel.ha.check} every second.
"""
