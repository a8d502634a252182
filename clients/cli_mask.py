"""`govgw mask ...`: try the desensitization rules (issue: Chinese personal data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.cli import CliHelpers


def register(sub: Any, h: CliHelpers) -> None:
    """Add this group's verbs to the `govgw` parser (none yet)."""
