"""The Kubernetes manifests agree with the code: every variable they set is one a service reads
(a setting that reaches nothing is a silent misconfiguration), every Deployment runs a service
that exists, and everything that points at a Deployment or Service names one that is there.
No secret is committed: the Secret is generated from the operator's own secrets.env, whose
committed example lists every secret a service reads."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.chassis.secrets import (
    CHATBOT_DEVELOPMENT_SECRET,
    DEVELOPMENT_SECRET,
    OPEN311_DEMO_KEY,
    PLACEHOLDERS,
    SECRETS,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# Read from the environment by code rather than by a service's config: shared/chassis/__init__.py
# (before psycopg loads) and boto3 (the photo store's credentials).
READ_BY_THE_RUNTIME = {"PSYCOPG_WAIT_FUNC", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
EXAMPLE = K8S / "secrets.env.example"
# What belongs in the Secret: the settings shared/chassis/secrets.py checks, and the other half
# of the object store's credentials.
SECRET_SETTINGS = {secret.setting for secret in SECRETS} | {"AWS_ACCESS_KEY_ID"}
PUBLISHED = (DEVELOPMENT_SECRET, CHATBOT_DEVELOPMENT_SECRET, OPEN311_DEMO_KEY, "guest:guest")


def documents() -> list[dict]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents() if doc["kind"] == kind}


def read_by(service: str) -> set[str]:
    """The environment variables a service's nameko config reads."""
    lines = (ROOT / "services" / service / "config.yaml").read_text().splitlines()
    config = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Z0-9_]+)", config))


SERVICES = sorted(p.parent.name for p in ROOT.glob("services/*/config.yaml"))


def test_kustomize_applies_every_manifest_in_the_directory():
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml")
                                    if p.name != "kustomization.yaml")


@pytest.mark.parametrize("name", sorted(of_kind("Deployment")))
def test_a_deployment_runs_a_service_that_exists_with_settings_it_reads(name):
    container = of_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    module = command[-1]
    assert importlib.util.find_spec(module) is not None, module
    service = module.split(".")[1]
    assert f"services/{service}/config.yaml" in command
    unread = [e["name"] for e in container.get("env", [])
              if e["name"] not in read_by(service) | READ_BY_THE_RUNTIME]
    assert unread == [], f"{name} sets variables {service} never reads"


def strings(node: object) -> list[str]:
    """Every string value in a manifest."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def example_keys() -> dict[str, str]:
    """secrets.env.example as kustomize reads it: KEY=value lines, comments and blanks aside."""
    lines = [line.strip() for line in EXAMPLE.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_every_shared_setting_reaches_some_service():
    read = set().union(*(read_by(s) for s in SERVICES)) | READ_BY_THE_RUNTIME
    for doc in of_kind("ConfigMap").values():
        assert sorted(set(doc["data"]) - read) == [], f"{doc['metadata']['name']}: read by none"
    assert sorted(set(example_keys()) - read) == [], "secrets.env.example: read by no service"


def test_no_committed_manifest_carries_a_secret_value():
    assert [name for name, doc in of_kind("Secret").items()
            if doc.get("data") or doc.get("stringData")] == []
    values = [value for doc in documents() for key, node in doc.items() if key != "kind"
              for value in strings(node)]  # comments aside
    assert [v for v in values if v.lower() in PLACEHOLDERS or any(p in v for p in PUBLISHED)] == []
    assert {key: value for key, value in example_keys().items() if value} == {}


def test_the_secret_is_generated_from_a_file_kept_out_of_git():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert generated["expediente-secrets"]["envs"] == ["secrets.env"]
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "deploy/k8s/secrets.env" in ignored


@pytest.mark.parametrize("name", sorted(of_kind("Deployment")))
def test_the_example_lists_every_secret_a_deployment_reads(name):
    container = of_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    service = container["command"][-1].split(".")[1]
    named = {e["valueFrom"]["secretKeyRef"]["key"] for e in container.get("env", [])
             if "secretKeyRef" in e.get("valueFrom", {})}
    if any("secretRef" in source for source in container.get("envFrom", [])):
        configured = set().union(*(doc["data"] for doc in of_kind("ConfigMap").values()))
        configured |= {e["name"] for e in container.get("env", [])}
        named |= (SECRET_SETTINGS & (read_by(service) | READ_BY_THE_RUNTIME)) - configured
    assert sorted(named - set(example_keys())) == []


@pytest.mark.parametrize("name", sorted(of_kind("Deployment")))
def test_a_deployment_listens_on_every_interface_of_its_pod(name):
    """Outside a container a service listens on 127.0.0.1; in a pod the Service must reach it."""
    container = of_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"][0]
    service = container["command"][-1].split(".")[1]
    config = (ROOT / "services" / service / "config.yaml").read_text()
    variable = re.search(r"^WEB_SERVER_ADDRESS: \$\{([A-Z_]+):", config, re.M).group(1)
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env[variable] == f"0.0.0.0:{container['ports'][0]['containerPort']}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl to render")
def test_kustomize_makes_the_secret_from_the_operators_file(tmp_path):
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    shutil.copy(EXAMPLE, copy / "secrets.env")
    rendered = subprocess.run(["kubectl", "kustomize", str(copy)], capture_output=True,
                              text=True, check=True).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    [secret] = [doc for doc in docs if doc["kind"] == "Secret"]
    assert set(secret["data"]) == set(example_keys())
    for deployment in (doc for doc in docs if doc["kind"] == "Deployment"):
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources

    (copy / "secrets.env").unlink()  # an operator who has not made it: nothing is applied
    assert subprocess.run(["kubectl", "kustomize", str(copy)], capture_output=True).returncode


def test_what_points_at_a_deployment_or_a_service_finds_it():
    deployments, services = of_kind("Deployment"), of_kind("Service")
    for hpa in of_kind("HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    for pdb in of_kind("PodDisruptionBudget").values():
        labels = pdb["spec"]["selector"]["matchLabels"]
        assert any(d["spec"]["selector"]["matchLabels"] == labels for d in deployments.values())
    for ingress in of_kind("Ingress").values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports


@pytest.mark.parametrize("name", sorted(of_kind("Ingress")))
def test_the_ingress_keeps_health_and_metrics_inside_the_cluster(name):
    for rule in of_kind("Ingress")[name]["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert not (path["path"] == "/" and path["pathType"] == "Prefix"), \
                f"{name} routes everything, /metrics and /readyz included"
            assert path["path"].split("/")[1] not in ("metrics", "healthz", "readyz")


def test_every_public_crews_door_has_a_route_and_probes_have_none():
    """The field app and its API reach crews through its ingress; health and metrics do not."""
    from services.crews.service import CrewsService
    from tests.unit.test_access_doc import doors

    routes = [(path["path"], path["pathType"]) for rule in of_kind("Ingress")["crews"]["spec"]
              ["rules"] for path in rule["http"]["paths"]]

    def routed(url: str) -> bool:
        return any(url == path or (kind == "Prefix" and url.startswith(path + "/"))
                   for path, kind in routes)

    inside = ("/healthz", "/readyz", "/metrics")
    for door in doors(CrewsService):
        if " " not in door:
            continue  # an RPC: the bus, not the ingress
        url = door.split(" ", 1)[1]
        assert routed(url) != (url in inside), door
