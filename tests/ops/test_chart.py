"""The Helm chart, linted and rendered by Helm's own engine (tests/ops/chart.py), every object
checked against the Kubernetes API schemas, and what an operator relies on asserted."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import helm_python
import kubernetes_validate
import pytest
import yaml

from config import Settings, load_settings
from config.loader import ConfigError
from handlers.decisions.rules_loader import parse_rules
from tests.conftest import ServiceFactory
from tests.ops.chart import CHART, PLAIN_MANIFESTS, lint, objects, plain_manifests_text, render

FULL = yaml.safe_load((Path(__file__).parent / "values-full.yaml").read_text(encoding="utf-8"))
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
CRDS = {"ServiceMonitor", "PrometheusRule"}  # the Prometheus Operator's, no schema offline
SETTINGS_MOUNT = "/etc/kratos-hooks/settings.toml"


def secret_settings() -> dict[str, tuple[str, str]]:
    """Environment name → (section, key) of every setting the service marks secret."""
    found: dict[str, tuple[str, str]] = {}
    for section in dataclasses.fields(Settings):
        default = getattr(Settings(), section.name)
        for field in dataclasses.fields(default):
            if field.metadata.get("secret"):
                found[field.metadata["env"]] = (section.name, field.name)
    return found


def kinds(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    (found,) = [o for o in kinds(objs, kind) if o["metadata"]["name"].endswith(suffix)]
    return found


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (main,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return main


def settings_toml(objs: list[dict[str, Any]]) -> str:
    config_maps = [o for o in kinds(objs, "ConfigMap") if "settings.toml" in o["data"]]
    (config_map,) = config_maps
    return str(config_map["data"]["settings.toml"])


def merged(*overrides: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for override in overrides:
        result = _merge(result, override)
    return result


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture(scope="module", params=["defaults", "full"])
def rendered(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = {} if request.param == "defaults" else FULL
    return values, objects(render(values))


# --- Helm's own checks ----------------------------------------------------------------------


@pytest.mark.parametrize("values", [{}, FULL], ids=["defaults", "full"])
def test_helm_lint_finds_nothing_but_the_missing_icon(values: dict[str, Any]) -> None:
    report = lint(values)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_full_values_file_sets_every_option_of_values_yaml() -> None:
    def leaves(node: Any, prefix: str = "") -> Iterator[str]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else key)
        else:
            yield prefix

    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    full = set(leaves(FULL))
    # Maps whose keys are the operator's (settings, label sets, one entry per secret): set
    # when any key of theirs is.
    free = re.compile(r"^(config|spool\.volume|secrets\.env|networkPolicy\.\w+\.podLabels)\.")
    unset = [
        path
        for path in leaves(defaults)
        if not free.match(path) and path not in full and not _prefix_set(path, full)
    ]
    assert any(leaf.endswith(".optional") for leaf in full if leaf.startswith("secrets.env."))
    assert unset == []


def _prefix_set(path: str, full: set[str]) -> bool:
    return any(leaf.startswith(path + ".") for leaf in full)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"config": {"store": {"redis_url": "redis://:hunter2@redis:6379"}}},
            "/config/store/redis_url",
        ),
        ({"config": {"backoff": {"secret": "s3cret"}}}, "/config/backoff/secret"),
        (
            {"config": {"server": {"internal_listen": "0.0.0.0:9"}}},
            "/config/server/internal_listen",
        ),
        ({"extraEnv": [{"name": "HOOKS_API_KEYS", "value": "k"}]}, "/extraEnv/0"),
        ({"service": {"internal": {"type": "LoadBalancer"}}}, "/service/internal"),
        ({"secrets": {"env": {"NOT_A_SECRET": {"key": "x"}}}}, "NOT_A_SECRET"),
        ({"config": {"kratoss": {}}}, "kratoss"),
    ],
)
def test_the_schema_refuses_inlined_secrets_and_chart_owned_keys(
    values: dict[str, Any], message: str
) -> None:
    with helm_python.Chart.load(str(CHART)) as chart, pytest.raises(helm_python.HelmError) as err:
        chart.render(values, name="kratos-hooks", namespace="identity")
    assert message in str(err.value)


def test_the_schema_knows_every_secret_setting_of_the_service() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    env_names = schema["properties"]["secrets"]["properties"]["env"]["propertyNames"]["enum"]
    assert set(env_names) == set(secret_settings())
    sections = schema["properties"]["config"]["properties"]
    assert set(sections) == {f.name for f in dataclasses.fields(Settings)}
    for section, key in secret_settings().values():
        assert sections[section]["properties"][key] == {
            "not": {},
            "description": "a secret: set it through secrets.env, never in config",
        }
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert set(defaults["secrets"]["env"]) == set(secret_settings())


# --- Kubernetes' API schemas ------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_object_is_valid_for_the_kubernetes_api(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]], version: str
) -> None:
    _, objs = rendered
    validated = set()
    for obj in objs:
        if obj["kind"] in CRDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, version, strict=True)
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        validated.add(obj["kind"])
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "ServiceAccount"} <= validated
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= validated


def test_the_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian prometheus) missing")
    rule = one(objects(render(FULL)), "PrometheusRule")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    names = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert "KratosHooksNotReady" not in names  # prometheusRule.disabled
    text = json.dumps(rule["spec"])
    assert 'job=\\"auth-edge\\",namespace=\\"identity\\"' in text
    assert "> 250" in text  # thresholds.loginFailuresPerMinute
    runbook = "https://git.example.com/identity/kratos-hooks/-/blob/main/RUNBOOK.md#"
    assert all(
        r["annotations"]["runbook"].startswith(runbook)
        for g in rule["spec"]["groups"]
        for r in g["rules"]
    )


def test_the_service_monitor_scrapes_the_internal_port_only() -> None:
    objs = objects(render(FULL))
    monitor = one(objs, "ServiceMonitor")
    internal = one(objs, "Service", "-internal")
    public = one(objs, "Service", "-public")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= internal["metadata"]["labels"].items()
    assert not selector.items() <= public["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == internal["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "auth-edge"} in endpoint[
        "relabelings"
    ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# --- secrets ----------------------------------------------------------------------------------

CREDENTIAL_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)


def test_no_secret_value_reaches_a_rendered_object(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    values, objs = rendered
    assert kinds(objs, "Secret") == []
    env = {e["name"]: e for e in container(objs)["env"]}
    for name in secret_settings():
        if name in env:
            assert set(env[name]) == {"name", "valueFrom"}
            assert set(env[name]["valueFrom"]) == {"secretKeyRef"}
    # Every secret the values name is a reference, to the Secret they say.
    refs = values.get("secrets", {}).get("env") or {"BACKOFF_SECRET": {"key": "backoff-secret"}}
    for name, ref in refs.items():
        if ref["key"]:
            key_ref = env[name]["valueFrom"]["secretKeyRef"]
            assert key_ref["key"] == ref["key"]
            assert key_ref["name"] == ref.get("secretName") or key_ref["name"] in {
                "auth-edge-secrets",
                "kratos-hooks",
            }
        else:
            assert name not in env
    text = yaml.safe_dump_all(objs)
    assert CREDENTIAL_IN_URL.search(text) is None


def test_the_settings_file_loads_with_the_service_loader_and_holds_no_secret(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]], tmp_path: Path
) -> None:
    values, objs = rendered
    path = tmp_path / "settings.toml"
    path.write_text(settings_toml(objs), encoding="utf-8")
    settings = load_settings(path, env={})  # no environment: the file alone
    for section, key in secret_settings().values():
        assert not getattr(getattr(settings, section), key)
    deployment = one(objs, "Deployment")
    ports = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}
    assert settings.server.public_listen.port == ports["public"]
    assert settings.server.internal_listen.port == ports["internal"]
    assert settings.store.spool_dir == "/var/spool/kratos-hooks"
    mounts = {m["mountPath"] for m in container(objs)["volumeMounts"]}
    assert settings.store.spool_dir in mounts and SETTINGS_MOUNT in mounts
    env = {e["name"]: e.get("value") for e in container(objs)["env"]}
    assert env["KRATOS_HOOKS_CONFIG"] == SETTINGS_MOUNT
    shutdown = (values.get("shutdown") or {}).get("timeoutSeconds", 15)
    assert settings.server.shutdown_timeout == shutdown
    if values:  # the full file: integers stay integers through Helm's float64 values
        assert settings.server.workers == 2
        assert settings.backoff.identifier_free == 8
        assert settings.backoff.pair_base == 1.5
        assert settings.backoff.methods == ("password", "totp")
        assert settings.proxy.path_prefix == "/ory/kratos/public"
        assert settings.log.access_log is False
        assert settings.decisions.rules_file == "/etc/kratos-hooks/rules/access-rules.toml"
    else:
        assert settings.decisions.rules_file == ""
        assert settings.kratos.public_url == "http://kratos-public"
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_rules_file_parses_with_the_service_parser_and_mounts_as_a_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CORP_AUTHZ_TOKEN", "not-used")
    objs = objects(render(FULL))
    rules_map = one(objs, "ConfigMap", "-rules")
    rules = parse_rules(rules_map["data"]["access-rules.toml"], "access-rules.toml")
    assert [r.id for r in rules.rules] == ["app", "registry"]
    mount = next(m for m in container(objs)["volumeMounts"] if m["name"] == "rules")
    assert mount == {"name": "rules", "mountPath": "/etc/kratos-hooks/rules", "readOnly": True}
    volume = next(
        v
        for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "rules"
    )
    assert volume["configMap"]["name"] == rules_map["metadata"]["name"]
    # A ConfigMap managed elsewhere: mounted, none rendered.
    objs = objects(render({"decisions": {"existingConfigMap": "gitops-rules"}}))
    assert [o["metadata"]["name"] for o in kinds(objs, "ConfigMap")] == ["kratos-hooks"]
    volume = next(
        v
        for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "rules"
    )
    assert volume["configMap"]["name"] == "gitops-rules"


def checksum(values: dict[str, Any]) -> str:
    template = one(objects(render(values)), "Deployment")["spec"]["template"]
    return str(template["metadata"]["annotations"]["checksum/config"])


def test_a_settings_change_rolls_the_pods_a_rules_change_does_not() -> None:
    base = checksum({})
    assert checksum({"config": {"backoff": {"pair_free": 3}}}) != base
    assert checksum({"shutdown": {"timeoutSeconds": 20}}) != base
    assert checksum({}) == base
    with_rules = checksum({"decisions": {"rules": '[[rules]]\nid = "a"\n'}})
    assert with_rules != base  # rules_file appears in the settings
    assert checksum({"decisions": {"rules": '[[rules]]\nid = "b"\n'}}) == with_rules


# --- the pod ----------------------------------------------------------------------------------


def test_probes_ask_the_internal_port_for_health(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    _, objs = rendered
    main = container(objs)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    for probe, path in (
        ("readinessProbe", "/health/ready"),
        ("livenessProbe", "/health/alive"),
        ("startupProbe", "/health/alive"),
    ):
        assert main[probe]["httpGet"] == {"path": path, "port": "internal"}
    assert set(ports) == {"public", "internal"} and ports["public"] != ports["internal"]


def test_pods_run_non_root_on_a_read_only_root_filesystem(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    _, objs = rendered
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = container(objs)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in container(objs)["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/spool/kratos-hooks", "/tmp"}
    assert container(objs)["resources"]["requests"]["cpu"]


def test_the_grace_period_outlasts_the_drain() -> None:
    def grace(values: dict[str, Any]) -> int:
        spec = one(objects(render(values)), "Deployment")["spec"]["template"]["spec"]
        return int(spec["terminationGracePeriodSeconds"])

    # preStop sleep + SHUTDOWN_TIMEOUT for the listeners + again for the hooks' background work
    assert grace({}) > 5 + 2 * 15
    assert grace({"shutdown": {"timeoutSeconds": 40}}) > 5 + 2 * 40
    assert grace(FULL) == 60
    with helm_python.Chart.load(str(CHART)) as chart, pytest.raises(helm_python.HelmError) as err:
        chart.render({"shutdown": {"terminationGracePeriodSeconds": 30}}, name="kh")
    assert "must be above 40" in str(err.value)


def test_more_than_one_replica_needs_redis_and_the_backoff_secret_from_a_secret() -> None:
    with helm_python.Chart.load(str(CHART)) as chart, pytest.raises(helm_python.HelmError) as err:
        chart.render({"secrets": {"env": {"REDIS_URL": {"key": ""}}}}, name="kh")
    assert "secrets.env.REDIS_URL" in str(err.value)
    single = {
        "replicaCount": 1,
        "autoscaling": {"enabled": False},
        "secrets": {"env": {"REDIS_URL": {"key": ""}, "BACKOFF_SECRET": {"key": ""}}},
    }
    objs = objects(render(single))
    assert one(objs, "Deployment")["spec"]["replicas"] == 1
    assert kinds(objs, "PodDisruptionBudget") == []  # would block every node drain
    assert kinds(objs, "HorizontalPodAutoscaler") == []
    names = {e["name"] for e in container(objs)["env"]}
    assert not names & {"REDIS_URL", "BACKOFF_SECRET"}


# --- what reaches the pods --------------------------------------------------------------------


def test_the_internal_service_is_cluster_internal_and_in_no_ingress(
    rendered: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    _, objs = rendered
    internal = one(objs, "Service", "-internal")
    assert internal["spec"]["type"] == "ClusterIP"
    assert internal["spec"]["ports"][0]["targetPort"] == "internal"
    public = one(objs, "Service", "-public")
    assert public["spec"]["ports"][0]["targetPort"] == "public"
    backends = [
        path["backend"]["service"]["name"]
        for ingress in kinds(objs, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert internal["metadata"]["name"] not in backends
    assert all(name == public["metadata"]["name"] for name in backends)


def _rules_by_port(policy: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from"), "a rule without peers admits everyone"
        for port in rule["ports"]:
            found.setdefault(port["port"], []).extend(rule["from"])
    return found


def test_the_network_policy_admits_the_internal_port_from_the_named_peers_only() -> None:
    policy = one(objects(render({})), "NetworkPolicy")
    by_port = _rules_by_port(policy)

    def ns(peer: dict[str, Any]) -> list[str] | None:
        selector = peer.get("namespaceSelector")
        return None if selector is None else selector["matchExpressions"][0]["values"]

    assert [ns(p) for p in by_port["public"]] == [["ingress"]]
    assert [(ns(p), p["podSelector"]) for p in by_port["internal"]] == [
        (["ingress"], {}),
        (None, {"matchLabels": {"app.kubernetes.io/name": "kratos"}}),
        (["monitoring"], {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}),
    ]
    full = _rules_by_port(one(objects(render(FULL)), "NetworkPolicy"))
    assert {"ipBlock": {"cidr": "192.0.2.0/24"}} in full["public"]
    assert {"ipBlock": {"cidr": "192.0.2.0/24"}} not in full["internal"]
    assert len(full["internal"]) == 4
    no_auth = merged({"networkPolicy": {"ingressController": {"forwardAuth": False}}})
    internal = _rules_by_port(one(objects(render(no_auth)), "NetworkPolicy"))["internal"]
    assert [ns(p) for p in internal] == [None, ["monitoring"]]
    # Every peer switched off: nothing is admitted (not everything).
    closed = {
        "networkPolicy": {
            k: {"enabled": False} for k in ("ingressController", "kratos", "prometheus")
        }
    }
    policy = one(objects(render(closed)), "NetworkPolicy")
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_the_plain_manifests_are_the_chart_rendered_with_its_defaults() -> None:
    assert PLAIN_MANIFESTS.read_text(encoding="utf-8") == plain_manifests_text(), (
        "deploy/kubernetes/kratos-hooks.yaml is stale: python -m tests.ops.chart --write"
    )


# --- hot reload through the kubelet's mounted-file swap ---------------------------------------


class KubeletVolume:
    """A ConfigMap volume as the kubelet writes it (its AtomicWriter): the files are symlinks
    to ``..data/<key>``, ``..data`` a symlink to a timestamped directory, and an update writes
    a new directory and renames a new ``..data`` over the old one in one step."""

    def __init__(self, root: Path, key: str) -> None:
        self.root, self.key = root, key
        root.mkdir(parents=True)

    @property
    def path(self) -> Path:
        return self.root / self.key

    def write(self, text: str) -> None:
        stamp = self.root / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
        stamp.mkdir()
        (stamp / self.key).write_text(text, encoding="utf-8")
        old = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(stamp.name)
        os.replace(tmp, self.root / "..data")
        if not self.path.is_symlink():
            self.path.symlink_to(f"..data/{self.key}")
        if old is not None:
            shutil.rmtree(old)


ONE_RULE = (
    '[[rules]]\nid = "a"\npaths = ["/a"]\nauthenticators = ["anonymous"]\nauthorizer = "allow"\n'
)


async def rules_in_force(internal_url: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{internal_url}/health/ready") as response,
    ):
        return int((await response.json())["checks"]["decisions_rules"]["rules"])


async def test_a_configmap_update_reaches_the_rules_without_a_restart(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    volume = KubeletVolume(tmp_path / "rules", "rules.toml")
    volume.write(ONE_RULE)
    svc = await start_service(
        DECISIONS_RULES_FILE=str(volume.path), DECISIONS_RELOAD_INTERVAL="0.1"
    )
    assert await rules_in_force(svc.internal_url) == 1
    volume.write(ONE_RULE + ONE_RULE.replace('"a"', '"b"'))
    assert await _eventually(lambda: rules_in_force(svc.internal_url), 2)
    volume.write("[[rules]]\nid = 3\n")  # rejected: the two rules stay
    await _settle(0.5)
    assert await rules_in_force(svc.internal_url) == 2


async def _eventually(probe: Any, want: int, timeout: float = 5.0) -> bool:
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await probe() == want:
            return True
        await asyncio.sleep(0.05)
    return False


async def _settle(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def test_config_error_names_the_key_for_a_bad_rendered_value(tmp_path: Path) -> None:
    # What an operator sees when a value is wrong for the service (not for the schema).
    objs = objects(render({"config": {"backoff": {"identifier_free": "ten"}}}))
    path = tmp_path / "settings.toml"
    path.write_text(settings_toml(objs), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[backoff\] identifier_free"):
        load_settings(path, env={})
