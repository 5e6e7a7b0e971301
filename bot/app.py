"""Builds the slack-bolt AsyncApp that is airlock's face in Slack."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.config import Settings

__all__ = ["build_app", "build_client"]


def build_client(settings: Settings) -> AsyncWebClient:
    """The Slack Web API client, pointed at ``SLACK_API_URL``."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=int(settings.slack_timeout_seconds),
    )


def build_app(settings: Settings, *, client: AsyncWebClient | None = None) -> AsyncApp:
    """The Bolt app: verifies every HTTP request's signature and acknowledges at once."""
    secret = settings.slack_signing_secret
    return AsyncApp(
        client=client or build_client(settings),
        signing_secret=secret.get_secret_value() if secret else None,
        # Socket Mode traffic is authenticated by the app-level token, not signed.
        request_verification_enabled=not settings.socket_mode,
    )
