"""Per-type detection: what must be redacted and the lookalikes that must stay."""

import pytest
from medgo_common.phi import PhiType, contains_phi, redact
from medgo_common.phi.names import _CUE_RE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("电话13812345678", "电话[电话]"),
        ("手机：138 1234 5678。", "手机：[电话]。"),
        ("手机138-1234-5678", "手机[电话]"),
        ("请拨+86 13912345678", "请拨[电话]"),
        ("科室电话010-62345678", "科室电话[电话]"),
        ("（0755）86543210转8012", "[电话]"),
        ("热线400-820-1234", "热线[电话]"),
        ("座机：62345678", "座机：[电话]"),
        ("邮箱wang.fang@hospital.org.cn", "邮箱[邮箱]"),
        ("病历号：MR2023004512", "病历号：[病历号]"),
        ("病案号BL-202306-0087", "病案号[病历号]"),
        ("住院号为ZY20230045", "住院号为[住院号]"),
        ("门诊号 MZ20231108033", "门诊号 [门诊号]"),
        ("12床患者", "[床号]患者"),
        ("3号床、+2床", "[床号]、[床号]"),
        ("床号：21", "床号：[床号]"),
        ("出生日期：1985年3月12日", "出生日期：[出生日期]"),
        ("生于1962-07-08，", "生于[出生日期]，"),
        ("1979/11/23出生", "[出生日期]出生"),
        ("出生年月：一九八五年三月", "出生年月：[出生日期]"),
        ("家住北京市朝阳区建国路88号3单元502室。", "家住[地址]。"),
        ("现住址：浙江省杭州市西湖区文三路100号", "现住址：[地址]"),
        ("住在和平区和平里东街74号", "住在[地址]"),
    ],
)
def test_structured_phi_is_replaced(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("患者张三，男，45岁", "患者[姓名]，男，45岁"),
        ("姓名：李四  性别：女", "姓名：[姓名]  性别：女"),
        ("病人王某某因腹痛入院", "病人[姓名]因腹痛入院"),
        ("家属欧阳娜娜签字", "家属[姓名]签字"),
        ("主治医师司马建国查房", "主治医师[姓名]查房"),
        ("联系人：诸葛亮（儿子）", "联系人：[姓名]（儿子）"),
        ("王五，60岁，男，因头晕就诊", "[姓名]，60岁，男，因头晕就诊"),
        ("12床的王芳今日出院", "[床号]的[姓名]今日出院"),
        ("李女士诉头痛", "[姓名]女士诉头痛"),
        ("急诊科贺敏医生接诊", "急诊科[姓名]医生接诊"),
        ("我叫王心怡，今年30岁", "我叫[姓名]，今年30岁"),
        ("患者常俊杰于2023年3月住院", "患者[姓名]于2023年3月住院"),
        ("患者王素芬，女，70岁", "患者[姓名]，女，70岁"),
        ("患者张有才因胸痛入院", "患者[姓名]因胸痛入院"),
        ("患者李某为老年男性", "患者[姓名]为老年男性"),
        ("陈祖金，男，45岁", "[姓名]，男，45岁"),
    ],
)
def test_names_in_clinical_context_are_replaced(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("患儿万秋和家人来复诊", "患儿[姓名]和家人来复诊"),  # ambiguous surname, then 和
        ("其女儿曾敏一直陪护", "其女儿[姓名]一直陪护"),  # 敏, not 敏一
        ("我叫石伟祥上周做了胃镜", "我叫[姓名]上周做了胃镜"),
        ("主治医师刘可今天查房", "主治医师[姓名]今天查房"),  # 可 as a given name
        ("患者诸葛可琳说头痛", "患者[姓名]说头痛"),
        ("联系人黎昊前几天来过", "联系人[姓名]前几天来过"),  # 黎, 莫: added surnames
        ("莫燕海，男，45岁", "[姓名]，男，45岁"),
    ],
)
def test_names_after_a_cue_checked_by_the_dictionary(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "患者明确诊断为肺炎，患者石膏固定后，患者马上手术。",  # a word at the surname
        "患者可见皮疹，患者可能是过敏，患者在家休息。",  # 可, 在 start a word here
        "患者艾灸后好转，医生，谢谢您。",  # jieba tags 艾灸 and 谢谢 `nr`
        "黄疸型肝炎患者康复后饮食，生养儿子时妇幼保健所验尿。",  # 妇幼|保健 not cut
        "慢性乙肝患者,谷丙转氨酶51",
    ],
)
def test_cue_then_ordinary_words_is_kept(text: str) -> None:
    assert redact(text).text == text


@pytest.mark.parametrize(
    "text",
    [
        "阿莫西林0.5g，每日3次，口服7天。",
        "血钾3.5mmol/L，血钠138mmol/L，WBC 13.8×10^9/L。",
        "2023年11月8日复诊，血压130/80mmHg。",
        "根据《中国2型糖尿病防治指南（2020年版）》，HbA1c目标<7.0%。",
        "患者高热3天，于入院前服用布洛芬。",
        "患者明显好转，患者平素体健，患者全身皮肤无黄染。",
        "患者安静入睡，患者常感乏力。",
        "治疗组与对照组比较，P<0.05。",
        "病区共有45张床位，嘱患者卧床休息，床头抬高30°。",
        "放射科王主任建议完善MRI。",
        "北京市卫健委发布流感防治方案。",
        "交费流水号20231108123456789012。",
        "请拨打120或心理援助热线12356。",
        "与患者关系：配偶，谢谢医生。",
        "马凡综合征、白塞病、李斯特菌感染。",
    ],
)
def test_ordinary_clinical_text_is_kept(text: str) -> None:
    assert redact(text).text == text
    assert not contains_phi(text)


def test_counts_and_spans_describe_the_original_text() -> None:
    text = "患者张三，电话13812345678，备用13912345678，12床。"
    result = redact(text)
    assert result.counts == {PhiType.NAME: 1, PhiType.PHONE: 2, PhiType.BED: 1}
    assert [text[s.start : s.end] for s in result.spans] == [
        "张三",
        "13812345678",
        "13912345678",
        "12床",
    ]
    assert result.text == "患者[姓名]，电话[电话]，备用[电话]，[床号]。"


def test_full_width_digits_are_phone_numbers_too() -> None:
    assert redact("电话１３８１２３４５６７８").text == "电话[电话]"


_CUE_WORDS = [
    "患者", "病人", "患儿", "病患", "产妇", "孕妇", "伤者", "我是", "本人", "家属", "联系人",
    "陪护", "监护人", "委托人", "我叫", "12床", "+3号床的", "医师", "主治医生", "主任护士",
    "副主任医师", "住院医师", "经治医生", "上级医师", "责任护士", "管床医生",
    "接诊医生", "值班医生",
    "主诊医师", "护士长", "大夫", "儿子", "其女儿", "患者丈夫", "之妻子", "我父亲", "母亲",
    "爱人", "老伴", "哥哥", "姐姐", "弟弟", "妹妹", "妈妈", "爸爸", "奶奶", "爷爷", "外婆",
    "外公", "老公", "老婆", "其子", "之女",
]


@pytest.mark.parametrize("cue", _CUE_WORDS)
def test_every_cue_word_passes_the_scan_prefilter(cue: str) -> None:
    """`_CUE_FIRST` must list the first character of every cue alternative (护士长 and
    患者丈夫 match as 护士 and 患者: the earlier alternative wins, as before)."""
    match = _CUE_RE.match(cue + "张伟")
    assert match is not None and match.end() >= 2
