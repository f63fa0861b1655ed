"""
Client schedules: which are active at a given instant, and when that can
next change.  Pure: ``now`` (epoch seconds) and the time zone are passed in.

A schedule is ``{"days": ["mon", ...], "start": "22:00", "end": "07:00",
...}`` in the configured time zone.  A window whose end is not after its
start runs past midnight (``22:00``-``07:00`` started on Monday ends on
Tuesday morning); ``start == end`` means 24 hours.  ``days`` name the day
the window starts on.  Times are ``HH:MM`` or ``HH:MM:SS``.

Around daylight-saving changes the wall-clock times are honoured as far as
they exist: a start inside a skipped hour begins when the clock jumps, a
window in a repeated hour uses its first occurrence.  That holds for gaps of
any length (Pacific/Apia skipped a whole day in 2011).

Without time zone data on the machine (no /usr/share/zoneinfo, no
``tzdata`` package) no IANA name can be loaded: L{fallback_zone} is UTC
then, so schedules keep working (in UTC) instead of stopping the policy.
"""

import os
import re
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class BadSchedule(ValueError):
    pass


def parse_time(text):
    m = _TIME.fullmatch(text or "")
    if m is None:
        raise BadSchedule(f"{text!r} is not a time of day (HH:MM or HH:MM:SS, 00:00-23:59)")
    return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def check(schedule):
    """Validate one schedule dict (raises L{BadSchedule})."""
    days = schedule.get("days") or []
    if not days or any(d not in DAYS for d in days):
        raise BadSchedule(f"days must be a non-empty list of {', '.join(DAYS)}")
    parse_time(schedule.get("start"))
    parse_time(schedule.get("end"))


@lru_cache(maxsize=64)
def zone(name):
    """ZoneInfo for an IANA name; raises L{BadSchedule}."""
    try:
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    if name and not _have_zone_data():
        raise BadSchedule(f"{name!r} cannot be used: this machine has no time zone data "
                          f"(install the tzdata package); schedules run in UTC meanwhile")
    raise BadSchedule(f"{name!r} is not a known time zone (use an IANA name like Europe/Berlin)")


def _have_zone_data():
    try:
        ZoneInfo("UTC")
        return True
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False


def fallback_zone():
    """UTC, as a ZoneInfo where the machine has time zone data, else built in."""
    try:
        return zone("UTC")
    except BadSchedule:
        return timezone.utc  # str() is "UTC" too


def host_zone_name():
    """This machine's IANA time zone name, or "UTC"."""
    return named_host_zone() or "UTC"


def named_host_zone():
    """The IANA zone this machine names (``TZ``, /etc/timezone,
    /etc/localtime), or None when none of them names one that loads."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        with open("/etc/timezone", "rb") as f:
            candidates.append(f.read(256).decode("utf-8", "replace").strip())
    except OSError:  # garbage in it is just not a zone name (below)
        pass
    try:
        link = os.readlink("/etc/localtime")
        candidates.append(link.split("zoneinfo/", 1)[-1] if "zoneinfo/" in link else "")
    except OSError:
        pass
    for name in candidates:
        try:
            zone(name)
            return name
        except BadSchedule:
            pass
    return None


def windows(schedule, tz, now):
    """[(start_ts, end_ts)] of this schedule's windows around ``now``."""
    start, end = parse_time(schedule["start"]), parse_time(schedule["end"])
    days = {DAYS.index(d) for d in schedule["days"]}
    today = datetime.fromtimestamp(now, tz).date()
    out = []
    for offset in range(-2, 9):
        day = today + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        begin = _instant(day, start, tz)
        end_day = day if end > start else day + timedelta(days=1)
        out.append((begin, _instant(end_day, end, tz)))
    return out


def _instant(day, clock, tz):
    local = datetime.combine(day, clock, tzinfo=tz)
    ts = local.timestamp()
    # A wall time inside a skipped hour maps to the moment the clock jumps.
    back = datetime.fromtimestamp(ts, tz)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None) and back.fold == 0:
        ts = _jump_after(ts, tz, local)
    return ts


def _jump_after(ts, tz, local):
    # Walk back to the first instant whose local time is after ``local``.
    # In a gap, fold=1 reads ``local`` with the offset after the jump: an
    # instant before it, however long the gap is (PEP 495).
    lo, hi = min(ts, local.replace(fold=1).timestamp()), ts
    while hi - lo > 1:
        mid = (lo + hi) / 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) > local.replace(tzinfo=None):
            hi = mid
        else:
            lo = mid
    return float(int(hi))


def evaluate(schedule, tz, now):
    """(active, next_change): whether it is active now, and when that flips."""
    active = False
    upcoming = []
    for begin, end in windows(schedule, tz, now):
        if begin <= now < end:
            active = True
        upcoming += [t for t in (begin, end) if t > now]
    return active, min(upcoming) if upcoming else None
