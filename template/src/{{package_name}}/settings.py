"""Service settings, read from environment variables with the ``APP_`` prefix.

Every field below can be set as ``APP_<FIELD_NAME>`` (e.g. ``APP_LOG_LEVEL=DEBUG``).
An invalid value stops the service at start-up with a one-line message.
"""

from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "APP_"


class Settings(BaseSettings):
    """Configuration of the service; immutable once loaded."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    environment: Literal["development", "test", "staging", "production"] = "production"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=104_857_600)
    docs_enabled: bool = True


def describe_errors(error: ValidationError) -> str:
    """Render a settings validation error as one line naming each variable."""
    parts = []
    for detail in error.errors():
        field = ".".join(str(part) for part in detail["loc"])
        parts.append(f"{ENV_PREFIX}{field.upper()}: {detail['msg']}")
    return "; ".join(parts)


def load_settings() -> Settings:
    """Read the settings from the environment, or exit with a one-line message."""
    try:
        return Settings()
    except ValidationError as error:
        raise SystemExit(f"configuration error: {describe_errors(error)}") from None
