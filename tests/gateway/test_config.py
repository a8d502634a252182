"""Settings that config keeps apart from the modules that use them, held equal to them."""

from pathlib import Path

import pytest

from gateway.access.deadlines import PROFILES
from gateway.config import JURISDICTIONS, ConfigError, ServeConfig


def test_jurisdictions_are_the_deadline_profiles() -> None:
    # config names them itself so that it imports nothing above it (the layers
    # contract in pyproject.toml); this keeps the two lists one.
    assert sorted(JURISDICTIONS) == sorted(PROFILES)


def test_unknown_jurisdiction_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not one of aba, yichuan, yingkou"):
        ServeConfig(data_dir=tmp_path, jurisdiction="atlantis").validate()
