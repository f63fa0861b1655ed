"""
This node's cluster membership: node-local state in the store's
``node_state`` (never synced), cached in memory once loaded.

    cluster.node_id      this node's id (random, created once)
    cluster.history      id of this database's revision history (random,
                         created once): a follower that sees another
                         history than the one it holds resyncs in full
    cluster.membership   {"role", "leaderUrl", "secret" (sealed under the
                         node key), "since"}
    cluster.sync         the leader position this node holds (plan.MARKER),
                         written in the same transaction as the data
"""

import base64
import os

import attr

from sentinel.crypto import DecryptError
from sentinel.cluster.codec import new_history_id
from sentinel.cluster.plan import MARKER
from sentinel.cluster.roles import FOLLOWER, LEADER, ROLES, STANDALONE
from sentinel.cluster.signing import ClusterKeys

K_NODE, K_HISTORY, K_MEMBERSHIP = "cluster.node_id", "cluster.history", "cluster.membership"
SECRET_AAD = "cluster:secret"


@attr.s(frozen=True, auto_attribs=True, repr=False)
class Membership:
    role: str = STANDALONE
    leader_url: str = None
    secret: bytes = None
    since: float = None

    def __repr__(self):
        return f"<Membership {self.role} {self.leader_url}>"


class ClusterState:
    def __init__(self, store, box, clock):
        self._store = store
        self._box = box
        self._clock = clock
        self.loaded = False
        self.node_id = None
        self.history = None
        self.membership = Membership()
        self.keys = None
        self.epoch = 0  # bumped on every membership change
        self.problem = None  # why the stored membership could not be used
        self._listeners = []

    def listen(self, fn):
        """fn(membership) after it is loaded and after every change."""
        self._listeners.append(fn)

    @property
    def box(self):
        """The node key's SecretBox (for other node-local sealed values)."""
        return self._box

    @property
    def role(self):
        return self.membership.role

    @property
    def read_only(self):
        """
        True on a configured follower (also while it owns the VIP): its
        configuration comes from the leader only.  (Leader-only services
        never run on one; see L{sentinel.cluster.roles}.)
        """
        return self.membership.role == FOLLOWER

    async def load(self):
        async def body(ctx):
            node = await ctx.get_local(K_NODE)
            if not node:
                node = os.urandom(8).hex()
                await ctx.set_local(K_NODE, node)
            history = await ctx.get_local(K_HISTORY)
            if not history:
                history = new_history_id()
                await ctx.set_local(K_HISTORY, history)
            return node, history, await ctx.get_local(K_MEMBERSHIP)

        self.node_id, self.history, stored = await self._store.transact(body)
        self._use(self._decode(stored))
        self.loaded = True
        self._notify()

    def _decode(self, stored):
        if not isinstance(stored, dict) or stored.get("role") not in ROLES:
            return Membership()
        secret = None
        if stored.get("secret"):
            try:
                secret = base64.b64decode(self._box.decrypt_text(stored["secret"], SECRET_AAD))
            except (DecryptError, ValueError, TypeError):
                # Keep the role: a follower stays read-only (and not ready,
                # it cannot sync) instead of becoming a writable standalone
                # node; a leader's followers fail to authenticate.
                self.problem = ("the cluster secret cannot be decrypted with this node's key "
                                "(node.key replaced?): " + (
                                    "enable the leader again and join its followers again"
                                    if stored["role"] == LEADER else "join the cluster again"))
        return Membership(stored["role"], stored.get("leaderUrl"), secret, stored.get("since"))

    def _use(self, membership):
        self.membership = membership
        self.keys = (ClusterKeys.from_secret(membership.secret)
                     if membership.secret and len(membership.secret) == 32 else None)
        self.epoch += 1

    def _notify(self):
        for fn in list(self._listeners):
            fn(self.membership)

    async def save(self, membership):
        """Persist a new membership.  A new follower membership forgets the
        sync position, so its first sync is a full one (diff and converge)."""
        stored = {"role": membership.role, "leaderUrl": membership.leader_url,
                  "since": membership.since, "secret": None}
        if membership.secret:
            stored["secret"] = self._box.encrypt_text(
                base64.b64encode(membership.secret).decode("ascii"), SECRET_AAD)

        async def body(ctx):
            await ctx.set_local(K_MEMBERSHIP, stored)
            if membership.role != FOLLOWER or self.membership.role != FOLLOWER or \
                    membership.leader_url != self.membership.leader_url or \
                    membership.secret != self.membership.secret:
                await ctx.delete_local(MARKER)

        await self._store.transact(body)
        self.problem = None
        self._use(membership)
        self._notify()

    async def enable_leader(self, leader_url, new_secret):
        # Keep the secret this node already shares (as leader, or as a
        # follower being promoted): the other members stay joined and, with
        # the VIP as leader URL, simply resync from the new leader.
        await self.save(Membership(LEADER, leader_url, self.membership.secret or new_secret(),
                                   self._clock.seconds()))

    async def join(self, leader_url, secret):
        await self.save(Membership(FOLLOWER, leader_url, secret, self._clock.seconds()))

    async def leave(self):
        await self.save(Membership(STANDALONE, None, None, self._clock.seconds()))
