"""No shipped secret opens a door: the development values work on a developer's machine
(EXPEDIENTE_ENV=development) and nowhere else, where a service refuses to start with them."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from nameko.containers import ServiceContainer

from services.billing.service import BillingService
from services.intake.service import IntakeService
from services.tracking.service import TrackingService
from shared.chassis.auth import main_mint, mint_token
from shared.chassis.config import load_config
from shared.chassis.secrets import (
    DEVELOPMENT_SECRET,
    MODE_VARIABLE,
    SECRETS,
    SecretsCheck,
    UnsafeSecret,
    refusals,
    refuse_outside_development,
)

ROOT = Path(__file__).resolve().parents[2]
STRONG = "f3a9c1d07be24e6a9d5c8b1e0a7f4c2d"  # 32 bytes, as `openssl rand -hex 16` gives
# What an operator sets in production: every secret real, tokens from the identity provider.
PRODUCTION = {
    "AMQP_URI": "amqp://expediente:Zq8vN2pL7xR4tW9k@rabbitmq.expediente.svc:5672/expediente",
    "POSTGRES_PASSWORD": "Hb6yT1mQ9sK3vX7c",
    "JWT_ALGORITHMS": "RS256",
    "JWT_SECRET": DEVELOPMENT_SECRET,  # the shipped default, unused: no HS* algorithm accepted
    "SERVICE_TOKEN": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZXJ2aWNlOmludGFrZSJ9.c2lnbmF0dXJl",
    "CHATBOT_SECRET": STRONG,
    "UPLOAD_TICKET_SECRET": "9b1e4c7a2d5f8e0b3a6c9d2e5f8a1b4c",
    "OPEN311_API_KEYS": "fixmystreet:7c2e91b4d0a85f36,seeclickfix:e4b07a9d1c3f2865",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "PAYMENTS_SECRET": "pk_live_5e8a1b4c9b1e4c7a2d5f8e0b",
    "DOCUMENT_SECRET": "3a6c9d2e5f8a1b4c9b1e4c7a2d5f8e0b",
}
# Each development, placeholder or guessable value, and the setting the refusal must name.
UNSAFE = {
    "the development JWT secret": ({"JWT_ALGORITHMS": "HS256", "JWT_SECRET": DEVELOPMENT_SECRET},
                                   "JWT_SECRET"),
    "a short JWT secret": ({"JWT_ALGORITHMS": "RS256 HS256", "JWT_SECRET": "s3cr3t-of-20-bytes!!"},
                           "JWT_SECRET"),
    "no service token": ({"SERVICE_TOKEN": None}, "SERVICE_TOKEN"),
    "a placeholder service token": ({"SERVICE_TOKEN": "change-me"}, "SERVICE_TOKEN"),
    "the development chatbot secret": ({"CHATBOT_SECRET": "expediente-chatbot-dev"},
                                       "CHATBOT_SECRET"),
    "a short chatbot secret": ({"CHATBOT_SECRET": "whatsapp-2026"}, "CHATBOT_SECRET"),
    "the development upload-ticket secret": (
        {"UPLOAD_TICKET_SECRET": "expediente-upload-tickets-dev"}, "UPLOAD_TICKET_SECRET"),
    "the Open311 demo key": ({"OPEN311_API_KEYS": "city:7c2e91b4d0a85f36,demo:expediente-demo-key"},
                             "OPEN311_API_KEYS"),
    "a short Open311 key": ({"OPEN311_API_KEYS": "fixmystreet:k2"}, "OPEN311_API_KEYS"),
    "RabbitMQ's guest account": ({"AMQP_URI": "amqp://guest:guest@rabbitmq:5672//"}, "AMQP_URI"),
    "an empty broker address (a blank line in secrets.env)": ({"AMQP_URI": None}, "AMQP_URI"),
    "a placeholder database password": ({"POSTGRES_PASSWORD": "change-me"}, "POSTGRES_PASSWORD"),
    "a placeholder object store key": ({"AWS_SECRET_ACCESS_KEY": "CHANGE-ME"},
                                       "AWS_SECRET_ACCESS_KEY"),
    "the local fake payment gateway's secret": (
        {"PAYMENTS_SECRET": "expediente-fake-payments-dev"}, "PAYMENTS_SECRET"),
    "a short payment provider secret": ({"PAYMENTS_SECRET": "pk_live_12345"}, "PAYMENTS_SECRET"),
    "the development document secret": (
        {"DOCUMENT_SECRET": "expediente-billing-documents-dev"}, "DOCUMENT_SECRET"),
}


@pytest.fixture
def production(monkeypatch):
    """A machine that is not a developer's: no EXPEDIENTE_ENV, and none of our settings."""
    monkeypatch.delenv(MODE_VARIABLE, raising=False)
    for secret in SECRETS:
        monkeypatch.delenv(secret.setting, raising=False)
    for key in ("JWT_ALGORITHMS", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "JWT_PUBLIC_KEY"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_outside_development_mode_an_unsafe_secret_stops_the_service(case, production):
    unsafe, setting = UNSAFE[case]
    problems = refusals({**PRODUCTION, **unsafe}, calls_others=True)
    assert [problem.split()[0] for problem in problems] == [setting]

    with pytest.raises(UnsafeSecret) as refused:
        refuse_outside_development(problems, "intake will not start")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("intake will not start")
    assert setting in message and "EXPEDIENTE_ENV" in message
    assert refused.value.code == message  # printed as it is, exit status 1


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_in_development_mode_the_same_secret_is_accepted(case, production, monkeypatch):
    monkeypatch.setenv(MODE_VARIABLE, "development")
    unsafe, _ = UNSAFE[case]
    refuse_outside_development(refusals({**PRODUCTION, **unsafe}, calls_others=True), "intake")


def test_a_production_configuration_is_accepted(production):
    assert refusals(PRODUCTION, calls_others=True) == []


def test_only_development_is_development_mode(production, monkeypatch):
    for value in ("dev", "Development", "production", ""):
        monkeypatch.setenv(MODE_VARIABLE, value)
        with pytest.raises(UnsafeSecret):
            refuse_outside_development(["JWT_SECRET is unsafe"], "tracking will not start")


def test_empty_secrets_shut_their_doors_and_are_accepted(production):
    """No chatbot secret: the webhook refuses everyone; no Open311 keys: nobody may post."""
    shut = {"CHATBOT_SECRET": None, "OPEN311_API_KEYS": "", "POSTGRES_PASSWORD": None}
    assert refusals({**PRODUCTION, **shut}, calls_others=True) == []


def test_a_service_that_calls_no_other_needs_no_service_token(production):
    assert refusals({**PRODUCTION, "SERVICE_TOKEN": None}, calls_others=False) == []


def test_a_setting_left_out_of_the_config_is_read_from_the_environment(production, monkeypatch):
    monkeypatch.setenv("CHATBOT_SECRET", "expediente-chatbot-dev")
    config = {k: v for k, v in PRODUCTION.items() if k != "CHATBOT_SECRET"}
    assert [p.split()[0] for p in refusals(config, calls_others=True)] == ["CHATBOT_SECRET"]


def test_no_refusal_shows_a_real_secret(production):
    almost = "a-real-but-short-secret"
    problems = refusals({**PRODUCTION, "CHATBOT_SECRET": almost}, calls_others=True)
    assert problems and almost not in " ".join(problems)


def start_check(service_cls: type, config: dict) -> None:
    """What `nameko run` does with the service's SecretsCheck first (no broker needed)."""
    container = ServiceContainer(service_cls, config)
    next(d for d in container.dependencies if isinstance(d, SecretsCheck)).setup()


@pytest.mark.parametrize("service_cls", [IntakeService, TrackingService])
def test_each_service_refuses_its_shipped_configuration(service_cls, production):
    config = load_config(ROOT / "services" / service_cls.name / "config.yaml")
    with pytest.raises(UnsafeSecret) as refused:
        start_check(service_cls, config)
    message = str(refused.value)
    assert message.startswith(f"{service_cls.name} will not start")
    expected = {"JWT_SECRET", "AMQP_URI"}
    if service_cls is IntakeService:  # it calls tracking, and has the citizens' doors
        expected |= {"SERVICE_TOKEN", "CHATBOT_SECRET", "OPEN311_API_KEYS",
                     "UPLOAD_TICKET_SECRET"}
    named = {setting.split()[0] for setting in message.split(": ", 1)[1].split("; ")}
    assert named == expected


@pytest.mark.parametrize("service_cls", [IntakeService, TrackingService, BillingService])
def test_each_service_starts_with_a_production_configuration(service_cls, production):
    config = load_config(ROOT / "services" / service_cls.name / "config.yaml", **PRODUCTION)
    start_check(service_cls, config)


def test_development_mode_is_never_deployed():
    """Only make run, the tests and the benchmarks turn it on (from the process environment, so
    no config.yaml can): neither the image nor a manifest sets it."""
    manifests = [doc for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
                 for doc in yaml.safe_load_all(path.read_text())]
    assert MODE_VARIABLE not in yaml.safe_dump(manifests)  # comments aside
    assert MODE_VARIABLE not in (ROOT / "deploy" / "Dockerfile").read_text()


def test_the_cli_signs_with_the_development_key_only_in_development_mode(production, capsys,
                                                                          monkeypatch):
    with pytest.raises(UnsafeSecret) as refused:
        main_mint(["--sub", "ana", "--role", "admin"])
    assert "JWT_SECRET" in str(refused.value) and capsys.readouterr().out == ""
    with pytest.raises(UnsafeSecret):
        mint_token("ana", ["admin"], config={"JWT_SECRET": "short-but-not-public"})

    assert mint_token("ana", ["admin"], config={"JWT_SECRET": STRONG})
    monkeypatch.setenv(MODE_VARIABLE, "development")
    assert main_mint(["--sub", "ana", "--role", "admin"]) == 0
    assert capsys.readouterr().out.count(".") == 2  # a JWT


@pytest.mark.parametrize("module", sorted(
    f"services.{path.parent.name}.service" for path in ROOT.glob("services/*/service.py")))
def test_every_service_declares_the_check(module):
    """The check guards JWT_SECRET too: a service without it would verify development tokens."""
    service_cls = next(cls for cls in vars(importlib.import_module(module)).values()
                       if isinstance(cls, type) and cls.__module__ == module
                       and isinstance(getattr(cls, "name", None), str))
    assert inspect.getmembers(service_cls, lambda member: isinstance(member, SecretsCheck))
