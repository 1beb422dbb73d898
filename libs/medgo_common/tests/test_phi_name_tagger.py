"""Names in free prose that only jiagu's tagger confirms (`phi.name_tagger`), and the
bound on how often it is asked (the worst case stays linear)."""

from __future__ import annotations

import pytest
from medgo_common.phi import name_tagger, prose_names, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("吕梓鹏今年在术后早期，", "[姓名]今年在术后早期，"),
        ("朱艳坤上周皮肤发黄", "[姓名]上周皮肤发黄"),
        ("熊超玉觉得在血液", "[姓名]觉得在血液"),
    ],
)
def test_rare_given_names_confirmed_by_the_tagger_are_replaced(text: str, expected: str) -> None:
    assert redact(text).text == expected


def test_the_tagger_starts_a_person_at_the_surname_only() -> None:
    text = "吕梓鹏今年在术后早期，"
    assert [name_tagger.starts_person(text, i) for i in range(4)] == [True, False, False, False]


@pytest.mark.parametrize(
    "text",
    [
        "免疫并防止复发，常用雷公藤多甙片2mg",  # a dictionary word: never asked
        "姜黄对肝硬化有效吗",  # the tagger says person; the dictionary word 姜黄 wins
        "蒲公英怎么喝治胃炎",
        "鲜榨生姜汁洗头",
    ],
)
def test_herbs_and_foods_that_look_like_names_are_kept(text: str) -> None:
    assert redact(text).text == text


def test_the_tagger_alone_would_take_an_herb_for_a_person() -> None:
    """Why it is only a second opinion: 姜黄 (turmeric) starts a person for it."""
    assert name_tagger.starts_person("姜黄对肝硬化有效吗", 0)


def test_the_tagger_is_asked_a_bounded_number_of_times(monkeypatch) -> None:
    """A run of "surname + lone character" is all candidates: the tagger's calls stay
    within the budget, so its fixed cost per call cannot make redaction superlinear."""
    calls: list[int] = []
    real = name_tagger.starts_person

    def counted(text: str, start: int) -> bool:
        calls.append(start)
        return real(text, start)

    monkeypatch.setattr(name_tagger, "starts_person", counted)
    text = "王李，" * 2000
    redact(text)
    assert 0 < len(calls) <= prose_names.TAGGED_MIN + len(text) // prose_names.TAGGED_PER_CHARS


def test_the_model_file_is_the_packaged_one() -> None:
    path = name_tagger.model_path()
    assert path.name == "ner.model" and path.parent.parent.name == "jiagu"


def test_any_other_file_is_refused_before_unpickling(tmp_path) -> None:
    """A pickle runs code when loaded: a file that is not the pinned model is not opened."""
    other = tmp_path / "ner.model"
    data = name_tagger.model_path().read_bytes()
    other.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit off
    with pytest.raises(RuntimeError, match="refusing to unpickle"):
        name_tagger.load(other)
