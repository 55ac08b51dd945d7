"""Settings from the environment (and `.env`), exactly the variables of DESIGN §1."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A missing or malformed setting; its message is the one line start-up prints."""


ENV_NAMES = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_api_url": "SLACK_API_URL",
    "database_url": "DATABASE_URL",
    "wavegate_policy": "WAVEGATE_POLICY",
    "wavegate_api_token": "WAVEGATE_API_TOKEN",
    "wavegate_replica_id": "WAVEGATE_REPLICA_ID",
    "port": "PORT",
    "log_level": "LOG_LEVEL",
    "log_format": "LOG_FORMAT",
    "log_access": "LOG_ACCESS",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = "sqlite:///wavegate.db"
    wavegate_policy: str | None = None
    wavegate_api_token: str | None = None
    # The name this replica campaigns for leadership under (bot/leader.py); hostname:PORT when
    # unset. Stable across restarts, so a restarted replica that led leads again at once.
    wavegate_replica_id: str | None = Field(default=None, max_length=200)
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    # One log line per HTTP request (aiohttp's access log). Off by default: at hundreds of
    # commands a second it costs more CPU than answering them.
    log_access: bool = False

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "wavegate_policy",
        "wavegate_api_token",
        "wavegate_replica_id",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return (
            value.upper()
            if value.lower() in {"debug", "info", "warning", "error", "critical"}
            else value.lower()
        )

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None

    def require_for_serve(self) -> None:
        """`serve` needs a bot token, and a signing secret unless Socket Mode is used."""
        if self.slack_bot_token is None:
            raise SettingsError(
                "SLACK_BOT_TOKEN: required for `wavegate serve` (or use `wavegate console`)"
            )
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise SettingsError(
                "SLACK_SIGNING_SECRET: required for `wavegate serve` over HTTP "
                "(set SLACK_APP_TOKEN for Socket Mode instead)"
            )


def load_settings(**overrides: object) -> Settings:
    """Read settings; a missing or malformed one raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        name = ENV_NAMES.get(field, field.upper())
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name}: {message}") from None
