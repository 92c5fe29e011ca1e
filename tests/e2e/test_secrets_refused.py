"""`nameko run` outside development mode: with a development secret a service will not start (one
line naming the setting, a non-zero exit); with real secrets it starts."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from shared.chassis.secrets import MODE_VARIABLE, SECRETS
from tests.stack import RABBITMQCTL, create_vhost, delete_vhost
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e

STRONG = {"JWT_SECRET": secrets.token_hex(32), "CHATBOT_SECRET": secrets.token_hex(32),
          "OPEN311_API_KEYS": f"city:{secrets.token_hex(16)}", "SERVICE_TOKEN": "a-token-from-sso",
          "UPLOAD_TICKET_SECRET": secrets.token_hex(32)}


def environment(service: str, workdir: Path, **settings: str) -> dict[str, str]:
    """This machine's environment without development mode or any secret of ours, plus
    `settings`; stores in `workdir`, HTTP on a free local port."""
    ours = {MODE_VARIABLE, *(secret.setting for secret in SECRETS), *STRONG}
    env = {key: value for key, value in os.environ.items() if key not in ours}
    return {**env, "PYTHONPATH": str(ROOT), "PSYCOPG_WAIT_FUNC": "wait_select",
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            f"{service.upper()}_SQLITE_DBNAME": str(workdir / f"{service}.sqlite"),
            "INTAKE_PHOTO_DIR": str(workdir / "photos"),
            f"{service.upper()}_HTTP_ADDRESS": f"127.0.0.1:{free_port()}", **settings}


def nameko_run(service: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "nameko"), "run", "--config",
         str(ROOT / "services" / service / "config.yaml"), f"services.{service}.service"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def refusal(service: str, env: dict[str, str]) -> str:
    """The service's last line of output, once it has exited non-zero."""
    process = nameko_run(service, env)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0, output
    assert "Traceback" not in output, output
    return output.strip().splitlines()[-1]


@pytest.mark.parametrize("service", ["intake", "tracking"])
def test_a_service_with_the_shipped_secrets_will_not_start_outside_development_mode(
        service, tmp_path):
    line = refusal(service, environment(service, tmp_path))
    assert line.startswith(f"{service} will not start outside development mode")
    assert "JWT_SECRET" in line and f"{MODE_VARIABLE}=development" in line


@pytest.mark.parametrize("setting, value", [
    ("CHATBOT_SECRET", "expediente-chatbot-dev"),
    ("OPEN311_API_KEYS", "demo:expediente-demo-key"),
    ("SERVICE_TOKEN", ""),
])
def test_one_development_secret_among_real_ones_is_named(setting, value, tmp_path):
    env = environment("intake", tmp_path, **{**STRONG, setting: value},
                      AMQP_URI="amqp://expediente:a-real-password@127.0.0.1:5672//")
    line = refusal("intake", env)
    assert line.startswith("intake will not start") and setting in line
    assert all(other not in line for other in STRONG if other != setting)


@pytest.fixture
def broker_account():
    """A RabbitMQ user with a real password in a vhost of its own, as production has."""
    vhost, user, password = create_vhost(), f"test-{secrets.token_hex(4)}", secrets.token_hex(16)
    subprocess.run([RABBITMQCTL, "-q", "add_user", user, password], check=True,
                   capture_output=True)
    subprocess.run([RABBITMQCTL, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
                   check=True, capture_output=True)
    yield f"amqp://{user}:{password}@127.0.0.1:5672/{vhost}"
    subprocess.run([RABBITMQCTL, "-q", "delete_user", user], check=False, capture_output=True)
    delete_vhost(vhost)


def test_with_real_secrets_the_service_starts_outside_development_mode(tmp_path,
                                                                      broker_account):
    env = environment("intake", tmp_path, **STRONG, AMQP_URI=broker_account)
    process = nameko_run("intake", env)
    url = f"http://{env['INTAKE_HTTP_ADDRESS']}/healthz"

    def healthy() -> bool:
        assert process.poll() is None, process.communicate()[0]
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False

    try:
        wait_for(healthy, timeout=60, interval=0.2, message="intake to start")
    finally:
        process.terminate()
        process.communicate(timeout=20)
