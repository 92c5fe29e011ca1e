"""Order per report, the arithmetic: which version comes next and how a gap is filled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.chassis.streamorder import GapNotFilled, NotOrderable, fill_gap, stream_version
from shared.contracts.cloudevents import CloudEvent

FOLIO = "QRO-2026-000123"


def event(version, subject=FOLIO) -> CloudEvent:
    return CloudEvent(id=f"e{version}", source="/expediente/tracking",
                      type="mx.expediente.report.comment_added", subject=subject,
                      time=datetime(2026, 3, 2, tzinfo=UTC), data={},
                      extensions={} if version is None else {"streamversion": version})


def test_the_stream_version_is_the_cloudevents_extension():
    assert stream_version(event(7)) == 7
    assert stream_version(event("7")) == 7  # as an HTTP binding would carry it


@pytest.mark.parametrize("bad", [event(None), event(True), event("siete"), event(3, subject=None)])
def test_an_event_without_a_subject_or_version_cannot_be_ordered(bad):
    with pytest.raises(NotOrderable):
        stream_version(bad)


def test_a_gap_is_filled_in_order_from_what_the_source_gave_as_dicts_or_events():
    fetched = [event(5).to_dict(), event(3), event(4).to_dict(), event(6), event(2)]
    filled = fill_gap(event(6), last=2, fetched=fetched)
    assert [stream_version(e) for e in filled] == [3, 4, 5]
    assert all(isinstance(e, CloudEvent) for e in filled)


def test_another_reports_events_never_fill_the_gap():
    with pytest.raises(GapNotFilled, match="versions 3..4"):
        fill_gap(event(5), last=2, fetched=[event(3, "QRO-2026-000999"), event(4, "X")])


def test_a_missing_version_in_the_middle_leaves_the_gap_open():
    with pytest.raises(GapNotFilled):
        fill_gap(event(6), last=2, fetched=[event(3), event(5)])


def test_no_gap_no_fetch_needed():
    assert fill_gap(event(3), last=2, fetched=[]) == []
