"""The Kubernetes manifests agree with the code: every variable they set is one a service reads
(a setting that reaches nothing is a silent misconfiguration), every Deployment runs a service
that exists, and everything that points at a Deployment or Service names one that is there."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# Read from the environment by code rather than by a service's config: shared/chassis/__init__.py (before
# psycopg loads) and boto3 (the photo store's credentials).
READ_BY_THE_RUNTIME = {"PSYCOPG_WAIT_FUNC", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


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


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_every_shared_setting_reaches_some_service(kind):
    read = set().union(*(read_by(s) for s in SERVICES)) | READ_BY_THE_RUNTIME
    for doc in of_kind(kind).values():
        keys = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
        assert sorted(keys - read) == [], f"{doc['metadata']['name']}: read by no service"


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
