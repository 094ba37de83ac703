"""deploy/kubernetes/: every manifest validates (strictly, unknown fields rejected) against the
Kubernetes schemas that kubernetes-validate ships (offline), and the node-problem-detector config
agrees with what NPD accepts and with `preflight run --npd`."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from preflight import npd
from tests.harness import cli

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
"""The oldest Kubernetes still commonly run on GPU fleets, and the newest the package knows."""


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCS = _documents()


def _one(kind: str) -> dict[str, Any]:
    return next(d for _, d in DOCS if d["kind"] == kind)


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


def test_the_schemas_ship_with_the_package() -> None:
    # validated offline: the schemas are files inside the installed package
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert any(root.glob("v1.28*-local-strict"))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[n for n, _ in DOCS])
def test_manifest_validates(name: str, doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_broken_manifest() -> None:
    doc = copy.deepcopy(_one("DaemonSet"))
    _pod(doc)["containers"][0]["volumeMount"] = []  # misspelled key
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)
    doc = copy.deepcopy(_one("DaemonSet"))
    _pod(doc)["hostPID"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("kind", ["DaemonSet", "CronJob"])
def test_host_access_is_read_only_and_unprivileged(kind: str) -> None:
    pod = _pod(_one(kind))
    assert pod["hostNetwork"] is True and pod["hostPID"] is True
    assert pod["runtimeClassName"] == "nvidia"
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert sorted(host.values()) == ["/dev", "/sys"]
    for m in mounts.values():
        if m["name"] in host:
            assert m.get("readOnly") is True and m["mountPath"] == host[m["name"]]
    sc = container["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN", "SYSLOG"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"


def _monitor() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(_one("ConfigMap")["data"]["preflight-monitor.json"])
    return config


def _seconds(text: str) -> float:
    assert text.endswith("s")
    return float(text[:-1])


def test_npd_config_is_one_npd_accepts() -> None:
    # the rules of NPD's CustomPluginConfig.Validate (pkg/custompluginmonitor/types/config.go)
    config = _monitor()
    assert config["plugin"] == "custom"
    glob = config["pluginConfig"]
    conditions = {c["type"] for c in config["conditions"]}
    for rule in config["rules"]:
        assert _seconds(rule["timeout"]) <= _seconds(glob["timeout"])
        if rule["type"] == "permanent":
            assert rule["condition"] in conditions
        assert rule["path"] == "/usr/local/bin/preflight"
    assert _seconds(glob["timeout"]) < _seconds(glob["invoke_interval"])
    # the DaemonSet loads this file from the ConfigMap
    (container,) = _pod(_one("DaemonSet"))["containers"]
    assert "--config.custom-plugin-monitor=/config/preflight-monitor.json" in container["command"]


def test_npd_rule_runs_preflight_within_the_output_limit() -> None:
    config = _monitor()
    limit = config["pluginConfig"]["max_output_length"]
    (rule,) = config["rules"]
    args = rule["args"]
    assert args[:2] == ["run", "--npd"]
    assert args[args.index("--npd-max-output") + 1] == str(limit)
    assert float(args[args.index("--deadline") + 1]) < _seconds(rule["timeout"])
    result = cli(*args, "--profile", "dgx-h100-acs-enabled")
    assert result.exit_code == npd.PROBLEM
    assert len(result.stdout.strip().encode()) <= limit
    assert result.stdout.startswith("fix-config: FAIL pcie.acs")


def test_sweep_writes_one_report_per_node() -> None:
    (container,) = _pod(_one("CronJob"))["containers"]
    script = container["args"][0]
    words = shlex.split(script.split(";")[0])
    assert words[:4] == ["preflight", "run", "--format", "json"]
    assert words[words.index("--output") + 1] == "/reports/${NODE_NAME}.json"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/reports"}
