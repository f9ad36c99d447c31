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


TABLES = {"budgets", "models", "providers"}
"""Settings written as tables of the config file (the README documents them there)."""


def env_names() -> dict[str, str]:
    """Every setting's environment variable name -> field name (not the config's tables)."""
    out = {}
    for name, field in Settings.model_fields.items():
        if name in TABLES:
            continue
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
    # bot/tokens.py reads QUOTABOT_ENCODINGS_DIR itself, before any settings exist.
    listed, known = set(example_env()), set(env_names()) | {"QUOTABOT_ENCODINGS_DIR"}
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
    from adapters.slack.config import BOT_SCOPES

    manifest = yaml.safe_load((DEPLOY / "slack-app-manifest.yaml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    assert "files:write" in BOT_SCOPES  # the digest's chart
    home = manifest["features"]["app_home"]
    assert home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]


def test_env_example_has_every_variable_the_readme_documents_and_no_other() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    table = readme[readme.index("| environment variable | TOML key |") :]
    table = table[: table.index("\n\n")]
    documented = set(re.findall(r"^\| `([A-Z_0-9]+)`", table, re.M))
    example = set(
        re.findall(r"^#?\s*([A-Z][A-Z_0-9]+)=", (DEPLOY / ".env.example").read_text(), re.M)
    )
    assert example == documented


def test_one_image_tag_and_the_dockerfile_syntax_line_first() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("# syntax=")  # a parser directive counts only on line 1
    tags = set(
        re.findall(
            r"quotabot:[0-9][\w.]*",
            "".join(
                p.read_text()
                for p in (
                    DEPLOY / "compose.yaml",
                    DEPLOY / "k8s" / "deployment.yaml",
                    DEPLOY / "Dockerfile",
                    DEPLOY.parent / "README.md",
                )
            ),
        )
    )
    assert tags == {"quotabot:0.1.0"}
    assert "image: quotabot:local" not in (DEPLOY / "compose.yaml").read_text()


def test_kubernetes_keeps_the_database_credential_in_the_secret_and_serves_https() -> None:
    assert "QUOTABOT_DATABASE_URL" in _manifest("Secret")["stringData"]
    assert "QUOTABOT_DATABASE_URL" not in _manifest("ConfigMap")["data"]
    ingress = _manifest("Ingress")["spec"]
    assert ingress["tls"] and ingress["tls"][0]["secretName"]
    paths = {p["path"] for rule in ingress["rules"] for p in rule["http"]["paths"]}
    assert {"/slack", "/discord"} <= paths


def test_the_systemd_unit_installs_from_the_repository_and_makes_its_config_folder() -> None:
    unit = (DEPLOY / "quotabot.service").read_text()
    assert "pip install ." in unit and "pip install quotabot" not in unit
    assert "install -d" in unit and "/etc/quotabot" in unit
