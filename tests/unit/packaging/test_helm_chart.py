"""The Helm chart deploy/helm/workflow-orchestrator, linted, rendered and validated offline.

helm-python-sdk (Helm v4's library) lints and renders it, with the deployment guide's `--set`
values among others; kubernetes-validate checks every object against Kubernetes's schemas; the
service's own configuration loader reads the application.yaml the chart renders.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shlex
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from deploy.helm import config_schema, package_chart
from deploy.helm.rendering import CHART_DIR, NAMESPACE, RELEASE, render
from deploy.helm.rendering import render_templates as render_text
from tests.support.chart import (
    GUIDE_SET,
    KUBERNETES_VERSIONS,
    container,
    guide_values,
    objects_of,
    one,
    pod_environment,
    secret_values,
    validation_problems,
)
from tests.support.guide import guide_blocks, require_guide
from workflow_orchestrator._version import __version__
from workflow_orchestrator.config import effective_tree, load_config

Rendered = dict[str, list[dict[str, Any]]]

#: The guide's Secret of "Secrets Management" and its secretKeyRef.
GUIDE_SECRET = "workflow-orchestrator-secrets"

#: Every optional part on: autoscaling, ServiceMonitor, TLS on the management port, extra
#: environment and volumes, spread constraints, the password in an existing Secret.
EVERYTHING: dict[str, Any] = {
    "database": {
        "host": "db-host",
        "name": "workflows",
        "user": "workflow_user",
        "existingSecret": GUIDE_SECRET,
        "parameters": {"sslmode": "require", "application_name": "workflow orchestrator"},
    },
    "image": {"tag": "1.5.2"},
    "imagePullSecrets": [{"name": "company-registry"}],
    "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
    "metrics": {
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "tlsConfig": {"serverName": "workflow-orchestrator.workflow-system.svc"},
        }
    },
    "config": {
        "server": {
            "shutdownGracePeriod": "45s",
            "managementTls": {
                "enabled": True,
                "certificate": "/etc/workflow-orchestrator/tls/tls.crt",
                "privateKey": "/etc/workflow-orchestrator/tls/tls.key",
            },
        },
        "eventProcessing": {
            "source": "kafka",
            "kafka": {
                "bootstrapServers": "kafka:9092",
                "securityProtocol": "SASL_PLAINTEXT",
                "sasl": {
                    "mechanism": "SCRAM-SHA-512",
                    "username": "workflow",
                    "password": "${KAFKA_PASSWORD}",
                },
            },
        },
    },
    "extraEnv": [
        {
            "name": "KAFKA_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": GUIDE_SECRET, "key": "kafka-password"}},
        }
    ],
    "extraVolumes": [{"name": "tls", "secret": {"secretName": "workflow-orchestrator-tls"}}],
    "extraVolumeMounts": [
        {"name": "tls", "mountPath": "/etc/workflow-orchestrator/tls", "readOnly": True}
    ],
    "podAntiAffinity": "hard",
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ],
    "podAnnotations": {"example.com/team": "workflows"},
}

#: Values the chart must render, each with a name for the test ids.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "required-only": {
        "database": {"host": "db-host", "name": "workflows", "user": "workflow_user"}
    },
    "guide": guide_values(),
    "everything": EVERYTHING,
    "no-migration-job": guide_values("migration.enabled=false", "serviceAccount.create=false"),
    "single-replica": guide_values("replicaCount=1", "preStopSleepSeconds=0"),
}


@pytest.fixture(scope="module")
def renderings() -> dict[str, Rendered]:
    return {name: render(values) for name, values in VALUE_SETS.items()}


@pytest.fixture(scope="module")
def guide(renderings: dict[str, Rendered]) -> Rendered:
    return renderings["guide"]


def refusal(values: Mapping[str, Any]) -> str:
    """The message Helm refuses ``values`` with (schema or template)."""
    with pytest.raises(helm_python.HelmError) as refused:
        render_text(values)
    return str(refused.value)


# --- The chart as a package ---------------------------------------------------------------


def test_chart_versions_are_the_package_version() -> None:
    """Chart.yaml: apiVersion v2, version and appVersion equal to setup.cfg's version."""
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "workflow-orchestrator"
    assert chart["version"] == chart["appVersion"] == __version__
    assert chart["kubeVersion"] == ">=1.22.0-0"  # the guide's Kubernetes 1.22+


def lint_findings(report: Mapping[str, Any]) -> list[str]:
    """Warnings and errors of a lint report (severity 1 is information, e.g. "icon is
    recommended")."""
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + list(
        report["errors"]
    )


@pytest.mark.parametrize("kube_version", [None, "v1.22.0"])
def test_chart_lints_clean_in_strict_mode(kube_version: str | None) -> None:
    """`helm lint --strict` with the guide's values finds nothing (also for Kubernetes 1.22)."""
    report = helm_python.lint(CHART_DIR, guide_values(), strict=True, kube_version=kube_version)
    assert report["total_charts_linted"] == 1
    assert lint_findings(report) == []


def test_packaged_chart_lints_clean(tmp_path: Path) -> None:
    """`make chart`'s archive (helm package) lints clean and holds only the chart's files."""
    archive = package_chart.package(tmp_path)
    assert archive.name == f"workflow-orchestrator-{__version__}.tgz"
    report = helm_python.lint(archive, guide_values(), strict=True)
    assert lint_findings(report) == []
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {
        "workflow-orchestrator/Chart.yaml",
        "workflow-orchestrator/values.yaml",
        "workflow-orchestrator/values.schema.json",
        "workflow-orchestrator/README.md",
        "workflow-orchestrator/templates/NOTES.txt",
    } <= names
    assert not [n for n in names if n.endswith((".py", ".pyc"))]


def test_config_schema_is_generated_from_the_settings() -> None:
    """values.schema.json's `config` is what deploy/helm/config_schema.py derives now."""
    text = config_schema.SCHEMA_PATH.read_text()
    assert text == config_schema.schema_text(json.loads(text)), (
        "values.schema.json is out of date with the service's settings: run make chart-schema"
    )


# --- The guide's install ------------------------------------------------------------------


def test_guide_install_command_is_the_one_rendered() -> None:
    """The guide's `helm install` block: release, namespace and `--set` options used here."""
    (block,) = [b for b in guide_blocks(require_guide()) if "helm install" in b.text]
    words = shlex.split(block.text.split("helm install", 1)[1], comments=True)
    assert words[0] == RELEASE
    assert words[words.index("--namespace") + 1] == NAMESPACE
    assert "--create-namespace" in words
    assert tuple(words[i + 1] for i, w in enumerate(words) if w == "--set") == GUIDE_SET


def test_guide_install_runs_three_replicas_with_the_guides_probes(guide: Rendered) -> None:
    """The Deployment of the guide's High Availability section: its name, 3 replicas, both
    ports, and its probes on 8081 with the same timings."""
    deployment = one(guide, "Deployment", RELEASE)
    assert deployment["spec"]["replicas"] == 3
    server = container(deployment, "workflow-orchestrator")  # `kubectl set image` names it
    assert server["image"] == f"company-registry/workflow-orchestrator:{__version__}"
    assert server["args"] == ["serve"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8080, "management": 8081}
    for probe, path, delay, period in (
        ("readinessProbe", "/health/ready", 30, 10),
        ("livenessProbe", "/health/live", 60, 15),
    ):
        spec = server[probe]
        assert spec["httpGet"]["path"] == path
        assert ports[spec["httpGet"]["port"]] == 8081
        assert (spec["initialDelaySeconds"], spec["periodSeconds"]) == (delay, period)
    assert server["startupProbe"]["httpGet"] == {
        "path": "/health/live",
        "port": "management",
        "scheme": "HTTP",
    }
    assert server["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}  # guide's minimum
    service = one(guide, "Service", RELEASE)  # Prometheus's target workflow-orchestrator:8081
    assert {(p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        (8080, "http"),
        (8081, "management"),
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_guide_probes_match_the_guide_text(guide: Rendered) -> None:
    """Every probe field of the guide's Deployment block is the rendered one's."""
    (block,) = [b for b in guide_blocks(require_guide()) if "kind: Deployment" in b.text]
    (expected,) = yaml.safe_load(block.text)["spec"]["template"]["spec"]["containers"]
    server = container(one(guide, "Deployment", RELEASE), expected["name"])
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert [p["containerPort"] for p in expected["ports"]] == list(ports.values())
    for probe in ("readinessProbe", "livenessProbe"):
        wanted = dict(expected[probe])
        wanted_get = wanted.pop("httpGet")
        got = dict(server[probe])
        got_get = dict(got.pop("httpGet"), port=ports[server[probe]["httpGet"]["port"]])
        assert wanted.items() <= got.items(), probe  # initialDelaySeconds, periodSeconds
        assert wanted_get.items() <= got_get.items(), probe  # path, port 8081


def test_password_comes_from_a_secret_never_the_configmap(guide: Rendered) -> None:
    """--set database.password: the chart's Secret <fullname>-database holds it; the pods read
    DATABASE_PASSWORD from it by secretKeyRef; no ConfigMap contains it. The chart never
    renders the guide's Secret workflow-orchestrator-secrets: the user creates that one (with
    kafka-password too), and an install must not take it over or overwrite it."""
    secret = one(guide, "Secret", f"{RELEASE}-database")
    assert secret_values([secret]) == {
        (f"{RELEASE}-database", "database-password"): "secure_password"
    }
    server = container(one(guide, "Deployment", RELEASE), "workflow-orchestrator")
    (password,) = [v for v in server["env"] if v["name"] == "DATABASE_PASSWORD"]
    assert password["valueFrom"] == {
        "secretKeyRef": {"name": f"{RELEASE}-database", "key": "database-password"}
    }
    for config_map in (m for m in objects_of(guide) if m["kind"] == "ConfigMap"):
        assert "secure_password" not in json.dumps(config_map)
    assert not [m for m in objects_of(guide) if m["metadata"]["name"] == GUIDE_SECRET]


def test_configmap_names_the_database(guide: Rendered) -> None:
    """application.yaml holds database.url built from host, port and name, and the user."""
    config = yaml.safe_load(one(guide, "ConfigMap", RELEASE)["data"]["application.yaml"])
    assert config["database"]["url"] == "jdbc:postgresql://db-host:5432/workflows"
    assert config["database"]["username"] == "workflow_user"
    assert "migrateOnStartup" not in config["database"]  # the service's default: true
    assert "password" not in config["database"]


def test_database_url_carries_parameters_and_ipv6_hosts() -> None:
    """database.parameters become the URL's query; an IPv6 address is bracketed."""
    everything = render(EVERYTHING)
    config = yaml.safe_load(one(everything, "ConfigMap", RELEASE)["data"]["application.yaml"])
    assert config["database"]["url"] == (
        "jdbc:postgresql://db-host:5432/workflows"
        "?application_name=workflow+orchestrator&sslmode=require"
    )
    ipv6 = render(guide_values("database.host=fd00::5", "database.port=6432"))
    config = yaml.safe_load(one(ipv6, "ConfigMap", RELEASE)["data"]["application.yaml"])
    assert config["database"]["url"] == "jdbc:postgresql://[fd00::5]:6432/workflows"


def deployment_environment(
    rendered: Rendered, extra: Mapping[tuple[str, str], str]
) -> dict[str, str]:
    secrets = secret_values(m for m in objects_of(rendered) if m["kind"] == "Secret")
    server = container(one(rendered, "Deployment", RELEASE), "workflow-orchestrator")
    return pod_environment(server, {**secrets, **extra}, f"{RELEASE}-6d9f7c5b8-x2x7q")


@pytest.mark.parametrize("values", ["guide", "everything", "no-migration-job"])
def test_rendered_application_yaml_loads_with_the_services_loader(
    renderings: dict[str, Rendered], values: str, tmp_path: Path
) -> None:
    """The service's own loader reads the rendered application.yaml with the pod's
    environment: the database, the password from the Secret, the replica id from the pod."""
    rendered = renderings[values]
    path = tmp_path / "application.yaml"
    path.write_text(one(rendered, "ConfigMap", RELEASE)["data"]["application.yaml"])
    guide_secret = {(GUIDE_SECRET, "database-password"): "from-the-guide-secret"}
    guide_secret[(GUIDE_SECRET, "kafka-password")] = "kafka-secret"
    environment = deployment_environment(rendered, guide_secret)
    assert environment["WORKFLOW_CONFIG"] == "/app/config/application.yaml"
    loaded = load_config(config_path=path, environ=environment, cwd=tmp_path)
    database = loaded.settings.database
    assert database.url.startswith("jdbc:postgresql://db-host:5432/workflows")
    assert database.username == "workflow_user"
    assert database.password == environment["DATABASE_PASSWORD"]
    # With or without the Job: `kubectl set image` bypasses Helm's hooks, and its pods must
    # not wait unready for a `migrate` nobody runs.
    assert database.migrate_on_startup is True
    assert loaded.settings.cluster.replica_id == f"{RELEASE}-6d9f7c5b8-x2x7q"
    assert loaded.source_of("database.password") == "env DATABASE_PASSWORD"
    if values == "everything":
        assert loaded.settings.event_processing.kafka.sasl.password == "kafka-secret"


def test_every_setting_the_service_shows_is_accepted(tmp_path: Path) -> None:
    """`config show --format yaml` of the defaults, as config (less what the chart owns),
    passes values.schema.json and loads back: the schema knows every key the service does."""
    shown = effective_tree(load_config(environ={}, cwd=tmp_path))
    for owned in ("url", "username", "password"):
        del shown["database"][owned]
    del shown["database"]["primary"]["url"]
    rendered = render(guide_values() | {"config": shown})
    path = tmp_path / "application.yaml"
    path.write_text(one(rendered, "ConfigMap", RELEASE)["data"]["application.yaml"])
    environment = deployment_environment(rendered, {})
    loaded = load_config(config_path=path, environ=environment, cwd=tmp_path)
    assert effective_tree(loaded)["workflows"] == shown["workflows"]


def test_pods_run_unprivileged_on_a_read_only_root(guide: Rendered) -> None:
    """Non-root 10001, seccomp RuntimeDefault, no capabilities, no escalation, read-only root
    with emptyDir /tmp and /var/log/workflow-orchestrator, config mounted at /app/config; the
    Kubernetes API token is not mounted."""
    for workload, name in (("Deployment", "workflow-orchestrator"), ("Job", "migrate")):
        (manifest,) = [m for m in objects_of(guide) if m["kind"] == workload]
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        spec = container(manifest, name)
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        for path in ("/tmp", "/var/log/workflow-orchestrator"):
            assert "emptyDir" in volumes[mounts[path]]
        assert "configMap" in volumes[mounts["/app/config"]]
    account = one(guide, "ServiceAccount", RELEASE)
    assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ((), 5 + 30 + 20),
        (("config.server.shutdownGracePeriod=2m",), 5 + 120 + 20),
        (("config.server.shutdownGracePeriod=500ms",), 5 + 1 + 20),
        (("config.server.shutdownGracePeriod=45",), 5 + 45 + 20),
        (("preStopSleepSeconds=0", "config.server.shutdownGracePeriod=1.5M"), 90 + 20),
        (("terminationGracePeriodSeconds=120",), 120),
    ],
)
def test_termination_grace_period_outlasts_the_stop(
    settings: tuple[str, ...], expected: int, tmp_path: Path
) -> None:
    """terminationGracePeriodSeconds covers the preStop wait, the drain
    (server.shutdownGracePeriod) and the ~15 s of cancelling and closing pools."""
    rendered = render(guide_values(*settings))
    pod = one(rendered, "Deployment", RELEASE)["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == expected
    path = tmp_path / "application.yaml"
    path.write_text(one(rendered, "ConfigMap", RELEASE)["data"]["application.yaml"])
    drain = load_config(config_path=path, environ={}, cwd=tmp_path).settings.server
    pre_stop = container(one(rendered, "Deployment", RELEASE), "workflow-orchestrator").get(
        "lifecycle", {"preStop": {"exec": {"command": ["sleep", "0"]}}}
    )
    wait = int(pre_stop["preStop"]["exec"]["command"][1])
    assert expected >= wait + math.ceil(drain.shutdown_grace_period) + 15


def test_too_short_termination_grace_period_is_refused() -> None:
    message = refusal(guide_values("terminationGracePeriodSeconds=40"))
    assert "terminationGracePeriodSeconds: 40 is too short; the pods need at least 50" in message


# --- Migrations -----------------------------------------------------------------------------


def hook_of(manifest: Mapping[str, Any]) -> tuple[str, int, str]:
    annotations = manifest["metadata"]["annotations"]
    return (
        annotations["helm.sh/hook"],
        int(annotations["helm.sh/hook-weight"]),
        annotations["helm.sh/hook-delete-policy"],
    )


def test_migration_runs_in_a_hook_job_with_its_own_config_and_secret(guide: Rendered) -> None:
    """`workflow-orchestrator migrate` in a pre-install/pre-upgrade Job; the ConfigMap, Secret
    and ServiceAccount it uses are hooks created before it (the release's own do not exist
    yet on install), with the same application.yaml and password."""
    job = one(guide, "Job", f"{RELEASE}-migrate")
    assert hook_of(job) == ("pre-install,pre-upgrade", 0, "before-hook-creation,hook-succeeded")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    migrate = container(job, "migrate")
    assert (migrate["command"], migrate["args"]) == (["workflow-orchestrator"], ["migrate"])
    config = one(guide, "ConfigMap", f"{RELEASE}-migrate")
    secret = one(guide, "Secret", f"{RELEASE}-migrate")
    account = one(guide, "ServiceAccount", f"{RELEASE}-migrate")
    for helper in (config, secret, account):
        hook, weight, policy = hook_of(helper)
        assert (hook, policy) == ("pre-install,pre-upgrade", "before-hook-creation,hook-succeeded")
        assert weight < hook_of(job)[1]
    assert config["data"] == one(guide, "ConfigMap", RELEASE)["data"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    environment = pod_environment(migrate, secret_values([secret]), "migrate-pod")
    assert environment["DATABASE_PASSWORD"] == "secure_password"
    # Only the Deployment's pods are behind the Service and the disruption budget.
    selector = one(guide, "Service", RELEASE)["spec"]["selector"]
    assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()


def test_existing_secret_is_used_by_pods_and_job(renderings: dict[str, Rendered]) -> None:
    """database.existingSecret (the guide's Secret): no Secret rendered; the pods and the Job
    read it as the guide's secretKeyRef does."""
    rendered = renderings["everything"]
    assert not [m for m in objects_of(rendered) if m["kind"] == "Secret"]
    guide_reference = {"secretKeyRef": {"name": GUIDE_SECRET, "key": "database-password"}}
    for workload, name in (("Deployment", "workflow-orchestrator"), ("Job", "migrate")):
        (manifest,) = [m for m in objects_of(rendered) if m["kind"] == workload]
        env = {v["name"]: v for v in container(manifest, name)["env"]}
        assert env["DATABASE_PASSWORD"]["valueFrom"] == guide_reference
        assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == GUIDE_SECRET


def test_without_the_job_pods_migrate_at_startup(renderings: dict[str, Rendered]) -> None:
    """migration.enabled=false: no hook objects; application.yaml leaves migrateOnStartup to
    the service's default (true)."""
    rendered = renderings["no-migration-job"]
    assert not [m for m in objects_of(rendered) if "annotations" in m["metadata"]]
    assert "templates/migration-job.yaml" not in rendered
    config = yaml.safe_load(one(rendered, "ConfigMap", RELEASE)["data"]["application.yaml"])
    assert "migrateOnStartup" not in config["database"]
    pod = one(rendered, "Deployment", RELEASE)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "default"  # serviceAccount.create=false, no name


def test_explicit_migrate_on_startup_false_is_kept() -> None:
    """config.database.migrateOnStartup: false, when a user sets it, reaches application.yaml
    (the chart no longer writes it, with or without the Job)."""
    for job in ("true", "false"):
        rendered = render(
            guide_values(f"migration.enabled={job}", "config.database.migrateOnStartup=false")
        )
        config = yaml.safe_load(one(rendered, "ConfigMap", RELEASE)["data"]["application.yaml"])
        assert config["database"]["migrateOnStartup"] is False


def pod_annotations(rendered: Rendered) -> dict[str, str]:
    annotations = one(rendered, "Deployment", RELEASE)["spec"]["template"]["metadata"]
    return dict(annotations["annotations"])


def test_config_change_rolls_the_pods() -> None:
    """The pods carry a checksum of application.yaml: a changed setting changes the template."""
    checksums = {
        level: one(render(guide_values(f"config.logging.level={level}")), "Deployment", RELEASE)[
            "spec"
        ]["template"]["metadata"]["annotations"]["checksum/config"]
        for level in ("INFO", "DEBUG")
    }
    assert checksums["INFO"] != checksums["DEBUG"]


def test_password_change_rolls_the_pods(renderings: dict[str, Rendered]) -> None:
    """`helm upgrade --set database.password=rotated` changes the pods' checksum/secret, so
    they restart and read the new DATABASE_PASSWORD; the annotation is not a bare hash of the
    password. With an existing Secret (not the chart's) there is no such annotation."""
    checksums = {
        password: pod_annotations(render(guide_values(f"database.password={password}")))[
            "checksum/secret"
        ]
        for password in ("secure_password", "rotated")
    }
    assert checksums["secure_password"] != checksums["rotated"]
    assert checksums["secure_password"] == pod_annotations(renderings["guide"])["checksum/secret"]
    for bare in ("secure_password", base64.b64encode(b"secure_password").decode()):
        assert checksums["secure_password"] != hashlib.sha256(bare.encode()).hexdigest()
    assert "checksum/secret" not in pod_annotations(renderings["everything"])
    assert "checksum/config" in pod_annotations(renderings["everything"])


# --- Availability, scaling and monitoring ------------------------------------------------------


def test_disruption_budget_spread_and_replica_ids(renderings: dict[str, Rendered]) -> None:
    """With several replicas: a PodDisruptionBudget of the serving pods, soft anti-affinity
    across nodes, and REPLICA_ID from the pod's name; none with one replica."""
    guide = renderings["guide"]
    budget = one(guide, "PodDisruptionBudget", RELEASE)
    deployment = one(guide, "Deployment", RELEASE)
    assert budget["spec"]["maxUnavailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    env = {v["name"]: v for v in container(deployment, "workflow-orchestrator")["env"]}
    assert env["REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    single = renderings["single-replica"]
    assert not [m for m in objects_of(single) if m["kind"] == "PodDisruptionBudget"]
    assert "lifecycle" not in container(one(single, "Deployment", RELEASE), "workflow-orchestrator")


def test_disruption_budget_may_keep_a_minimum() -> None:
    """podDisruptionBudget.minAvailable, when set, replaces the default maxUnavailable."""
    rendered = render(guide_values("podDisruptionBudget.minAvailable=2"))
    assert one(rendered, "PodDisruptionBudget", RELEASE)["spec"] == {
        "minAvailable": 2,
        "selector": one(rendered, "Deployment", RELEASE)["spec"]["selector"],
    }


def test_autoscaler_and_service_monitor(renderings: dict[str, Rendered]) -> None:
    """autoscaling.enabled: an autoscaling/v2 HPA owns the replica count; the
    ServiceMonitor scrapes /metrics on the management port (https with managementTls)."""
    rendered = renderings["everything"]
    deployment = one(rendered, "Deployment", RELEASE)
    assert "replicas" not in deployment["spec"]
    autoscaler = one(rendered, "HorizontalPodAutoscaler", RELEASE)
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == RELEASE
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (2, 6)
    assert one(rendered, "PodDisruptionBudget", RELEASE)["spec"]["maxUnavailable"] == 1
    monitor = one(rendered, "ServiceMonitor", RELEASE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {
        "port": "management",
        "path": "/metrics",
        "scheme": "https",
        "interval": "15s",
        "scrapeTimeout": "10s",
        "tlsConfig": {"serverName": "workflow-orchestrator.workflow-system.svc"},
    }
    service = one(rendered, "Service", RELEASE)
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    server = container(deployment, "workflow-orchestrator")
    assert server["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    pod = deployment["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]


# --- Validation ---------------------------------------------------------------------------------


def test_every_rendered_object_validates(renderings: dict[str, Rendered]) -> None:
    """Each object of each value set is valid for the oldest and newest Kubernetes schemas
    kubernetes-validate carries (strict: unknown fields refused)."""
    problems = [
        problem
        for name, rendered in renderings.items()
        for version in KUBERNETES_VERSIONS
        for problem in validation_problems(objects_of(rendered), version)
    ]
    assert problems == []
    kinds = {m["kind"] for rendered in renderings.values() for m in objects_of(rendered)}
    assert kinds == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (("databse.host=db-host",), "at '': additional properties 'databse' not allowed"),
        (("replicaCount=three",), "at '/replicaCount': got string, want integer"),
        (("replicaCount=0",), "at '/replicaCount': minimum: got 0, want 1"),
        (("database.port=70000",), "at '/database/port': maximum: got 70,000, want 65,535"),
        (("image.pullPolicy=Sometimes",), "at '/image/pullPolicy': value must be one of"),
        (("service.managementPort=0",), "at '/service/managementPort': minimum: got 0, want 1"),
        (("config.server.prot=8080",), "at '/config/server': additional properties 'prot'"),
        (("config.server.port=http",), "at '/config/server/port': got string, want integer"),
        (
            ("config.server.shutdownGracePeriod=forever",),
            "at '/config/server/shutdownGracePeriod': 'forever' does not match pattern",
        ),
        (
            ("config.database.password=secure_password",),
            "at '/config/database': additional properties 'password' not allowed",
        ),
        (
            ("config.eventProcessing.kafka.sasl.password=hunter2-hunter2",),
            "at '/config/eventProcessing/kafka/sasl/password': value must be 'a ${VARIABLE} or "
            "${secret:NAME} reference, never the secret itself",
        ),
        (("podAntiAffinity=always",), "at '/podAntiAffinity': value must be one of"),
        *(
            (
                (f"database.parameters.{key}=hunter2-hunter2",),
                f"at '/database/parameters/{key}': value must be 'left out: the parameters are "
                "written into application.yaml, a ConfigMap, not a Secret; give the database "
                "password with database.password or database.existingSecret",
            )
            for key in ("password", "sslpassword", "sslPassword", "PASSWORD_FILE")
        ),
        *(
            (
                (f"config.database.{replicas}[0].url={url}",),
                f"at '/config/database/{replicas}/0/url': value must be 'a URL without a literal "
                "password (user:password@ or a password parameter): application.yaml is a "
                "ConfigMap, not a Secret;",
            )
            for replicas, url in (
                ("readReplicas", "jdbc:postgresql://reader:hunter2@replica-1:5432/workflows"),
                ("replicas", "postgresql://reader:hunter2@replica-1/workflows"),
                ("readReplicas", "jdbc:postgresql://replica-1/workflows?password=hunter2"),
                ("replicas", "jdbc:postgresql://r/w?sslmode=require&sslPassword=hunter2"),
            )
        ),
    ],
)
def test_schema_refuses_bad_values(settings: tuple[str, ...], message: str) -> None:
    """values.schema.json stops `helm install` naming the key and what is wrong."""
    refused = refusal(guide_values(*settings))
    assert "values don't meet the specifications of the schema" in refused
    assert message in refused
    assert "hunter2" not in refused  # a refused secret is not echoed


def test_replica_urls_without_a_literal_password_are_accepted() -> None:
    """A replica URL with only a user, with its password as a reference, or wholly a
    reference is accepted: the references reach application.yaml as written."""
    urls = (
        "jdbc:postgresql://reader@replica-1:5432/workflows?sslmode=require",
        "jdbc:postgresql://reader:${secret:replica-password}@replica-2:5432/workflows",
        "jdbc:postgresql://replica-3:5432/workflows?password=${REPLICA_PASSWORD}",
        "${REPLICA_URL}",
    )
    values = guide_values() | {
        "config": {"database": {"readReplicas": [{"url": url} for url in urls]}}
    }
    config = yaml.safe_load(one(render(values), "ConfigMap", RELEASE)["data"]["application.yaml"])
    assert [replica["url"] for replica in config["database"]["readReplicas"]] == list(urls)


def test_missing_database_is_refused() -> None:
    """Without database.host, .name and .user (no defaults), the schema names them."""
    message = refusal({})
    assert "at '/database': missing properties 'host', 'name', 'user'" in message
    message = refusal(guide_values() | {"database": {"name": "workflows", "user": "u"}})
    assert "at '/database': missing property 'host'" in message


def test_password_given_twice_is_refused() -> None:
    message = refusal(guide_values(f"database.existingSecret={GUIDE_SECRET}"))
    assert "database.password and database.existingSecret are both set" in message


def test_notes_tell_how_to_check_the_install() -> None:
    """NOTES.txt: the rollout, health and metrics commands of this release."""
    notes = render_text(guide_values())["templates/NOTES.txt"]
    assert f"kubectl rollout status --namespace {NAMESPACE} deployment/{RELEASE}" in notes
    assert "jdbc:postgresql://db-host:5432/workflows as workflow_user" in notes
    assert f"kubectl logs --namespace {NAMESPACE} job/{RELEASE}-migrate" in notes
    assert "curl http://localhost:8081/health/ready" in notes
    assert "secure_password" not in notes
    assert "its --timeout (5m by default), and the Job stops after\n270s" in notes
    upgrade = render_text(guide_values("image.tag=new-version"), upgrade=True)
    assert (
        "workflow-orchestrator (company-registry/workflow-orchestrator:new-version) is upgraded"
        in upgrade["templates/NOTES.txt"]
    )
    image = container(
        one(render(guide_values("image.tag=new-version")), "Deployment", RELEASE),
        "workflow-orchestrator",
    )["image"]
    assert image == "company-registry/workflow-orchestrator:new-version"


def test_notes_mask_the_database_parameters() -> None:
    """NOTES.txt (printed by `helm install`, shown again by `helm status`) names the
    parameters of the database URL but not their values."""
    notes = render_text(
        guide_values("database.parameters.sslmode=verify-full", "database.parameters.sslkey=/k")
    )["templates/NOTES.txt"]
    assert "jdbc:postgresql://db-host:5432/workflows?sslkey=****&sslmode=****" in notes
    assert "verify-full" not in notes and "/k" not in notes


# --- Combinations the templates refuse ------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ("config.server.managementPort=8080",),
            "config.server.port and config.server.managementPort are both 8080: the API and the "
            "management port (probes, metrics) need different ports",
        ),
        (
            ("service.managementPort=8080",),
            "service.port and service.managementPort are both 8080",
        ),
        *(
            (
                (f"config.server.managementHost={host}",),
                f"config.server.managementHost: {host} is a loopback address, so the "
                "management port (/health/live, /health/ready, /metrics) would be out of reach "
                "of the kubelet's probes, the Service and Prometheus; leave "
                "config.server.managementHost empty",
            )
            for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.1.1")
        ),
        (
            ("config.server.host=127.0.0.1",),
            "config.server.host: 127.0.0.1 is a loopback address, so the management port",
        ),
        (
            ("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=4"),
            "autoscaling.minReplicas (5) is above autoscaling.maxReplicas (4): raise maxReplicas "
            "or lower minReplicas",
        ),
        (
            ("podDisruptionBudget.maxUnavailable=0",),
            "podDisruptionBudget.maxUnavailable: 0 lets no pod be evicted, so no node could "
            "ever be drained; use at least 1 (the default)",
        ),
        (
            ("podDisruptionBudget.maxUnavailable=0%",),
            "podDisruptionBudget.maxUnavailable: 0% lets no pod be evicted",
        ),
        (
            ("podDisruptionBudget.minAvailable=3",),
            "podDisruptionBudget.minAvailable: 3 of 3 replicas (replicaCount) keeps every pod, "
            "so no node could ever be drained; use a smaller minAvailable, or maxUnavailable: 1 "
            "(the default) without minAvailable",
        ),
        (
            ("podDisruptionBudget.minAvailable=100%",),
            "podDisruptionBudget.minAvailable: 100% of 3 replicas (replicaCount) keeps every pod",
        ),
        (
            ("podDisruptionBudget.minAvailable=67%",),  # rounded up: 3 of 3
            "podDisruptionBudget.minAvailable: 67% of 3 replicas (replicaCount) keeps every pod",
        ),
        (
            ("autoscaling.enabled=true", "podDisruptionBudget.minAvailable=3"),
            "podDisruptionBudget.minAvailable: 3 of 3 replicas (autoscaling.minReplicas)",
        ),
    ],
)
def test_templates_refuse_unworkable_combinations(settings: tuple[str, ...], message: str) -> None:
    """Values each valid alone but unworkable together stop the install with a message."""
    assert message in refusal(guide_values(*settings))


@pytest.mark.parametrize(
    ("settings", "budget"),
    [
        (("podDisruptionBudget.minAvailable=2",), {"minAvailable": 2}),
        (("podDisruptionBudget.minAvailable=66%",), {"minAvailable": "66%"}),
        (("podDisruptionBudget.maxUnavailable=34%",), {"maxUnavailable": "34%"}),
        (("replicaCount=5", "podDisruptionBudget.minAvailable=4"), {"minAvailable": 4}),
        (("config.server.managementHost=0.0.0.0", "config.server.host=127.0.0.1"), None),
        (("replicaCount=1", "podDisruptionBudget.maxUnavailable=0"), None),
    ],
)
def test_workable_budgets_and_hosts_are_accepted(
    settings: tuple[str, ...], budget: dict[str, Any] | None
) -> None:
    """The checks refuse only what blocks drains or probes: a budget that lets one pod go,
    a loopback API host with a reachable management host, a single replica (no budget)."""
    rendered = render(guide_values(*settings))
    budgets = [m["spec"] for m in objects_of(rendered) if m["kind"] == "PodDisruptionBudget"]
    if budget is None:
        assert len(budgets) == ("replicaCount=1" not in settings)
    else:
        (spec,) = budgets
        assert {k: v for k, v in spec.items() if k != "selector"} == budget


@pytest.fixture(scope="module", autouse=True)
def _no_open_handles() -> Iterator[None]:
    """Every chart the tests load is released."""
    yield
    assert helm_python.open_handles_count() == 0
