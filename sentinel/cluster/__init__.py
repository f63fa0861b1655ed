"""
Cluster: roles (configured + role-file override, one state machine),
signed incremental configuration sync from the leader to followers, the
read-only guard and readiness.  See docs/CLUSTER.md.
"""
