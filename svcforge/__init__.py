"""svcforge: a Copier template and CLI that start production-ready Python web services."""

from pathlib import Path

__version__ = "0.2.0"

#: Root of the template repository (where copier.yml lives).
TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
