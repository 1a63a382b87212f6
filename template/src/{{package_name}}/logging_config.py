"""JSON logs on stdout: one object per line, ready for any log pipeline."""

import logging
import logging.config
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

JSON_FORMATTER = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(levelname)s %(name)s %(message)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    # ISO 8601 UTC time of the record under the key "time".
    "timestamp": "time",
    # Uvicorn adds a terminal-coloured copy of each message: leave it out.
    "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
}


def logging_dict(level: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` used by the app and by Gunicorn."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": JSON_FORMATTER},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str) -> None:
    """Send every log record to stdout as JSON at ``level``."""
    logging.config.dictConfig(logging_dict(level))
