"""The Helm chart, linted and rendered by Helm's own library for every ci/ scenario.

helm-python-sdk binds Helm's Go SDK (no helm binary); kubernetes-validate
checks the Kubernetes objects offline against the API schemas it ships; the
Prometheus Operator objects, which it has no schema for, are checked by
promtool (the rules) and by their selectors (the ServiceMonitor).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from exporter import cli
from tests.support import ROOT, require

CHART = ROOT / "helm" / "dtr-sizing-exporter"
SCENARIOS = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
# The oldest and the newest API the validator ships schemas for (Chart.yaml: kubeVersion >=1.25).
KUBE_VERSIONS = ("1.25.0", "1.37.0")
CORE_KINDS = {"DaemonSet", "Service", "ServiceAccount", "ConfigMap"}
STATE_DIR = "/var/lib/dtr-sizing-exporter"  # the one writable mount: the growth history


def values_of(scenario: str) -> dict:
    return yaml.safe_load((CHART / "ci" / scenario).read_text()) or {}


def render(values: dict) -> tuple[list[dict], str]:
    """The objects the chart renders for ``values``, and its NOTES."""
    with helm.Chart.load(CHART) as chart:
        out = chart.render(values, name="dtr", namespace="monitoring", is_install=True)
    notes = next((text for name, text in out.items() if name.endswith("NOTES.txt")), "")
    docs = [d for name, text in out.items() if not name.endswith("NOTES.txt")
            for d in yaml.safe_load_all(text) if d]
    return docs, notes


def one(docs: list[dict], kind: str, suffix: str = "") -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def pod_of(docs: list[dict]) -> dict:
    return one(docs, "DaemonSet")["spec"]["template"]["spec"]


def rules_in(directory: Path) -> list[dict]:
    return [g for f in sorted(directory.glob("*.rules.yml")) for g in yaml.safe_load(f.read_text())["groups"]]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_is_clean(scenario):
    report = helm.lint(CHART, values_of(scenario), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
    assert not report["errors"] and not problems, report


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_objects_are_valid_kubernetes(scenario):
    docs, _ = render(values_of(scenario))
    assert CORE_KINDS <= {d["kind"] for d in docs}
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # no schema shipped: checked by the tests below
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_an_unknown_field():
    """Guards the test above: a strict validator that passed everything would prove nothing."""
    docs, _ = render({})
    daemonset = one(docs, "DaemonSet")
    daemonset["spec"]["template"]["spec"]["containers"][0]["readOnly"] = True  # belongs on a volumeMount
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBE_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_container_args_are_accepted_by_the_exporter(scenario, tmp_path):
    docs, _ = render(values_of(scenario))
    pod = pod_of(docs)
    container = pod["containers"][0]
    args = list(container["args"])
    # the rendered ConfigMap is the config file the exporter will read: load it too
    config_text = one(docs, "ConfigMap", "sizing-exporter")["data"]["config.yaml"]
    (tmp_path / "config.yaml").write_text(config_text)
    args = [f"--config.file={tmp_path / 'config.yaml'}" if a.startswith("--config.file=") else a for a in args]
    parsed, config = cli.load_config(args)
    assert parsed.command == "serve"
    assert (config.procfs, config.sysfs, config.rootfs) == ("/host/proc", "/host/sys", "/host/root")
    assert config.listen_address.endswith(f":{container['ports'][0]['containerPort']}")

    # every path the exporter is given lies on a volume mounted where it looks
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    paths = [a.split("=", 1)[1].removeprefix("unix://") for a in container["args"]
             if a.split("=", 1)[0] in ("--path.procfs", "--path.sysfs", "--path.rootfs", "--config.file",
                                       "--storage.state-dir", "--storage.path", "--docker.host",
                                       "--dtr.password-file", "--dtr.ca-file")]
    for path in paths:
        assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts), f"{path} not mounted"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_host_mounts_read_only_and_runs_unprivileged(scenario):
    docs, _ = render(values_of(scenario))
    pod = pod_of(docs)
    container = pod["containers"][0]
    host_volumes = {v["name"] for v in pod["volumes"] if "hostPath" in v}
    assert {"proc", "sys", "root"} <= host_volumes
    for mount in container["volumeMounts"]:
        if mount["name"] in host_volumes and mount["mountPath"] != STATE_DIR:
            assert mount.get("readOnly") is True, f"host mount {mount['name']} is writable"
    assert not pod.get("hostPID") and not pod.get("hostNetwork")
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and not security["capabilities"].get("add")
    assert not security.get("privileged")
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])


def test_defaults_keep_the_docker_socket_out():
    pod = pod_of(render({})[0])
    assert not [v for v in pod["volumes"] if "docker.sock" in json.dumps(v)]
    assert "--no-collector.docker" in pod["containers"][0]["args"]


def test_docker_socket_is_read_only_and_reached_through_its_group():
    pod = pod_of(render(values_of("docker-socket-values.yaml"))[0])
    socket = next(v for v in pod["volumes"] if v["name"] == "docker-socket")
    assert socket["hostPath"]["type"] == "Socket"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "docker-socket")
    assert mount["readOnly"] is True
    assert pod["securityContext"]["supplementalGroups"] == [998]


def test_external_storage_scans_nothing_local():
    args = pod_of(render(values_of("external-storage-values.yaml"))[0])["containers"][0]["args"]
    assert {"--no-collector.storage", "--no-collector.pagecache"} <= set(args)
    assert not [a for a in args if a.startswith("--storage.path")]
    assert "--dtr.password-file=/var/run/secrets/dtr/password" in args


def test_prometheus_operator_objects_are_opt_in():
    kinds = {d["kind"] for d in render({})[0]}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert not [d for d in render({})[0] if d["metadata"]["name"].endswith("-dashboards")]


def test_prometheusrule_carries_exactly_the_alerts():
    docs, _ = render({"prometheusRule": {"enabled": True}})
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    source = rules_in(ROOT / "alerts")
    assert source, "alerts/ holds no *.rules.yml"
    assert groups == source


def test_prometheusrule_passes_promtool(tmp_path):
    promtool = require("promtool")
    docs, _ = render({"prometheusRule": {"enabled": True}})
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": one(docs, "PrometheusRule")["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_copies_of_alerts_and_dashboards_have_not_drifted():
    pairs = [(ROOT / "alerts", CHART / "files" / "alerts", "*.rules.yml"),
             (ROOT / "dashboards", CHART / "files" / "dashboards", "*.json")]
    for source, copy, pattern in pairs:
        names = sorted(p.name for p in source.glob(pattern))
        assert names == sorted(p.name for p in copy.glob(pattern)), \
            f"{copy} differs from {source}: run `make generate`"
        for name in names:
            assert (source / name).read_bytes() == (copy / name).read_bytes(), \
                f"{copy / name} drifted from {source / name}: run `make generate`"


def test_dashboards_configmap_for_the_grafana_sidecar():
    docs, _ = render({"dashboards": {"enabled": True}})
    configmap = one(docs, "ConfigMap", "-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    sources = {p.name: json.loads(p.read_text()) for p in (ROOT / "dashboards").glob("*.json")}
    assert sources and {k: json.loads(v) for k, v in configmap["data"].items()} == sources


def test_servicemonitor_selects_the_service_port():
    docs, _ = render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    monitor, service = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= \
        one(docs, "DaemonSet")["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("values, where", [
    ({"storage": {"driver": "nfs"}}, "/storage/driver"),
    ({"docker": {"socket": {"enabled": True}}}, "groupId"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"extraArgs": ["storage.path=/x"]}, "/extraArgs"),
    ({"serviceMonitr": {"enabled": True}}, "serviceMonitr"),
])
def test_schema_rejects_bad_values(values, where):
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as err:
        chart.render(values, name="dtr")
    assert where in str(err.value)


def test_image_reference_prefers_the_digest():
    digest = "sha256:" + "ab" * 32
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    image = lambda v: pod_of(render(v)[0])["containers"][0]["image"]  # noqa: E731
    assert image({}) == f"docker.io/dtr-sizing-exporter/dtr-sizing-exporter:{app_version}"
    assert image({"image": {"tag": "1.2.3", "digest": digest}}).endswith(f"dtr-sizing-exporter@{digest}")


def test_notes_tell_how_to_reach_the_metrics():
    _, notes = render({})
    assert "kubectl -n monitoring port-forward daemonset/dtr-dtr-sizing-exporter 9742:9742" in notes
    assert "http://dtr-dtr-sizing-exporter.monitoring.svc:9742/metrics" in notes
