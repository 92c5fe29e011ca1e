"""`make run` is development mode on this machine only: its services accept the development
secrets and so listen on 127.0.0.1 unless told otherwise, as every service does by default."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from shared.chassis.config import load_config
from shared.chassis.secrets import MODE_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.parent.name for p in ROOT.glob("services/*/config.yaml"))


def local_run():
    spec = importlib.util.spec_from_file_location("local_run", ROOT / "deploy/local/run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_addresses(monkeypatch):
    for service in SERVICES:
        monkeypatch.delenv(f"{service.upper()}_HTTP_ADDRESS", raising=False)
    monkeypatch.delenv(MODE_VARIABLE, raising=False)


def test_make_run_starts_the_services_in_development_mode_on_this_machine(no_addresses):
    run = local_run()
    env = run.service_env()
    assert env[MODE_VARIABLE] == "development"
    assert {env[f"{name.upper()}_HTTP_ADDRESS"] for name, _ in run.SERVICES} == {
        f"127.0.0.1:{port}" for _, port in run.SERVICES}


def test_make_run_listens_elsewhere_only_when_told(no_addresses, monkeypatch):
    monkeypatch.setenv("INTAKE_HTTP_ADDRESS", "0.0.0.0:8000")
    assert local_run().service_env()["INTAKE_HTTP_ADDRESS"] == "0.0.0.0:8000"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_listens_on_this_machine_unless_told_otherwise(service, no_addresses,
                                                                 monkeypatch):
    config = ROOT / "services" / service / "config.yaml"
    assert load_config(config)["WEB_SERVER_ADDRESS"].startswith("127.0.0.1:")
    monkeypatch.setenv(f"{service.upper()}_HTTP_ADDRESS", "0.0.0.0:9000")
    assert load_config(config)["WEB_SERVER_ADDRESS"] == "0.0.0.0:9000"


def test_make_runs_tracking_trusts_the_photos_intake_and_crews_serve(monkeypatch):
    """Citizens' photos are intake's and the field's are crews' (each at its /media/): tracking
    takes both as a report's photo URLs, and its status page may show them."""
    for variable in ("TRUSTED_MEDIA_URLS", "INTAKE_PUBLIC_URL", "CREWS_PUBLIC_URL"):
        monkeypatch.delenv(variable, raising=False)
    trusted = load_config(ROOT / "services/tracking/config.yaml")["TRUSTED_MEDIA_URLS"]
    for service in ("intake", "crews"):
        public = load_config(ROOT / "services" / service / "config.yaml")["PUBLIC_URL"]
        assert f"{public}/media/" in trusted.split(","), service


class Broker:
    """`rabbitmqctl list_queues` (subprocess.run) lists `queues`; an AMQP connection records
    what is deleted."""

    def __init__(self, queues: list[str]) -> None:
        self.queues = queues
        self.deleted: list[str] = []
        self.calls = 0

    def __call__(self, argv, **_):
        import subprocess

        self.calls += 1
        assert argv[:3] == ["rabbitmqctl", "-q", "list_queues"]
        return subprocess.CompletedProcess(argv, 0, stdout="\n".join(self.queues) + "\n")

    def connection(self, *args, **kwargs):
        broker = self

        class Connection:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def channel(self):
                return self

            def queue_delete(self, queue):
                broker.deleted.append(queue)

        return Connection()


QUEUES = ["crews.consume_report_event", "billing.consume_report_event.retry.1",
          "notifications.deliver.parked", "rpc-tracking", "rpc.reply-crews-1234",
          "someone-else.queue", "rpc-echo"]


@pytest.fixture
def broker(monkeypatch):
    import amqp

    run = local_run()
    fake = Broker(QUEUES)
    monkeypatch.setattr(run.subprocess, "run", fake)
    monkeypatch.setattr(amqp, "Connection", fake.connection)
    return run, fake


def test_new_stores_start_without_an_earlier_run_s_waiting_events(broker):
    run, fake = broker
    run.forget_earlier_runs({}, fresh=True)
    assert fake.deleted == ["crews.consume_report_event", "billing.consume_report_event.retry.1",
                            "notifications.deliver.parked", "rpc-tracking"]


@pytest.mark.parametrize(("env", "fresh"), [
    ({}, False),  # the stores of the earlier run are still there: so are its events
    ({"AMQP_URI": "amqp://guest:guest@rabbit.example:5672/city"}, True),  # not ours to clear
])
def test_queues_are_left_alone_unless_the_stores_are_new_and_the_broker_local(broker, env,
                                                                              fresh):
    run, fake = broker
    run.forget_earlier_runs(env, fresh=fresh)
    assert fake.calls == 0 and fake.deleted == []


def test_a_broker_that_cannot_be_asked_is_reported_not_fatal(monkeypatch, capsys):
    run = local_run()

    def missing(argv, **_):
        raise FileNotFoundError("rabbitmqctl")

    monkeypatch.setattr(run.subprocess, "run", missing)
    run.forget_earlier_runs({}, fresh=True)
    assert "could not clear" in capsys.readouterr().err
