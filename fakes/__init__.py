"""Test doubles of the outside world that speak its real wire protocols, shared by the tests
and the benchmarks (``bench/``); not part of the installed package.

- ``slack_api.FakeSlackAPI``: a local Slack Web API server (point ``AsyncWebClient(base_url=...)``
  at ``api.url``), which also catches ``response_url`` posts and file uploads.
- ``slack_events``: Events API and slash-command payloads, signed as Slack signs them.
- ``slack_workspace.SlackWorkspace``: the IDs both share, so an event's ``authorizations`` match
  what ``auth.test`` answers.
- ``discord_api.FakeDiscordAPI``: a local Discord REST API, and ``Signer`` for signed interactions.
- ``openai_api.FakeOpenAI`` and ``FakeAzureOpenAI``: OpenAI's API and an Azure OpenAI resource
  (deployment URLs, ``api-version``, ``api-key``), each checking the key and naming itself in
  its answers, for tests of routing between providers and of their health.
- ``recordings``: real audio files (wav; mp3, m4a, ogg, webm through PyAV) for voice tests.
- ``ports.free_port``: a free TCP port on 127.0.0.1, for servers started by hand.

Import them as ``from fakes.slack_api import FakeSlackAPI`` from the repository root: pytest
puts it on ``sys.path`` (``pythonpath`` in pyproject.toml), ``python -m bench...`` runs from it.
Their own tests are in ``tests/fakes/``.
"""
