"""The edge's field types: what a client may send as text, dates, answers and photo URLs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError

from shared.contracts.fields import (
    CONTROL,
    SURROGATE,
    AttributeMap,
    Line,
    MediaUrl,
    QueryDateTime,
    RecentDateTime,
    Text,
    TimeWindow,
    TrustedMedia,
    media_url_problem,
)

OURS = TrustedMedia(("http://127.0.0.1:8000/media/",))
WINDOW = TimeWindow(past=timedelta(days=30), future=timedelta(minutes=5))


class Form(Schema):
    description = Text(4000, min_length=1, strip=True)
    code = Line(64)
    since = QueryDateTime()
    occurred_at = RecentDateTime(WINDOW)
    answers = AttributeMap(max_keys=3, max_items=2, value_length=10, max_total=25)
    photo = MediaUrl(OURS)


FORM = Form()


def refused(**data) -> dict:
    with pytest.raises(ValidationError) as error:
        FORM.load(data)
    return error.value.messages


@pytest.mark.parametrize("text", ["Bache\x00", "a\x07b", "\x1b[31m", "del\x7f", "c1\x85c1",
                                  "x\ufffe", "x\ud800", "\udfff tail"])
def test_a_description_with_a_control_character_or_a_lone_surrogate_is_refused(text):
    assert "description" in refused(description=text)


def test_tabs_newlines_and_any_real_character_are_kept_in_free_text():
    text = "Bache\tprofundo\r\nfrente a la escuela 🕳️ ñandú 中文 \U0010fffd"
    assert FORM.load({"description": text})["description"] == text


def test_a_single_line_field_refuses_tabs_and_line_breaks():
    for value in ("bache\n", "ba\tche", "ba\rche", "ba\u2028che"):
        assert "single line" in refused(code=value)["code"][0]
    assert FORM.load({"code": "bache"})["code"] == "bache"


def test_bytes_that_are_not_utf8_are_refused_and_utf8_bytes_are_read():
    assert refused(code=b"\xff\xfe")["code"] == ["is not valid UTF-8 text"]
    assert FORM.load({"code": b"bache"})["code"] == "bache"


def test_lengths_are_bounded_and_a_blank_required_text_is_refused():
    assert refused(code="x" * 65)["code"] == ["at most 64 characters"]
    assert refused(description="   ")["description"] == ["may not be blank"]
    assert FORM.load({"description": "  hoyo  "})["description"] == "hoyo"


@settings(max_examples=300)
@given(st.text())
def test_any_text_is_either_refused_or_free_of_what_postgres_and_xml_refuse(text):
    try:
        loaded = FORM.load({"description": text or "x"})["description"]
    except ValidationError:
        return
    assert not CONTROL.search(loaded) and not SURROGATE.search(loaded)
    loaded.encode("utf-8")  # never raises: no lone surrogate got through


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                    "1999-12-31T23:59:59Z", "2101-01-01T00:00:00Z"])
def test_a_query_date_outside_2000_to_2100_is_refused(moment):
    assert "between the years 2000 and 2100" in refused(since=moment)["since"][0]


def test_a_query_date_needs_its_time_zone():
    assert "since" in refused(since="2026-03-01T08:00:00")
    assert FORM.load({"since": "2026-03-01T08:00:00-06:00"})["since"].year == 2026


def test_a_crew_step_may_be_synced_late_but_not_from_the_future_or_long_ago():
    now = datetime.now(UTC)
    late = (now - timedelta(days=29)).isoformat()
    assert FORM.load({"occurred_at": late})["occurred_at"] < now
    assert FORM.load({"occurred_at": (now + timedelta(minutes=2)).isoformat()})
    assert "future" in refused(occurred_at=(now + timedelta(hours=1)).isoformat())[
        "occurred_at"][0]
    assert "older than 30 days" in refused(occurred_at=(now - timedelta(days=31)).isoformat())[
        "occurred_at"][0]
    assert "occurred_at" in refused(occurred_at="0001-01-01T00:00:00+14:00")


def test_answers_are_short_maps_of_scalars_or_short_lists():
    assert FORM.load({"answers": {"tamano": "grande", "n": 3, "tipos": ["a", "b"]}})
    assert "at most 3 answers" in str(refused(answers={str(i): 1 for i in range(4)}))
    assert refused(answers={"x": {"deep": 1}})["answers"] == {
        "x": ["text, a number, true/false, or a short list of them"]}
    assert refused(answers={"x": ["a", "b", "c"]})["answers"] == {"x": ["at most 2 choices"]}
    assert refused(answers={"x": "y" * 11})["answers"] == {"x": ["at most 10 characters"]}
    assert refused(answers={"x": float("nan")})["answers"] == {"x": ["a finite number"]}
    assert refused(answers={"x": 10**20})["answers"]["x"][0].startswith("a number of at most")
    assert "code #1" in refused(answers={"a\x00": "b"})["answers"]
    assert "together" in str(refused(answers={"a": "y" * 10, "b": "y" * 10, "c": "y" * 10}))


@pytest.mark.parametrize("url", [
    "https://fotos.example.mx/bache.jpg", "https://s3.example.com:9000/bucket/a.png?x=1",
    "http://127.0.0.1:8000/media/3f2a9c.jpg"])
def test_https_urls_and_our_own_media_are_accepted(url):
    assert FORM.load({"photo": url})["photo"] == url


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "data:image/png;base64,AAAA", "http://fotos.example/bache.jpg",
    "ftp://x/y.jpg", "https://ana:secreto@fotos.example/a.jpg", "https://x" + "/a" * 1000,
    "https://fotos.example/a b.jpg", "https://fotos.example/a\x00.jpg", "//fotos.example/a",
    "http://127.0.0.1:8000/media/../admin", "http://127.0.0.1:8000/media/a.jpg\n",
    "https://fotos.example:99999/a.jpg", "/media/a.jpg"])
def test_other_urls_are_refused(url):
    assert "photo" in refused(photo=url)


def test_trusted_prefixes_come_from_configuration():
    trusted = TrustedMedia()
    trusted.set(" http://10.0.0.5:8000/media/ , https://cdn.example/fotos/ ")
    assert trusted.prefixes == ("http://10.0.0.5:8000/media/", "https://cdn.example/fotos/")
    assert media_url_problem("http://10.0.0.5:8000/media/a.jpg", trusted) is None
    assert media_url_problem("http://127.0.0.1:8000/media/a.jpg", trusted)
