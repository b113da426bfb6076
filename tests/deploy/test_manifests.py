"""The Kubernetes manifests in deploy/kubernetes: every resource valid against Kubernetes' own
API schemas (kubernetes-validate ships them; no cluster runs here), the pieces consistent with
each other (ports, selectors, kustomizations), every TASKQ_* variable a real setting, and the
server started with exactly the pod's environment (files in a temporary directory) answering
the probes the manifests declare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.certificates import ServerFiles
from support.grpc_proxy import free_port

from taskq.config import Config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
#: The oldest Kubernetes the manifests promise to work on (gRPC probes are GA since 1.27).
KUBERNETES_VERSION = "1.29.0"
#: Kinds from CRDs (cert-manager, Prometheus Operator): not in Kubernetes' schemas, checked by hand.
CRD_REQUIRED = {
    "Certificate": ("secretName", "issuerRef", "dnsNames"),
    "ServiceMonitor": ("selector", "endpoints"),
}
VARIANTS = {"rocksdb": "statefulset.yaml", "postgres": "deployment.yaml"}


def documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def resources() -> list[tuple[Path, dict]]:
    return [(path, document) for path in sorted(DEPLOY.rglob("*.yaml")) if path.name != "kustomization.yaml"
            for document in documents(path)]


def workload(variant: str) -> dict:
    [document] = documents(DEPLOY / variant / VARIANTS[variant])
    return document


def container(variant: str) -> dict:
    [taskq] = workload(variant)["spec"]["template"]["spec"]["containers"]
    return taskq


@pytest.mark.parametrize("path,document", resources(), ids=lambda value: getattr(value, "name", None) or "")
def test_every_resource_is_valid_for_its_kind(path, document):
    kind = document["kind"]
    if kind in CRD_REQUIRED:
        assert document["metadata"]["name"]
        missing = [field for field in CRD_REQUIRED[kind] if field not in document["spec"]]
        assert not missing, f"{path.name}: {kind} lacks {missing}"
        return
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kustomizations_list_files_that_exist_and_every_required_one(variant):
    [kustomization] = documents(DEPLOY / variant / "kustomization.yaml")
    listed = {(DEPLOY / variant / entry).resolve() for entry in kustomization["resources"]}
    assert all(path.exists() for path in listed)
    own = {path.resolve() for path in (DEPLOY / variant).glob("*.yaml") if path.name != "kustomization.yaml"}
    assert own <= listed
    # The optional ones, named in comments, exist too.
    for line in (DEPLOY / variant / "kustomization.yaml").read_text().splitlines():
        if line.strip().startswith("# - "):
            assert (DEPLOY / variant / line.split()[2]).exists(), line


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_services_and_policies_name_ports_the_pod_has(variant):
    pod = workload(variant)["spec"]["template"]
    ports = {port["name"]: port["containerPort"] for port in container(variant)["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container(variant)[probe]["grpc"]["port"] == ports["health"], probe
    labels = pod["metadata"]["labels"]
    for path, document in resources():
        if document["kind"] == "Service":
            assert document["spec"]["selector"].items() <= labels.items(), path.name
            for port in document["spec"]["ports"]:
                assert port["targetPort"] in ports, (path.name, port)
        if document["kind"] == "NetworkPolicy":
            assert document["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            for rule in document["spec"]["ingress"]:
                assert all(port["port"] in ports for port in rule["ports"])
    volumes = {volume["name"] for volume in pod["spec"].get("volumes", [])}
    volumes |= {claim["metadata"]["name"] for claim in workload(variant)["spec"].get("volumeClaimTemplates", [])}
    assert {mount["name"] for mount in container(variant)["volumeMounts"]} <= volumes


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_taskq_variable_in_the_manifests_is_a_setting(variant):
    settings = set(Config.__dataclass_fields__)
    for variable in container(variant)["env"]:
        name = variable["name"]
        assert name.startswith("TASKQ_")
        assert name[len("TASKQ_"):].lower() in settings, f"{name} is not a taskq setting"


def pod_environment(variant: str, root: Path, files: ServerFiles, extra: dict[str, str]) -> dict[str, str]:
    """The container's environment with its mounted paths moved under `root`, Secret values
    given in `extra`, and free ports in place of the pod's."""
    mounts = {mount["mountPath"]: root / mount["name"] for mount in container(variant)["volumeMounts"]}
    environment = {}
    for variable in container(variant)["env"]:
        if "valueFrom" in variable:
            if variable["name"] in extra:
                environment[variable["name"]] = extra[variable["name"]]
            continue
        value = variable["value"]
        # The longest mount path that holds the value's path, replaced once.
        for mount_path in sorted(mounts, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path + "/"):
                value = str(mounts[mount_path]) + value[len(mount_path):]
                break
        if value.startswith("0.0.0.0:"):
            value = f"127.0.0.1:{free_port()}"
        environment[variable["name"]] = value
    tls = root / "tls"
    tls.mkdir(exist_ok=True)
    (tls / "tls.crt").write_bytes(Path(files.cert_file).read_bytes())
    (tls / "tls.key").write_bytes(Path(files.key_file).read_bytes())
    auth = root / "auth"
    auth.mkdir(exist_ok=True)
    (auth / "tokens.yaml").write_text("tokens: []\n")
    return environment


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_server_starts_with_the_pods_environment_and_answers_its_probes(variant, tmp_path, request):
    extra = {}
    if variant == "postgres":
        extra["TASKQ_DATABASE"] = request.getfixturevalue("postgres_cluster").new_database()
    (tmp_path / "certificates").mkdir()
    environment = pod_environment(variant, tmp_path, ServerFiles(tmp_path / "certificates"), extra)
    clean = {key: value for key, value in os.environ.items() if not key.startswith("TASKQ_")}
    process = subprocess.Popen([sys.executable, "-m", "taskq.cli.main", *container(variant)["args"]],
                               env={**clean, **environment}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "listening on" in line, process.stderr.read() if process.poll() is not None else line
        with grpc.insecure_channel(environment["TASKQ_HEALTH_LISTEN"]) as channel:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                service = container(variant)[probe]["grpc"].get("service", "")
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                                   timeout=10)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, probe
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
