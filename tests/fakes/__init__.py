"""Test doubles of the outside world that speak its real wire protocols.

- ``slack_api.FakeSlackAPI``: a local Slack Web API server (point ``AsyncWebClient(base_url=...)``
  at ``api.url``), which also catches ``response_url`` posts and file uploads.
- ``slack_events``: Events API and slash-command payloads, signed as Slack signs them.
- ``slack_workspace.SlackWorkspace``: the IDs both share, so an event's ``authorizations`` match
  what ``auth.test`` answers.

Import them as ``from tests.fakes.slack_api import FakeSlackAPI``: pytest's importlib mode
registers ``tests`` as a namespace package, so no ``tests/__init__.py`` is needed.
"""
