"""What a citizen who follows a folio is told at each public step: an email (subject, text, HTML)
and an SMS, in Spanish first or English, always with the folio and the status page's link; the
SMS within one GSM-7 segment; nothing an event carries can break a message or inject into it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape

from services.notifications.messages import NOTIFIED, is_gsm7, render, sms_segments
from services.tracking.domainmodel import Actor
from services.tracking.write.application import TrackingApplication
from services.tracking.write.outgoing import CloudEventConverter
from shared.contracts.cloudevents import CloudEvent
from shared.contracts.events import CATALOG, RESOLUTIONS, event_type, short_name

CITY = ZoneInfo("America/Mexico_City")
FOLIO = "QRO-2026-000123"
STATUS = f"https://seguimiento.example.gob.mx/seguimiento/{FOLIO}"
OPT_OUT = "https://avisos.example.gob.mx/baja?folio=QRO-2026-000123&t=abc"
PHOTO = "https://fotos.example.gob.mx/r/QRO-2026-000123/despues.jpg"
OPERATOR = Actor("operadora-ana-070", "operator", "phone_070")
SUPERVISOR = Actor("supervisor-obras-luis", "supervisor", "staff")
CREW = Actor("cuadrillero-pedro", "crew", "field", crew_id="C-07")


@pytest.fixture(scope="module")
def pothole() -> list[CloudEvent]:
    """A pothole walked through every step, as tracking publishes it."""
    app = TrackingApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    folio = app.open_report(
        service_code="bache", service_name="Bache", department="obras_publicas",
        description="Bache frente al mercado", location={"lat": 20.59, "long": -100.39},
        actor=OPERATOR).folio
    now = datetime.now(UTC)
    app.triage(folio, SUPERVISOR, department="obras_publicas", priority="high",
               service_code="bache")
    app.assign(folio, SUPERVISOR, crew_id="C-07")
    app.dispatch_crew(folio, CREW, occurred_at=now)
    app.set_en_route(folio, CREW, occurred_at=now, eta=now + timedelta(minutes=25))
    app.arrive(folio, CREW, occurred_at=now + timedelta(minutes=20))
    app.add_photo(folio, CREW, url=PHOTO, caption="Bache tapado", stage="after",
                  occurred_at=now + timedelta(minutes=50))
    app.complete_work(folio, CREW, notes="Tapado con mezcla en frío",
                      occurred_at=now + timedelta(minutes=55))
    app.close_report(folio, SUPERVISOR, resolution="fixed", notes="Listo")
    app.reopen(folio, SUPERVISOR, reason="El bache volvió")
    converter = CloudEventConverter(app)
    events = [converter.convert(event) for event in app.history(folio)]
    app.close()
    return events


def report_event(name: str, time: datetime | None = None, **data: object) -> CloudEvent:
    """One published event of folio QRO-2026-000123, its data as the catalog has it."""
    base = {"folio": FOLIO, "version": 3, "step_id": None,
            "actor": {"id": "pedro", "role": "crew", "channel": "field", "crew_id": "C-07"}}
    return CloudEvent(id=f"id-{name}", source="/expediente/tracking", type=event_type(name),
                      subject=FOLIO, time=time or datetime(2026, 11, 22, 21, 3, tzinfo=UTC),
                      data={**base, **data})


def test_the_citizen_hears_of_every_public_step_and_of_nothing_else(pothole):
    told = []
    for event in pothole:
        folio, name = event.subject, short_name(event.type)
        status = f"http://127.0.0.1:8001/seguimiento/{folio}"
        for language in ("es", "en"):
            message = render(event, language=language, status_url=status)
            if name not in NOTIFIED:
                assert message is None, name
                continue
            assert folio in message.subject
            for body in (message.text, message.html, message.sms):
                assert folio in body and status in body
            assert f'href="{status}"' in message.html
        if name in NOTIFIED:
            told.append(name)
    assert told == list(NOTIFIED)


def test_the_first_message_names_the_service_in_spanish_first(pothole):
    message = render(pothole[0], status_url=STATUS)
    assert message is not None
    assert f"Tu reporte {pothole[0].subject} (Bache) fue recibido." in message.text
    assert message.subject == f"Reporte recibido · {pothole[0].subject}"


@pytest.mark.parametrize("name", sorted(set(CATALOG) - set(NOTIFIED)))
def test_steps_the_citizen_is_not_told_of_give_no_message(name):
    assert render(report_event(name), status_url=STATUS) is None


def test_events_of_other_streams_give_no_message():
    other = CloudEvent(id="1", source="/expediente/billing", type="mx.expediente.bill.opened",
                       subject=FOLIO, time=datetime.now(UTC), data={"folio": FOLIO})
    assert render(other, status_url=STATUS) is None


def test_the_crew_s_arrival_time_is_told_in_city_time():
    on_the_way = report_event("crew_en_route", eta="2026-11-22T21:30:00+00:00")
    spanish = render(on_the_way, status_url=STATUS)
    english = render(on_the_way, language="en", status_url=STATUS)
    assert spanish is not None and english is not None
    assert "Llegada estimada: hoy a las 15:30." in spanish.text  # 21:30 UTC is 15:30 there
    assert "Llegada estimada: hoy a las 15:30." in spanish.sms
    assert "Expected arrival: today at 15:30." in english.html

    late = report_event("crew_en_route", time=datetime(2026, 11, 23, 5, 50, tzinfo=UTC),
                        eta="2026-11-23T06:10:00+00:00")
    message = render(late, status_url=STATUS)
    assert message is not None and "mañana a las 00:10" in message.text
    assert "mañana a las 00:10" in message.sms  # GSM-7 has ñ: kept
    tijuana = render(on_the_way, status_url=STATUS, timezone="America/Tijuana")
    assert tijuana is not None and "hoy a las 13:30" in tijuana.text


@pytest.mark.parametrize("eta", [None, "pronto", "2026-11-22T15:30:00"])
def test_without_a_usable_eta_the_message_says_none(eta):
    message = render(report_event("crew_en_route", eta=eta), status_url=STATUS)
    assert message is not None and "Llegada estimada" not in message.text
    assert "La cuadrilla va en camino a tu reporte QRO-2026-000123." in message.text


@pytest.mark.parametrize("resolution", sorted(RESOLUTIONS))
def test_a_closed_report_says_how_it_was_resolved(resolution):
    closed = report_event("closed", resolution=resolution, notes="Nota interna")
    for language in ("es", "en"):
        message = render(closed, language=language, status_url=STATUS)
        assert message is not None
        said = getattr(RESOLUTIONS[resolution], language)
        assert f": {said}." in message.text and escape(said) in message.html


def every_message(**kwargs: object):
    """Each notified step with its data at its longest, in each language."""
    data = {"opened": {"service_name": "Alumbrado público"},
            "crew_en_route": {"eta": "2026-11-23T06:10:00+00:00"},
            "closed": {"resolution": "not_our_responsibility", "notes": "Es de CFE"},
            "work_completed": {"notes": "Tapado"}, "reopened": {"reason": "Volvió"}}
    late = datetime(2026, 11, 23, 5, 50, tzinfo=UTC)  # the ETA falls "tomorrow"
    for name in NOTIFIED:
        for language in ("es", "en"):
            event = report_event(name, time=late, **data.get(name, {}))
            yield name, language, render(event, language=language, **kwargs)


def test_every_sms_fits_one_gsm7_segment_with_the_folio_and_the_link():
    for name, language, message in every_message(status_url=STATUS, photo_url=PHOTO):
        assert message is not None
        assert is_gsm7(message.sms), (name, language, message.sms)
        assert sms_segments(message.sms) == 1, (name, language, len(message.sms))
        assert FOLIO in message.sms and STATUS in message.sms
    opened = render(report_event("opened", service_name="Bache"), status_url=STATUS)
    assert opened is not None and "(Bache)" in opened.sms
    arrived = render(report_event("crew_dispatched"), status_url=STATUS)
    assert arrived is not None and "La cuadrilla salio a atender" in arrived.sms


def test_an_sms_too_long_for_one_segment_still_has_the_whole_link():
    long_link = STATUS + "?token=" + "x" * 120
    message = render(report_event("opened", service_name="Bache"), status_url=long_link)
    assert message is not None
    assert long_link in message.sms and FOLIO in message.sms
    assert sms_segments(message.sms) == 2


def test_the_work_done_comes_with_its_photo():
    message = render(report_event("work_completed", notes="Tapado"), status_url=STATUS,
                     photo_url=PHOTO)
    assert message is not None
    assert f"Foto del trabajo: {PHOTO}" in message.text and f'href="{PHOTO}"' in message.html
    hostile = render(report_event("work_completed", notes="x"), status_url=STATUS,
                     photo_url="javascript:alert(1)")
    assert hostile is not None and "javascript" not in hostile.html + hostile.text
    elsewhere = render(report_event("crew_arrived"), status_url=STATUS, photo_url=PHOTO)
    assert elsewhere is not None and PHOTO not in elsewhere.text


def test_emails_carry_the_one_click_opt_out_when_there_is_one():
    for language, words in (("es", "Para no recibir más avisos: "),
                            ("en", "To stop these messages: ")):
        message = render(report_event("assigned", crew_id="C-07"), language=language,
                         status_url=STATUS, unsubscribe_url=OPT_OUT)
        assert message is not None
        assert words + OPT_OUT in message.text
        assert f'href="{OPT_OUT.replace("&", "&amp;")}"' in message.html
        assert OPT_OUT not in message.sms
    without = render(report_event("assigned", crew_id="C-07"), status_url=STATUS)
    assert without is not None and "avisos" not in without.text


def test_hostile_data_is_escaped_and_staff_notes_stay_with_staff():
    script = "<script>alert('x')</script>"
    opened = render(report_event("opened", service_name=f"Bache {script}"), status_url=STATUS)
    assert opened is not None
    assert script not in opened.html and "&lt;script&gt;" in opened.html
    closed = render(report_event("closed", resolution="fixed", notes=script), status_url=STATUS)
    done = render(report_event("work_completed", notes=script), status_url=STATUS)
    for message in (closed, done):
        assert message is not None
        assert "alert" not in message.text + message.html + message.sms


def test_control_characters_never_break_a_message():
    event = report_event("opened", folio="QRO-2026-000123\x00",
                         service_name="Bache\x00\r\nSubject: gratis\u202e\x1b[31m")
    message = render(event, status_url=STATUS, unsubscribe_url=OPT_OUT)
    assert message is not None
    everything = message.subject + message.text + message.html + message.sms
    assert not any(char in everything for char in "\x00\x1b\u202e\r")
    assert "\n" not in message.subject and "\n" not in message.sms
    assert "(Bache Subject: gratis [31m)" in message.text


def test_an_unknown_language_reads_spanish():
    event = report_event("crew_arrived")
    spanish = render(event, status_url=STATUS)
    assert render(event, language="fr", status_url=STATUS) == spanish
    assert render(event, language="", status_url=STATUS) == spanish
    english = render(event, language="en-US", status_url=STATUS)
    assert english is not None and english.text.startswith("Hello,")
    assert "The crew arrived at the site of your report QRO-2026-000123." in english.text


def test_the_status_link_must_be_a_web_address():
    with pytest.raises(ValueError, match="status_url"):
        render(report_event("crew_arrived"), status_url="javascript:alert(1)")
    with pytest.raises(ValueError, match="unsubscribe_url"):
        render(report_event("crew_arrived"), status_url=STATUS, unsubscribe_url="/baja")


def test_sms_length_is_counted_as_phones_count_it():
    assert is_gsm7("Tu reporte fue recibido: é ñ ü ¿¡ €")
    assert not is_gsm7("salió") and not is_gsm7("á") and not is_gsm7("ú")
    assert [sms_segments("a" * n) for n in (0, 160, 161, 306, 307)] == [1, 1, 2, 2, 3]
    assert [sms_segments("€" * n) for n in (80, 81)] == [1, 2]  # two septets each
    assert [sms_segments("á" * n) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
