"""The citizen's web portal and the photo doors, against running tracking and intake: a neighbour
reports a pothole from a phone's browser, with a photo, and looks the folio up afterwards."""

from __future__ import annotations

import io
import re
import struct
import uuid
import zlib

import pytest
import requests
from PIL import Image

from tests.support import bearer, wait_for

pytestmark = pytest.mark.e2e

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,"


def tiny_png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (122, 31, 61)) -> bytes:
    """A real PNG image (solid colour), made without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def pothole_form(**changes: str) -> dict[str, str]:
    form = {"attribute[tamano]": "grande", "attribute[carril]": "cruce",
            "address": "Av. Zaragoza 120, Centro", "description": "Bache hondo frente al mercado",
            "idempotency_key": str(uuid.uuid4())}
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def form_ticket(stack, code="bache") -> str:
    """The upload ticket the form carries (a photo needs it)."""
    page = requests.get(f"{stack.intake.url}/reportar/{code}", timeout=10).text
    return re.search(r'name="upload_ticket" value="([^"]+)"', page).group(1)


def post_form(stack, form, files=None, code="bache"):
    """Send the form, with the ticket of a freshly loaded form when it has a photo."""
    if files and "upload_ticket" not in form:
        form = {**form, "upload_ticket": form_ticket(stack, code)}
    return requests.post(f"{stack.intake.url}/reportar/{code}", data=form, files=files,
                         allow_redirects=False, timeout=30)


def same_picture(served: bytes, sent: bytes) -> bool:
    """The photo kept is the one sent, re-encoded: same size and pixels, nothing else."""
    kept, original = Image.open(io.BytesIO(served)), Image.open(io.BytesIO(sent))
    return kept.size == original.size and kept.convert("RGB").tobytes() == \
        original.convert("RGB").tobytes()


def folio_of(page: str) -> str:
    found = re.search(r'id="folio">([A-Z0-9]+-[0-9]{4}-[0-9]+)<', page)
    assert found, page
    return found.group(1)


def bache_count(stack) -> int:
    reports = requests.get(f"{stack.tracking.url}/reports",
                           params={"service_code": "bache", "limit": 1000},
                           headers=bearer("supervisor"), timeout=10).json()["reports"]
    return len(reports)


def photo_files(stack) -> set[str]:
    directory = stack.workdir / "photos"
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


# ---- the pages --------------------------------------------------------------------------------


def test_the_home_page_offers_the_categories_by_group(stack):
    page = requests.get(f"{stack.intake.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Vialidades" in page.text and 'href="/reportar/bache"' in page.text
    assert 'href="/folio"' in page.text
    assert '<meta name="viewport"' in page.text


def test_the_form_asks_the_category_questions(stack):
    page = requests.get(f"{stack.intake.url}/reportar/bache", timeout=10)
    assert page.status_code == 200
    html = page.text
    assert "¿Qué tamaño tiene el bache?" in html
    assert '<select id="q-tamano" name="attribute[tamano]"' in html
    assert 'value="grande"' in html and "Grande (más de 1 m)" in html
    assert 'type="file" id="photo" name="photo" accept="image/*"' in html
    assert re.search(r'name="upload_ticket" value="[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"', html)
    assert 'enctype="multipart/form-data"' in html
    assert '<script src="/static/report_form.js">' in html and "Usar mi ubicación" in html
    script = requests.get(f"{stack.intake.url}/static/report_form.js", timeout=10).text
    assert "navigator.geolocation" in script  # in a file: the CSP allows no inline script
    assert re.search(r'name="idempotency_key" value="[0-9a-f\-]{36}"', html)
    assert "Tus datos <span class=\"opcional\">(opcional)</span>" in html
    drain = requests.get(f"{stack.intake.url}/reportar/drenaje_obstruido", timeout=10).text
    assert 'type="checkbox" name="attribute[problema]" value="sin_tapa"' in drain
    car = requests.get(f"{stack.intake.url}/reportar/vehiculo_abandonado", timeout=10).text
    assert 'type="datetime-local" id="q-desde"' in car
    garbage = requests.get(f"{stack.intake.url}/reportar/recoleccion_basura", timeout=10).text
    assert 'type="number" step="any"' in garbage


def test_an_unknown_category_is_a_friendly_404(stack):
    page = requests.get(f"{stack.intake.url}/reportar/ovni", timeout=10)
    assert page.status_code == 404
    assert "No encontramos" in page.text and page.headers["Content-Type"].startswith("text/html")
    assert post_form(stack, pothole_form(), code="ovni").status_code == 404


def test_bad_input_gets_the_form_back_with_spanish_messages_and_writes_nothing(stack):
    before, photos_before = bache_count(stack), photo_files(stack)
    response = post_form(stack, pothole_form(**{
        "attribute[tamano]": "", "address": "", "description": " ", "email": "ana@",
        "phone": "123", "first_name": "Ana", "notify_by": "whatsapp"}),
        files={"photo": ("bache.jpg", tiny_png(), "image/jpeg")})
    assert response.status_code == 400
    html = response.text
    assert "Responde esta pregunta." in html
    assert "Indica dónde está" in html
    assert "Describe el problema (hasta 4000 caracteres)." in html
    assert "Escribe un correo válido" in html and "Escribe un teléfono válido" in html
    assert 'value="ana@"' in html and 'value="Ana"' in html  # what was typed stays
    assert 'value="whatsapp"\n      checked' in html or 'value="whatsapp" checked' in html
    assert 'aria-invalid="true"' in html
    assert photo_files(stack) == photos_before  # the photo is kept only once the rest holds
    good = post_form(stack, pothole_form())
    assert good.status_code == 201, good.text
    wait_for(lambda: bache_count(stack) >= before + 1, message="the good report's row")
    assert bache_count(stack) == before + 1


@pytest.mark.parametrize("changes, message", [
    ({"attribute[tamano]": "enorme"}, "Elige una de las opciones."),
    ({"lat": "20.59", "address": ""}, "Escribe la latitud y la longitud"),
    ({"lat": "norte", "long": "-100.39"}, "Escribe la latitud y la longitud"),
    ({"notify_by": "email"}, "Para avisarte por correo, escribe tu correo."),
])
def test_each_bad_field_says_what_to_fix(stack, changes, message):
    response = post_form(stack, pothole_form(**changes))
    assert response.status_code == 400
    assert message in response.text


def test_a_file_that_is_not_a_photo_is_refused_and_not_kept(stack):
    before = photo_files(stack)
    for name, data in (("foto.jpg", b"<!doctype html><script>alert(1)</script>"),
                       ("foto.gif", GIF)):
        response = post_form(stack, pothole_form(), files={"photo": (name, data, "image/jpeg")})
        assert response.status_code == 400
        assert "El archivo no es una foto JPEG, PNG o WebP." in response.text
    assert photo_files(stack) == before


def test_a_citizen_reports_with_a_photo_and_gets_a_folio_and_a_private_link(stack):
    png = tiny_png()
    response = post_form(stack, pothole_form(email="vecina@example.com"),
                         files={"photo": ("IMG_2041.png", png, "image/png")})
    assert response.status_code == 201, response.text
    folio = folio_of(response.text)
    assert folio.startswith("QRO-")
    assert "Atención estimada" in response.text
    private = re.search(r'href="(' + re.escape(stack.tracking.url) + '/seguimiento/' + folio
                        + r'\?token=[^"]+)"', response.text)
    assert private, response.text  # the private link is tracking's status page, as everywhere
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "IMG_2041" not in str(photo_files(stack))

    status = requests.get(f"{stack.intake.url}/folio/{folio}", timeout=10)  # an older link
    assert status.status_code == 200 and status.url == f"{stack.tracking.url}/seguimiento/{folio}"
    assert "Reporte recibido" in status.text and "Bache hondo frente al mercado" in status.text
    assert "vecina@example.com" not in status.text
    photo_url = re.search(r'<img src="([^"]+/media/[0-9a-f]{32}\.png)"', status.text).group(1)
    media = requests.get(photo_url, timeout=10)
    assert media.status_code == 200 and same_picture(media.content, png)
    assert media.headers["Content-Type"] == "image/png"

    mine = requests.get(private.group(1).replace("&amp;", "&"), timeout=10)
    assert mine.status_code == 200 and "Vista privada" in mine.text


def test_sending_the_same_form_twice_gives_one_report(stack):
    form = pothole_form(description="Bache que ya reporté dos veces con doble clic")
    png = tiny_png(rgb=(1, 2, 3))
    first = post_form(stack, form, files={"photo": ("a.png", png, "image/png")})
    again = post_form(stack, form, files={"photo": ("a.png", png, "image/png")})
    assert first.status_code == again.status_code == 201
    assert folio_of(first.text) == folio_of(again.text)


def test_the_lookup_finds_a_folio_and_refuses_a_wrong_token(stack):
    folio = folio_of(post_form(stack, pothole_form()).text)
    lookup = requests.get(f"{stack.intake.url}/folio", timeout=10)
    assert lookup.status_code == 200 and 'name="folio"' in lookup.text
    jump = requests.get(f"{stack.intake.url}/folio", params={"folio": f" {folio.lower()} "},
                        allow_redirects=False, timeout=10)
    assert jump.status_code == 303
    assert jump.headers["Location"] == f"{stack.tracking.url}/seguimiento/{folio}"
    assert requests.get(jump.headers["Location"], timeout=10).status_code == 200
    wrong = requests.get(f"{stack.intake.url}/folio/{folio}", params={"token": "not-the-token"},
                         timeout=10)
    assert wrong.status_code == 403 and "El enlace no abre el reporte" in wrong.text
    for missing in ("QRO-2026-999999", "QRO-2026-999999?token=abc"):
        page = requests.get(f"{stack.intake.url}/folio/{missing}", timeout=10)
        assert page.status_code == 404, missing
        assert "No encontramos" in page.text
    assert requests.get(f"{stack.intake.url}/folio/no-es-un-folio", timeout=10).status_code == 404


def test_a_citizen_follows_an_existing_folio(stack):
    folio = folio_of(post_form(stack, pothole_form()).text)
    page = requests.get(f"{stack.tracking.url}/seguimiento/{folio}", timeout=10)
    link = re.search(r'<a class="boton" id="seguir" href="([^"]+)"', page.text).group(1)
    assert link == f"{stack.intake.url}/seguir/{folio}"
    form = requests.get(link, timeout=10)
    assert form.status_code == 200 and f'action="/seguir/{folio}"' in form.text
    done = requests.post(f"{stack.intake.url}/seguir/{folio}",
                         data={"email": "vecino@example.com", "notify_by": "email"}, timeout=10)
    assert done.status_code == 200 and "ya sigues el folio" in done.text
    empty = requests.post(f"{stack.intake.url}/seguir/{folio}", data={}, timeout=10)
    assert empty.status_code == 400 and "Escribe tu correo o tu teléfono" in empty.text
    unknown = requests.post(f"{stack.intake.url}/seguir/QRO-2026-999999",
                            data={"email": "vecino@example.com"}, timeout=10)
    assert unknown.status_code == 404
    assert requests.get(f"{stack.intake.url}/seguir/QRO-2026-999999", timeout=10).status_code \
        == 404


def test_a_report_near_an_open_one_offers_to_follow_it_first(stack):
    here = {"lat": "20.6450", "long": "-100.4470", "address": ""}
    first = post_form(stack, pothole_form(**here))
    assert first.status_code == 201, first.text
    first_folio = folio_of(first.text)
    png = tiny_png(rgb=(9, 9, 9))
    second = post_form(stack, pothole_form(**here, description="El mismo bache, creo"),
                       files={"photo": ("b.png", png, "image/png")})
    assert second.status_code == 200, second.text
    assert "Seguir este folio" in second.text and first_folio in second.text
    assert f'formaction="/seguir/{first_folio}"' in second.text
    kept = re.search(r'name="photo_url" value="([^"]+)"', second.text).group(1)
    assert same_picture(requests.get(kept, timeout=10).content, png)
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                              second.text))
    assert carried["confirmar"] == "1" and carried["description"] == "El mismo bache, creo"
    anyway = post_form(stack, carried)
    assert anyway.status_code == 201, anyway.text
    assert folio_of(anyway.text) != first_folio
    view = requests.get(f"{stack.intake.url}/folio/{folio_of(anyway.text)}", timeout=10).text
    assert kept in view


# ---- last: with tracking down -----------------------------------------------------------------


def test_with_tracking_down_the_citizen_gets_a_503_page_not_a_500(stack):
    folio = folio_of(post_form(stack, pothole_form()).text)
    stack.tracking.stop()
    follow = requests.get(f"{stack.intake.url}/seguir/{folio}", timeout=30)
    assert follow.status_code == 503 and "no está disponible" in follow.text
    form = pothole_form()
    sent = post_form(stack, form)
    assert sent.status_code == 503 and "no está disponible" in sent.text
    assert requests.get(f"{stack.intake.url}/", timeout=10).status_code == 200  # catalog is ours

    stack.tracking.start()  # the citizen presses "Enviar" again: the same form, the same key
    again = folio_of(post_form(stack, form).text)
    assert again != folio
    assert folio_of(post_form(stack, form).text) == again  # and once more: still one report
