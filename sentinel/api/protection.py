"""
Protection pause: GET /api/protection, POST /api/protection/pause (for N
minutes or seconds, or until resumed), DELETE /api/protection/pause
(resume).  The pause is a synced setting, so it holds on every node; it
expires by itself (the policy engine swaps snapshots at the end time).  A
new pause replaces the one in force.  L{PauseClock} (``pauses``) keeps its
length when this node's clock steps.
"""

from sentinel.api.base import endpoint
from sentinel.filtering import settings

STATE = {
    "type": "object",
    "required": ["enabled", "paused", "until", "remaining_seconds"],
    "properties": {
        "enabled": {"type": "boolean", "description": "filtering is active"},
        "paused": {"type": "boolean"},
        "until": {"type": ["number", "null"],
                  "description": "end of the pause; null while enabled or paused until resumed"},
        "remaining_seconds": {"type": ["number", "null"]},
    },
}
PAUSE = {
    "type": "object",
    "additionalProperties": False,
    "description": "Give minutes or seconds; neither pauses until resumed.",
    "properties": {
        "minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 525600},
        "seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 31536000},
    },
    "not": {"required": ["minutes", "seconds"]},
}


class ProtectionApi:
    def __init__(self, store, clock, pauses=None):
        self.store = store
        self.clock = clock
        self.pauses = pauses  # PauseClock: told of each end this process stores

    async def _store(self, paused, until):
        await self.store.put("setting", settings.PROTECTION, {"paused": paused, "until": until})
        if self.pauses is not None:
            self.pauses.wrote(until)

    async def _state(self):
        entity = await self.store.get("setting", settings.PROTECTION)
        now = self.clock.seconds()
        until = settings.paused_until(entity.data if entity else None, now)
        if until is None:
            return {"enabled": True, "paused": False, "until": None, "remaining_seconds": None}
        finite = until != float("inf")
        return {"enabled": False, "paused": True, "until": until if finite else None,
                "remaining_seconds": round(until - now, 3) if finite else None}

    @endpoint("GET", "/api/protection", tag="protection", summary="Is filtering paused?",
              response=STATE)
    async def get_protection(self, call):
        return await self._state()

    @endpoint("POST", "/api/protection/pause", tag="protection", body=PAUSE, response=STATE,
              summary="Pause filtering for every client, for a while or until resumed",
              errors=(400,))
    async def pause(self, call):
        seconds = call.body.get("seconds")
        if "minutes" in call.body:
            seconds = call.body["minutes"] * 60
        until = None if seconds is None else self.clock.seconds() + seconds
        await self._store(True, until)
        return await self._state()

    @endpoint("DELETE", "/api/protection/pause", tag="protection", response=STATE,
              summary="Resume filtering now")
    async def resume(self, call):
        await self._store(False, None)
        return await self._state()
