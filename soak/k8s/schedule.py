"""A CronJob's schedule, checked as Kubernetes parses it (standard cron: five fields, or a
descriptor such as @daily), so a typo fails here and not at `kubectl apply`."""

from __future__ import annotations

import re

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for lowest.. in order)
FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 6, DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|\?|[^-/]+(?:-[^-/]+)?)(?:/(?P<step>\d+))?$")


def check_schedule(text: str) -> str:
    """The schedule as given, or ValueError saying what is wrong with it."""
    schedule = text.strip()
    if re.match(r"^(CRON_)?TZ=", schedule):
        raise ValueError(
            f"{text!r}: Kubernetes rejects a time zone in the schedule (a CronJob's "
            "spec.timeZone sets it)"
        )
    if schedule.startswith("@"):
        if schedule.lower() not in DESCRIPTORS:
            raise ValueError(f"{text!r}: not one of {', '.join(DESCRIPTORS)}")
        return schedule
    fields = schedule.split()
    if len(fields) != len(FIELDS):
        raise ValueError(
            f"{text!r} has {len(fields)} fields, a cron schedule has 5: minute hour "
            "day-of-month month day-of-week, e.g. '0 3 * * *'"
        )
    for value, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        for item in value.split(","):
            problem = _item_problem(item, low, high, names)
            if problem:
                raise ValueError(f"{text!r}: {name} {value!r}: {problem}")
    return schedule


def _item_problem(item: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    """What is wrong with one item of a field's list (None: nothing)."""
    match = _ITEM.match(item)
    if not match:
        return f"{item!r} is not N, N-M, * or one of them /STEP"
    if match["step"] is not None and int(match["step"]) == 0:
        return "a step of 0"
    if match["range"] in ("*", "?"):
        return None
    ends = []
    for end in match["range"].split("-"):
        number = _number(end, low, names)
        if number is None or not low <= number <= high:
            return f"{end!r} is not within {low}-{high}" + (
                f" or {names[0].upper()}-{names[-1].upper()}" if names else ""
            )
        ends.append(number)
    if len(ends) == 2 and ends[0] > ends[1]:
        return f"the range {match['range']!r} runs backwards"
    return None


def _number(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return low + names.index(text.lower())
    return None
