"""What the follower's sync client reports (status page, readiness), and
the one-line message the status page and the UI show for a node's state."""

import attr

FAILOVER_MESSAGE = ("failover active: leader unreachable. This follower owns the VIP and "
                    "serves DNS with its last configuration; it stays read-only.")
STANDBY_MESSAGE = ("standby: this node is the configured leader but keepalived made it "
                   "backup (role file says follower); leader-only services are stopped.")


def node_message(configured, override, sync):
    """The plain-words state of a node (None when all is normal)."""
    if configured == "follower" and override == "leader":
        return FAILOVER_MESSAGE
    if configured == "leader" and override == "follower":
        return STANDBY_MESSAGE
    if configured == "standalone" and override:
        return "The role file is ignored: this node is not in a cluster."
    if configured == "follower" and sync.last_error and sync.failures:
        return sync.last_error["message"]
    return None


class SyncError(Exception):
    """
    A failed sync, with a code the status page shows: LEADER_UNREACHABLE,
    TIMEOUT, BAD_SIGNATURE, EXPIRED, REPLAYED, NOT_LEADER, SELF,
    BAD_PAYLOAD, BAD_BLOB, BLOB_MISSING, LEADER_BEHIND, STORE_UNAVAILABLE, ...
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


@attr.s(auto_attribs=True)
class SyncStatus:
    running: bool = False
    idle: bool = False  # running, but nothing to follow (not a configured follower)
    last_attempt: float = None
    last_success: float = None
    last_error: dict = None  # {"code", "message", "at"}
    failures: int = 0  # consecutive
    syncs: int = 0
    applies: int = 0
    last_duration_ms: float = None  # decode + download + apply of the last answer
    last_bytes: int = None  # size of the last answer
    bytes_total: int = 0
    leader_id: str = None
    leader_history: str = None
    leader_revision: int = None
    last_apply: dict = None  # {"at", "mode", "counts", "localRevision", ...}

    def succeeded(self, batch, applied, size, now, duration_ms):
        self.last_success = now
        self.failures = 0
        self.syncs += 1
        self.last_bytes = size
        self.bytes_total += size
        self.last_duration_ms = round(duration_ms, 3)
        self.leader_id = batch.leader
        self.leader_history = batch.history
        self.leader_revision = batch.revision
        if applied is not None and applied.changed:
            self.applies += 1
            self.last_apply = {
                "at": now, "mode": applied.mode, "counts": applied.counts,
                "localRevision": applied.local_revision, "blobsAdded": applied.blobs_added,
                "blobsRemoved": applied.blobs_removed, "idsReserved": applied.ids_reserved,
                "localSessionsEnded": applied.local_sessions_ended,
            }

    def failed(self, error, now):
        self.failures += 1
        self.last_error = {"code": error.code, "message": error.message, "at": now}

    def fresh(self, now, window):
        return self.last_success is not None and now - self.last_success <= window
