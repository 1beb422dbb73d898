"""GB 11643 checks: the check character and birth-date validation of ID numbers."""

import pytest
from medgo_common.phi import PhiType, redact
from medgo_common.phi.idcard import check_char, is_valid_id15, is_valid_id18

# Built with the standard's algorithm: weights 7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2.
VALID = "11010519491231002X"


def test_check_char_matches_the_standard_example() -> None:
    # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167
    # 167 mod 11 = 2 -> "X"
    assert check_char(VALID[:17]) == "X"


def test_valid_18_digit_number_accepted_in_either_case() -> None:
    assert is_valid_id18(VALID)
    assert is_valid_id18(VALID.lower())


@pytest.mark.parametrize("wrong", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
def test_every_wrong_check_character_is_rejected(wrong: str) -> None:
    assert not is_valid_id18(VALID[:17] + wrong)


@pytest.mark.parametrize(
    "number",
    [
        "110105194902310021",  # 31 February
        "110105290001010028",  # born in the future
        "910105194912310021",  # region code starting with 9
        "11010519491231002",  # 17 characters
    ],
)
def test_implausible_18_digit_numbers_rejected(number: str) -> None:
    if len(number) == 18:
        number = number[:17] + check_char(number[:17])  # checksum right, rest wrong
    assert not is_valid_id18(number)


def test_legacy_15_digit_numbers_need_a_real_birth_date() -> None:
    assert is_valid_id15("110105491231002")
    assert not is_valid_id15("110105491331002")  # month 13
    assert not is_valid_id15("000105491231002")  # no region starts with 0


def test_only_checksum_valid_numbers_are_redacted() -> None:
    bad = VALID[:17] + "1"
    result = redact(f"身份证号{VALID}，条码{bad}")
    assert result.text == f"身份证号[身份证号]，条码{bad}"
    assert result.counts == {PhiType.ID_CARD: 1}


def test_id_inside_a_longer_digit_run_is_not_cut_out() -> None:
    text = f"流水号{VALID[:17]}0123"
    assert redact(text).text == text
