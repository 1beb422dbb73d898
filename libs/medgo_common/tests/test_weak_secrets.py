"""Start-up refuses placeholder, short and committed development secrets outside local
mode, naming the variable and never the value (medgo_common.startup)."""

from __future__ import annotations

import pytest
from medgo_common.startup import LocalModeSettings, StartupError, refuse_weak_secrets
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

STRONG = "Zq8WmV3rT1yPe6LuK0sXa9NdH4fJc7Gb2oRi5EtYwUk"


@pytest.mark.parametrize(("secret", "reason"), [
    ("REPLACE_ME_WITH_A_LONG_RANDOM_TOKEN_OF_32B", "is a placeholder"),
    ("<your token here, at least 32 bytes long>", "is a placeholder"),
    ("local-dev-gateway-token", "is a development secret"),
    ("short-but-random-9f3", "is shorter than 32 bytes"),
    ("数" * 10, "is shorter than 32 bytes"),  # 30 bytes in UTF-8: bytes count, not chars
])
def test_weak_secret_is_refused_by_name(secret: str, reason: str) -> None:
    with pytest.raises(StartupError) as refused:
        refuse_weak_secrets({"MEDGO_X_TOKEN": STRONG, "MEDGO_Y_TOKEN": secret},
                            local_mode=False, local_mode_setting="MEDGO_Y_LOCAL_MODE")
    message = str(refused.value)
    assert message.startswith(f"MEDGO_Y_TOKEN {reason}")
    assert "MEDGO_Y_LOCAL_MODE=true" in message
    assert secret not in message


def test_local_mode_and_strong_secrets_pass() -> None:
    refuse_weak_secrets({"MEDGO_Y_TOKEN": "dev"}, local_mode=True, local_mode_setting="L")
    refuse_weak_secrets({"MEDGO_Y_TOKEN": STRONG, "MEDGO_Z": "数" * 11},
                        local_mode=False, local_mode_setting="L")


class _Settings(LocalModeSettings):
    """A service's settings as the servers declare them (env prefix, secret fields)."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_X_")
    session_secret: SecretStr | None = None
    feedback_token: str = ""
    service_tokens: dict[str, SecretStr] = Field(default_factory=dict)


def test_settings_judge_their_secret_fields_by_variable_and_caller() -> None:
    """Unset fields are skipped; a token mapping is judged per caller; the message
    names `<prefix><FIELD> (caller)` and the service's own local-mode variable."""
    settings = _Settings(session_secret=STRONG,
                         service_tokens={"ops": STRONG, "bench": "REPLACE_ME"})
    settings.refuse_weak_secrets("feedback_token", "session_secret")  # "" is unset
    with pytest.raises(StartupError) as refused:
        settings.refuse_weak_secrets("session_secret", "service_tokens")
    assert str(refused.value).startswith("MEDGO_X_SERVICE_TOKENS (bench) is a placeholder")
    assert "MEDGO_X_LOCAL_MODE=true" in str(refused.value)
    _Settings(service_tokens={"bench": "dev"}, local_mode=True).refuse_weak_secrets(
        "service_tokens")
