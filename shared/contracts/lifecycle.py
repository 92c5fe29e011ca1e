"""The report's lifecycle: in which step a report may record each event and the step it leaves
it in. One state machine, on the wire: tracking's aggregate enforces it, and every reader of the
report events (tracking's views, crews' work lists) follows it to know where a report stands.
Keyed by the events' wire names (shared/contracts/events.py)."""

from __future__ import annotations

from dataclasses import dataclass

FIRST_STEP = "opened"
OPEN_STEPS = ("opened", "triaged", "assigned", "dispatched", "en_route", "on_site",
              "work_completed", "reopened")
CLOSED_STEPS = ("closed",)
STEPS = (*OPEN_STEPS, *CLOSED_STEPS)
STATUS = {step: "closed" if step in CLOSED_STEPS else "open" for step in STEPS}


@dataclass(frozen=True)
class Rule:
    """In which steps a report may record an event, and the step the event leaves it in
    (`moves_to`, when it was in one of `moves_from`; otherwise it stays where it was)."""

    allowed_in: tuple[str, ...] = OPEN_STEPS
    moves_to: str | None = None
    moves_from: tuple[str, ...] = STEPS


ANY_OPEN_STEP = Rule()  # an event not in LIFECYCLE: any open step, and the step stays
LIFECYCLE: dict[str, Rule] = {
    # Triage may come at any time, but only a report nobody has taken up moves to triaged.
    "triaged": Rule(moves_to="triaged", moves_from=("opened", "reopened")),
    # A crew that has not reached the site can still be replaced.
    "assigned": Rule(("opened", "triaged", "assigned", "dispatched", "en_route", "reopened"),
                     "assigned"),
    "crew_dispatched": Rule(("assigned",), "dispatched"),
    "crew_en_route": Rule(("dispatched",), "en_route"),
    "crew_arrived": Rule(("dispatched", "en_route"), "on_site"),  # a crew close by goes straight
    "materials_logged": Rule(("on_site", "work_completed")),  # forgotten ones, after the work
    "work_completed": Rule(("on_site",), "work_completed"),
    "closed": Rule(moves_to="closed"),
    "marked_duplicate": Rule(moves_to="closed"),
    "reopened": Rule(CLOSED_STEPS, "reopened"),
    "comment_added": Rule(STEPS),  # the conversation goes on after closing
    "citizen_confirmed": Rule(("work_completed", "closed")),
    "citizen_disputed": Rule(("work_completed", "closed")),
}
_NEXT_STEP = {(step, name): rule.moves_to for name, rule in LIFECYCLE.items()
              if rule.moves_to is not None for step in rule.moves_from}


def step_after(step: str, name: str) -> str:
    """The step a report in `step` is in after an event named `name` (however it got there:
    readers replay history as it was recorded, they do not judge it)."""
    return _NEXT_STEP.get((step, name), step)


def rule(name: str) -> Rule:
    return LIFECYCLE.get(name, ANY_OPEN_STEP)


def allowed_events(step: str) -> tuple[str, ...]:
    """The events of LIFECYCLE a report in `step` may record next."""
    return tuple(name for name, r in LIFECYCLE.items() if step in r.allowed_in)


def closing_events() -> tuple[str, ...]:
    """The events that close a report (`closed`, `marked_duplicate`)."""
    return tuple(name for name, r in LIFECYCLE.items() if r.moves_to in CLOSED_STEPS)
