"""FeedbackSettings: token parsing and URL normalisation, from the environment."""

from __future__ import annotations

import pytest
from medgo_feedback.settings import FeedbackSettings
from pydantic import ValidationError


def test_tokens_and_url_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("MEDGO_FEEDBACK_SERVICE_TOKENS", "gateway=abc, trainer=def")
    monkeypatch.setenv("MEDGO_FEEDBACK_DATABASE_URL", "postgresql://u:p@db:5432/feedback")
    settings = FeedbackSettings()
    assert {k: v.get_secret_value() for k, v in settings.service_tokens.items()} == {
        "gateway": "abc",
        "trainer": "def",
    }
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/feedback"
    assert not settings.is_sqlite


def test_default_is_sqlite_under_var(monkeypatch) -> None:
    monkeypatch.delenv("MEDGO_FEEDBACK_DATABASE_URL", raising=False)
    settings = FeedbackSettings()
    assert settings.is_sqlite
    assert settings.database_url.endswith("/var/feedback.db")


@pytest.mark.parametrize("tokens", ["gateway", "gateway=", "=abc", "gateway=abc,trainer"])
def test_malformed_tokens_are_refused(monkeypatch, tokens) -> None:
    monkeypatch.setenv("MEDGO_FEEDBACK_SERVICE_TOKENS", tokens)
    with pytest.raises(ValidationError, match="name=token"):
        FeedbackSettings()
