"""``[providers."NAME"]`` tables and the models that name them: what is accepted, and how a
mistake reads (which table, what to write; never a key's value)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError

KEY = "azure-key-Zq3VtX9doNotLeak"

CONFIG = """
default_model = "gpt-4o-mini"

[providers."azure"]
kind = "azure"
base_url = "https://example.openai.azure.com/"
api_key_env = "AZURE_OPENAI_API_KEY"
api_version = "2024-10-21"

[providers."local"]
kind = "openai-compatible"
base_url = "http://localhost:11434/v1"
headers = { "X-Team" = "design" }

[models."gpt-4o"]
provider = "azure"
deployment = "gpt-4o-prod"

[models."gpt-4o-mini"]
provider = "azure"

[models."llama3.1:8b"]
provider = "local"
input_price = "0"
output_price = "0"
"""


def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "quotabot.toml"
    path.write_text(text)
    monkeypatch.setenv("QUOTABOT_CONFIG", str(path))


def test_providers_and_the_models_they_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(tmp_path, monkeypatch, CONFIG)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    provider = load_settings().provider
    assert provider.configured
    assert provider.routes() == {
        "gpt-4o": "azure",
        "gpt-4o-mini": "azure",
        "llama3.1:8b": "local",
    }
    specs = provider.specs()
    assert list(specs) == ["default", "azure", "local"]
    default, azure, local = specs.values()
    assert (default.kind, default.base_url, default.key_name) == (
        "openai",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
    )
    assert default.api_key is not None and default.api_key.get_secret_value() == "sk-default"
    assert (azure.kind, azure.base_url, azure.api_version) == (
        "azure",
        "https://example.openai.azure.com",
        "2024-10-21",
    )
    assert azure.api_key is not None and azure.api_key.get_secret_value() == KEY
    assert azure.deployments == {"gpt-4o": "gpt-4o-prod"}  # gpt-4o-mini: its own name
    assert (local.api_key, dict(local.headers), local.deployments) == (
        None,
        {"X-Team": "design"},
        {},
    )
    assert KEY not in repr(specs)
    # The tables' own fields stay out of the catalog's models.
    assert load_settings().catalog().get("llama3.1:8b").input_price == 0


def test_a_key_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(tmp_path, monkeypatch, CONFIG)
    secret = tmp_path / "azure-key"
    secret.write_text(KEY + "\n")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY_FILE", str(secret))
    azure = load_settings().provider.specs()["azure"]
    assert azure.api_key is not None and azure.api_key.get_secret_value() == KEY


@pytest.mark.parametrize(
    ("environment", "said"),
    [
        ({}, "AZURE_OPENAI_API_KEY, which is not set: export AZURE_OPENAI_API_KEY=<the key>"),
        ({"AZURE_OPENAI_API_KEY": ""}, "AZURE_OPENAI_API_KEY, which is empty"),
        ({"AZURE_OPENAI_API_KEY_FILE": "/nonexistent/key"}, "names /nonexistent/key, which"),
    ],
)
def test_a_key_that_is_not_there_stops_the_start_with_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], said: str
) -> None:
    configure(tmp_path, monkeypatch, CONFIG)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # commands that call no model need no key
    with pytest.raises(ConfigError) as refused:
        settings.provider.specs()
    assert str(refused.value).startswith('[providers."azure"]')
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            '[models."gpt-4o"]\nprovider = "azur"\n',
            '[models."gpt-4o"] names provider = "azur", which no [providers."azur"] table '
            "declares (declared: none yet)",
        ),
        (
            '[providers.azure]\nkind = "azure"\nbase_url = "https://x.openai.azure.com"\n'
            'api_key_env = "K"\n',
            'providers.azure: kind = "azure" needs api_version, e.g. api_version = "2024-10-21"',
        ),
        (
            '[providers.azure]\nkind = "azure"\napi_key_env = "K"\napi_version = "2024-10-21"\n',
            'providers.azure: kind = "azure" needs base_url',
        ),
        (
            '[providers.azure]\nkind = "azure"\napi_key_env = "K"\napi_version = "2024-10-21"\n'
            'base_url = "https://x.openai.azure.com/openai/deployments/gpt-4o"\n',
            "quotabot adds /openai/deployments/<deployment> itself",
        ),
        (
            '[providers.local]\nkind = "openai-compatible"\n',
            'providers.local: kind = "openai-compatible" needs base_url',
        ),
        ('[providers.local]\nbase_url = "http://x/v1"\n', "providers.local.kind: Field required"),
        (
            '[providers.local]\nkind = "ollama"\nbase_url = "http://x/v1"\n',
            "providers.local.kind: Input should be 'openai', 'azure' or 'openai-compatible'",
        ),
        (
            '[providers.main]\nkind = "openai"\n',
            'providers.main: kind = "openai" needs a key: name the environment variable',
        ),
        (
            '[providers.main]\nkind = "openai"\napi_key_env = "K"\napi_version = "1"\n',
            'api_version is for kind = "azure" only',
        ),
        (
            '[providers.local]\nkind = "openai-compatible"\nbase_url = "localhost:8000"\n',
            "base_url must be an http:// or https:// URL",
        ),
        (
            '[providers.local]\nkind = "openai-compatible"\nbase_url = "http:///v1"\n',
            "base_url must be an http:// or https:// URL",
        ),
        (
            '[providers.local]\nkind = "openai-compatible"\nbase_url = "http://x/v1"\n'
            'headers = { Authorization = "Bearer sk-secret-in-file" }\n',
            "name the variable that holds the key with api_key_env",
        ),
        (
            '[providers.default]\nkind = "openai-compatible"\nbase_url = "http://x/v1"\n',
            "that name is the provider of OPENAI_BASE_URL and OPENAI_API_KEY",
        ),
        (
            '[providers.local]\nkind = "openai-compatible"\nbase_url = "http://x/v1"\n'
            '[models."llama3"]\nprovider = "local"\ndeployment = "llama"\n',
            'deployment is for models of a kind = "azure" provider',
        ),
    ],
)
def test_a_wrong_table_says_which_and_what_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, said: str
) -> None:
    configure(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert said in str(refused.value)
    assert "sk-secret-in-file" not in str(refused.value)


def test_a_key_pasted_as_api_key_env_is_refused_without_repeating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(
        tmp_path,
        monkeypatch,
        '[providers.main]\nkind = "openai"\napi_key_env = "sk-proj-abc123-secret"\n',
    )
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "not the key itself" in str(refused.value)
    assert "sk-proj-abc123-secret" not in str(refused.value)


def test_nothing_configured_is_the_sandbox_and_tables_alone_configure_a_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    assert not settings.provider.configured
    assert list(settings.provider.specs(default_url="http://127.0.0.1:1/v1")) == ["default"]
    configure(
        tmp_path,
        monkeypatch,
        '[providers.local]\nkind = "openai-compatible"\nbase_url = "http://x/v1"\n',
    )
    assert load_settings().provider.configured  # serve starts: a provider is set
