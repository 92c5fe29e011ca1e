"""The citizen's pages (Spanish, phone-sized): look an account up, read it, pay, get the receipt.

Each page says where its forms may go: the payment form sends the citizen on to the payment
provider, so the provider's origin is allowed as a form target (Content-Security-Policy)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from werkzeug.wrappers import Response

from .money import fmt

HTML = {"text/html": None}
KIND_NAMES = {"predial": "Impuesto predial", "agua": "Agua potable",
              "multas": "Multa de tránsito"}
KEY_NAMES = {"predial": "Clave catastral", "agua": "Número de contrato",
             "multas": "Número de boleta"}
CHECK_NAMES = {"predial": "Dígito verificador del recibo", "agua": "Dígito verificador del recibo",
               "multas": "Placa del vehículo"}
LINE_NAMES = {"charge": "Cargo", "discount": "Descuento", "surcharge": "Recargo",
              "payment": "Pago", "reversal": "Pago cancelado"}

_env = Environment(loader=PackageLoader("services.billing", "templates"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined)
_env.filters["pesos"] = fmt
_env.globals.update(kind_names=KIND_NAMES, key_names=KEY_NAMES, check_names=CHECK_NAMES,
                    line_names=LINE_NAMES)


def page(name: str, payments_url: str, answer: int = 200, **context: Any) -> Response:
    response = Response(_env.get_template(name).render(context), status=answer,
                        mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy(payments_url)
    return response


def policy(payments_url: str) -> str:
    parts = urlsplit(payments_url)
    provider = f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
    return ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            f"form-action 'self' {provider}".rstrip() + "; base-uri 'none'; "
            "frame-ancestors 'none'")
