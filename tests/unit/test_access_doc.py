"""docs/access.md names every door of tracking, intake and crews, and nothing else: a new entrypoint
without its row (or a row left behind by a removed one) fails here, before the end-to-end
matrix (tests/e2e/test_access_matrix.py) runs its cells."""

from __future__ import annotations

import inspect
import re

import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc
from nameko.web.handlers import HttpRequestHandler

from services.crews.service import CrewsService
from services.intake.service import IntakeService
from services.notifications.service import NotificationsService
from services.tracking.service import TrackingService
from services.tracking.write.commands import COMMANDS
from tests import accessdoc

TRACKING_SECTIONS = ("Tracking: staff commands", "Tracking: everything else")
INTAKE_SECTIONS = ("Intake",)
CREWS_SECTIONS = ("Crews", "Crews: field", "Crews: work lists", "Crews: field app")
NOTIFICATIONS_SECTIONS = ("Notifications",)


def doors(service: type) -> set[str]:
    """`GET /reports/{folio}` for each HTTP entrypoint, the method's name for each RPC one."""
    found = set()
    for name, method in inspect.getmembers(service, callable):
        for entrypoint in getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if isinstance(entrypoint, HttpRequestHandler):
                url = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", entrypoint.url)
                found.add(f"{entrypoint.method} {url}")
            elif isinstance(entrypoint, Rpc):
                found.add(name)
    return found


def named_in(section_names: tuple[str, ...]) -> set[str]:
    sections = accessdoc.sections()
    return {name for title in section_names
            for name in re.findall(r"`([^`]+)`", sections[title])}


def in_tables(section_names: tuple[str, ...]) -> set[str]:
    return {door for row in accessdoc.rows() if row.section in section_names
            for door in row.doors}


@pytest.mark.parametrize(("service", "section_names"), [
    (TrackingService, TRACKING_SECTIONS), (IntakeService, INTAKE_SECTIONS),
    (CrewsService, CREWS_SECTIONS), (NotificationsService, NOTIFICATIONS_SECTIONS)])
def test_every_door_of_a_service_has_its_row(service, section_names):
    missing = doors(service) - named_in(section_names)
    assert not missing, f"docs/access.md does not say who may use {sorted(missing)}"


def test_every_row_names_a_door_that_exists():
    tracking = doors(TrackingService) | set(COMMANDS) | {
        "POST /reports/{folio}/confirm", "POST /reports/{folio}/dispute"}
    stale = (in_tables(TRACKING_SECTIONS) - tracking) | (
        in_tables(INTAKE_SECTIONS) - doors(IntakeService)) | (
        in_tables(CREWS_SECTIONS) - doors(CrewsService)) | (
        in_tables(NOTIFICATIONS_SECTIONS) - doors(NotificationsService))
    assert not stale, f"docs/access.md has rows for doors that do not exist: {sorted(stale)}"


def test_every_staff_command_has_its_row_and_internal_notes_theirs():
    labels = [row.label for row in accessdoc.rows() if row.section == TRACKING_SECTIONS[0]]
    assert sorted(label.split("`")[1] for label in labels) == sorted(
        [*COMMANDS, "add_comment"])
    assert "`add_comment` internal" in labels


def test_every_row_answers_for_every_principal_the_page_introduces():
    everyone = accessdoc.principals()
    assert "anon" in everyone and "sup+op:obras" in everyone and len(everyone) == 13
    for row in accessdoc.rows():
        expected = everyone if row.section in INTAKE_SECTIONS else everyone[:-2]
        assert list(row.cells) == expected, row.label


@pytest.mark.parametrize("text", ["yes", "✓ everything", "403 staff", "dept  staff own", ""])
def test_a_cell_the_legend_does_not_know_is_an_error(text):
    with pytest.raises(ValueError):
        accessdoc.cell(text)


def test_cells_read_as_the_legend_says():
    assert accessdoc.cell("own crew") == accessdoc.Cell("own", "crew")
    assert accessdoc.cell("401") == accessdoc.Cell("401")
    assert accessdoc.cell("✓ public").allowed and not accessdoc.cell("403").allowed
