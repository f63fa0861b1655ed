"""
Sessions a follower wrote itself (logins on its own address, or during a
failover) are unknown to the leader, so the leader's "end every session of
this user" — a password change, or deleting the account — cannot reach
them.  The follower does it in the apply transaction: it remembers which
session keys came from the leader, and when a synced account changed its
password (or was deleted) it ends its own sessions of that account opened
before the change.  Sessions the leader still has (e.g. the one that
changed the password) are the leader's to end.

Only applies that touch sessions or accounts read or write anything here.
"""

SYNCED = "cluster.synced_sessions"  # node_state: session keys that came from the leader
SESSION, USER = "session", "user"


async def follow(ctx, mode, entities):
    """In the apply transaction, after the batch's puts and deletes.
    entities: the batch's WireEntities.  Returns how many local sessions
    were ended."""
    sessions = [e for e in entities if e.kind == SESSION]
    users = [e for e in entities if e.kind == USER]
    if mode == "full":
        # The follower is an exact copy now: its own sessions are gone.
        await ctx.set_local(SYNCED, sorted(e.key for e in sessions))
        return 0
    if not sessions and not users:
        return 0
    stored = await ctx.get_local(SYNCED)
    if isinstance(stored, list):
        synced = set(stored)
    else:  # from before this was tracked: take every session as synced
        synced = {e.key for e in await ctx.list(SESSION)}
    for e in sessions:
        (synced.discard if e.data is None else synced.add)(e.key)
    ended = 0
    for user in users:
        ended += await _end_local_sessions(ctx, user, synced)
    await ctx.set_local(SYNCED, sorted(synced))
    return ended


async def _end_local_sessions(ctx, user, synced):
    changed_at = (user.data or {}).get("password_changed_at") if user.data else None
    if user.data is not None and not isinstance(changed_at, (int, float)):
        return 0
    ended = 0
    for session in await ctx.list(SESSION):
        data = session.data if isinstance(session.data, dict) else {}
        name = data.get("username")
        if session.key in synced or not isinstance(name, str) or name.lower() != user.key:
            continue
        created = data.get("created_at")
        if user.data is None or not isinstance(created, (int, float)) or created < changed_at:
            await ctx.delete(SESSION, session.key)
            ended += 1
    return ended
