"""Intake's doors for the access matrix (tests/e2e/test_access_matrix.py): each knocks as one
principal and judges the answer by its cell of docs/access.md."""

from __future__ import annotations

import uuid

from tests.e2e.access_world import (
    DOORS,
    OURS,
    POTHOLE,
    door,
    http,
    new_key,
    page,
    shows,
)
from tests.e2e.test_portal import pothole_form, tiny_png

OPEN311_KEY = "expediente-demo-key"  # config.yaml's development client
CHATBOT_SECRET = "expediente-chatbot-dev"

OPEN311_PAGES = {
    "GET /open311/v2/discovery.{fmt}": lambda w: "discovery.json",
    "GET /open311/v2/services.{fmt}": lambda w: "services.json",
    "GET /open311/v2/services/{code}.{fmt}": lambda w: "services/bache.json",
    "GET /open311/v2/requests.{fmt}": lambda w: "requests.json",
    "GET /open311/v2/requests/{request_id}.{fmt}": lambda w: f"requests/{w.base[OURS].folio}.json",
    "GET /open311/v2/servicerequestupdates.{fmt}": lambda w: "servicerequestupdates.json",
    "GET /open311/v2/tokens/{token}.{fmt}": lambda w: f"tokens/{w.receipt['token']}.json",
}
PUBLIC_PAGES = {
    "GET /": lambda w: "/", "GET /reportar/{code}": lambda w: "/reportar/bache",
    "GET /folio": lambda w: "/folio", "GET /static/{name}": lambda w: "/static/portal.css",
    "GET /seguir/{folio}": lambda w: f"/seguir/{w.base[OURS].folio}",
    "GET /api/v1/services": lambda w: "/api/v1/services",
    "GET /api/v1/services/{code}": lambda w: "/api/v1/services/bache",
    "GET /api/v1/duplicates": lambda w: "/api/v1/duplicates?service_code=bache&lat=20.5&long=-100",
    "GET /media/{name}": lambda w: f"/media/{w.photo}",
    **{name: lambda w, path=path: f"/open311/v2/{path(w)}" for name, path in OPEN311_PAGES.items()},
}
for name, path in PUBLIC_PAGES.items():
    DOORS["intake", name] = page("intake", path)
CONTACT = {"email": "vecina@example.com"}


@door("intake", "POST /open311/v2/requests.{fmt}")
def open311_post(world, who, target, expect, name):
    form = [("service_code", "bache"), ("address_string", "Av. Zaragoza 120"),
            ("description", "Bache de la matriz"), ("attribute[tamano]", "grande")]
    key = [("api_key", OPEN311_KEY)] if who.column == "o311" else []
    http(world, "POST", "intake", "/open311/v2/requests.json", who, expect, data=key + form)


@door("intake", "POST /reportar/{code}", "POST /api/v1/reports", "POST /api/v1/upload-tickets")
def citizens_report(world, who, target, expect, name):
    if name == "POST /reportar/{code}":
        http(world, "POST", "intake", "/reportar/bache", who, expect, data=pothole_form(),
             allow_redirects=False)
    elif name == "POST /api/v1/reports":
        http(world, "POST", "intake", "/api/v1/reports", who, expect, json=POTHOLE,
             headers={"Idempotency-Key": new_key()})
    else:
        http(world, "POST", "intake", "/api/v1/upload-tickets", who, expect)


@door("intake", "GET /folio/{folio}", "GET /api/v1/reports/{folio}")
def citizens_view(world, who, target, expect, name):
    report = world.base[OURS]
    token = report.access_token if who.column == "citizen" else None
    if name == "GET /folio/{folio}":
        status, body = http(world, "GET", "intake", f"/folio/{report.folio}", who, expect,
                            params={"token": token} if token else {})
    else:
        status, body = http(world, "GET", "intake", f"/api/v1/reports/{report.folio}", who,
                            expect, headers={"X-Access-Token": token} if token else {})
    shows(body, expect.view)


@door("intake", "POST /seguir/{folio}", "POST /api/v1/reports/{folio}/follow")
def follow(world, who, target, expect, name):
    folio = world.base[OURS].folio
    if name == "POST /seguir/{folio}":
        http(world, "POST", "intake", f"/seguir/{folio}", who, expect,
             data={**CONTACT, "notify_by": "email"})
    else:
        http(world, "POST", "intake", f"/api/v1/reports/{folio}/follow", who, expect,
             json={"contact": CONTACT})


@door("intake", "POST /chatbot/webhook", "POST /chatbot/upload-tickets")
def chatbot(world, who, target, expect, name):
    headers = {"X-Chatbot-Secret": CHATBOT_SECRET} if who.column == "bot" else {}
    body = {"sender": f"whatsapp:+52144{uuid.uuid4().int % 10**8:08d}"}
    if name == "POST /chatbot/webhook":
        body.update(text="hay un bache", message_id=new_key())
    http(world, "POST", "intake", name.split()[1], who, expect, json=body, headers=headers)


@door("intake", "POST /api/v1/photos")
def photo(world, who, target, expect, name):
    headers = {"Content-Type": "image/png"}
    if who.column == "citizen":
        ticket = world.http.post(world.url("intake", "/api/v1/upload-tickets"), timeout=20)
        headers["X-Upload-Ticket"] = ticket.json()["ticket"]
    http(world, "POST", "intake", "/api/v1/photos", who, expect, data=tiny_png(),
         headers=headers)


@door("intake", "POST /staff/reports", report=True)
def staff_report(world, who, target, expect, name):
    body = {**POTHOLE, "service_code": target.service_code, "answers": dict(target.answers),
            "channel": "window"}
    http(world, "POST", "intake", "/staff/reports", who, expect, json=body)


@door("intake", "GET /staff/reports/{folio}", report=True)
def staff_lookup(world, who, target, expect, name):
    status, body = http(world, "GET", "intake", f"/staff/reports/{world.base[target].folio}",
                        who, expect)
    if expect.allowed:
        shows(body, expect.view)


@door("intake", "POST /staff/reports/{folio}/mark_duplicate", report=True)
def staff_mark_duplicate(world, who, target, expect, name):
    report = world.report(target, "assigned")
    http(world, "POST", "intake", f"/staff/reports/{report.folio}/mark_duplicate", who, expect,
         json={"duplicate_of": world.base[OURS].folio})
    assert world.version(report.folio) == report.version + (1 if expect.allowed else 0)


@door("intake", "PUT /staff/services/{code}")
def catalog_edit(world, who, target, expect, name):
    code = f"matriz_{new_key()[:8]}"
    http(world, "PUT", "intake", f"/staff/services/{code}", who, expect,
         json={"name": "Prueba de la matriz", "group": "Otros",
               "department": "atencion_ciudadana"})
