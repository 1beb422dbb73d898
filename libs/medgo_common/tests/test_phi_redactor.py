"""The redactor's contract: typed placeholders, overlap resolution, and failing closed."""

from collections.abc import Iterator

import pytest
from medgo_common.phi import PhiType, Redacted, RedactionError, contains_phi, redact
from medgo_common.phi import redactor as redactor_module
from medgo_common.phi.patterns import Span

CLEAR = "患者张三，电话13812345678"


def _broken_detector(text: str) -> Iterator[Span]:
    """Stands in for a detector bug (bad regex, missing data file) on real input."""
    raise ValueError(f"boom on {text}")
    yield  # pragma: no cover - makes this a generator like the real detectors


def test_redacted_is_frozen_and_typed() -> None:
    result = redact(CLEAR)
    assert isinstance(result, Redacted)
    assert result.found
    with pytest.raises(AttributeError):
        result.text = CLEAR  # type: ignore[misc]
    assert {PhiType.NAME.placeholder, PhiType.PHONE.placeholder} == {"[姓名]", "[电话]"}


def test_text_without_phi_is_returned_unchanged() -> None:
    result = redact("胸痛3小时。")
    assert (result.text, result.counts, result.spans) == ("胸痛3小时。", {}, ())
    assert not result.found


def test_detector_failure_raises_redaction_error_without_the_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        redactor_module, "_DETECTORS", (*redactor_module._DETECTORS, _broken_detector)
    )
    for call in (redact, contains_phi):
        with pytest.raises(RedactionError) as info:
            call(CLEAR)
        assert "13812345678" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("value", [None, b"13812345678", 13812345678])
def test_non_text_input_fails_closed(value: object) -> None:
    with pytest.raises(RedactionError):
        redact(value)  # type: ignore[arg-type]


def test_overlapping_detectors_resolve_by_priority() -> None:
    # The ID number's last 11 digits look like a mobile number; the ID wins.
    result = redact("身份证：11010519491231002X")
    assert result.text == "身份证：[身份证号]"
    assert result.counts == {PhiType.ID_CARD: 1}
