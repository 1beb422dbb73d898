"""Build the second PHI test set: real sentences with synthetic PHI, plus record lines.

    .venv/bin/python bench/phi_synth.py            # rewrites the committed set
    .venv/bin/python bench/phi_synth.py --out /tmp/phi_synth.jsonl --seed 7

Built differently from `phi_corpus.jsonl` (sentences written around their PHI): here
the prose is real (CMeEE clinical sentences and ChatMed patient questions from the
shared data, neither used to write the rules nor in the 13,408-question false-alteration
set) and one PHI item is put into it at a random clause boundary or in place of a
random pronoun, so what surrounds a name is whatever the real sentence has there.
Record-style lines (labelled fields, a name opening a line before a field label,
grouped numbers, mistyped IDs after their label, pinyin names) come from a small
grammar. Every row says its `context`: `prose` (bare PHI in free text), `cue` (after
患者/家属-style words), `record`, or `clean` (a real sentence left as it is). The
random generator is seeded, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from medgo_common.paths import default_data_dir, repo_root
from medgo_common.phi.idcard import check_char

DEFAULT_OUT = repo_root() / "libs/medgo_common/tests/data/phi_synth.jsonl"
SEED = 18
SIZES = {"prose": 600, "records": 250, "clean": 300}

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐")
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红兰建国文辉力鹏宇浩飞婷雪梅琳晨"
    "欣怡佳慧颖俊峰志宏海波丹凤云亮斌莉燕鑫倩彬晓玲瑶琪子涵梓轩思雨博文嘉豪铭昊天一诺悦可"
    "淑珍德福永春秋菊荣庆祥瑞锋毅坤鸿健林晶蕾璐薇"
)
PINYIN = ("Zhang Wei", "Li Na", "Wang Fang", "Liu Yang", "Chen Jing", "Yang Lei", "Huang Min",
          "Zhao Qiang", "Wu Xiuying", "Zhou Jie", "Xu Ming", "Sun Li")  # fmt: skip
CUES = ("患者", "病人", "家属", "患儿", "其女儿", "主治医师", "我叫", "我是", "联系人")
CONNECTORS = ("说", "最近", "今年", "上周", "一直", "的母亲", "觉得", "前几天", "也", "和家人",
              "昨天", "的孩子", "这两天")  # fmt: skip
PRONOUNS = re.compile(r"(?<![其自])[我他她](?![们人])|孩子|宝宝|患者|病人|老公|老婆|妈妈|爸爸")
PLACES = (("北京市", "朝阳区"), ("上海市", "徐汇区"), ("广东省广州市", "天河区"),
          ("浙江省杭州市", "西湖区"), ("四川省成都市", "武侯区"), ("湖北省武汉市", "洪山区"),
          ("江苏省南京市", "鼓楼区"), ("河南省郑州市", "金水区"))  # fmt: skip
STREETS = ("建设路", "人民大道", "解放街", "中山路", "文化巷", "幸福里小区", "花园新村", "东风路")
RECORD_LABELS = (("住院号", "admission"), ("病案号", "medical_record"),
                 ("病历号", "medical_record"), ("门诊号", "outpatient"))  # fmt: skip


class Row:
    """A text being built, with its gold spans."""

    def __init__(self, context: str) -> None:
        self.context = context
        self.text = ""
        self.spans: list[dict] = []

    def add(self, piece: str, phi_type: str | None = None) -> Row:
        if phi_type:
            self.spans.append({"start": len(self.text), "end": len(self.text) + len(piece),
                               "type": phi_type})
        self.text += piece
        return self

    def json(self) -> str:
        return json.dumps({"text": self.text, "spans": self.spans, "context": self.context},
                          ensure_ascii=False)


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def name(self) -> str:
        surname = self.r.choice(COMPOUND_SURNAMES) if self.r.random() < 0.05 else self.r.choice(
            SURNAMES
        )
        return surname + "".join(self.r.choice(GIVEN) for _ in range(self.r.choice((1, 2, 2))))

    def id_number(self, *, valid: bool = True) -> str:
        region = self.r.choice(("110105", "310104", "440106", "330106", "510107", "420111"))
        born = f"{self.r.randint(1940, 2015)}{self.r.randint(1, 12):02d}{self.r.randint(1, 28):02d}"
        first17 = region + born + f"{self.r.randint(0, 999):03d}"
        check = check_char(first17)
        if not valid:
            check = self.r.choice([c for c in "0123456789" if c != check])
        number = first17 + check
        if self.r.random() < 0.3:  # written in groups
            sep = self.r.choice((" ", "-"))
            number = sep.join((number[:6], number[6:14], number[14:]))
        return number

    def phone(self) -> str:
        digits = self.r.choice("3456789")
        number = "1" + digits + "".join(str(self.r.randint(0, 9)) for _ in range(9))
        style = self.r.random()
        if style < 0.3:
            return f"{number[:3]} {number[3:7]} {number[7:]}"
        if style < 0.45:
            return f"{number[:3]}-{number[3:7]}-{number[7:]}"
        if style < 0.55:
            return f"0{self.r.randint(10, 999)}-{self.r.randint(2000000, 89999999)}"
        return number

    def record_number(self) -> str:
        prefix = self.r.choice(("", "ZY", "BA", "MZ", ""))
        digits = "".join(str(self.r.randint(0, 9)) for _ in range(self.r.randint(6, 10)))
        if self.r.random() < 0.3:
            return prefix + " ".join((digits[:4], digits[4:]))
        return prefix + digits

    def address(self, *, with_city: bool = True) -> str:
        city, district = self.r.choice(PLACES)
        street = f"{self.r.choice(STREETS)}{self.r.randint(1, 300)}号"
        if self.r.random() < 0.5:
            street += f"{self.r.randint(1, 30)}栋{self.r.randint(101, 2505)}室"
        return (city + district if with_city else district) + street

    def birth(self) -> str:
        y, m, d = self.r.randint(1940, 2015), self.r.randint(1, 12), self.r.randint(1, 28)
        return self.r.choice((f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}"))

    def email(self) -> str:
        user = "".join(self.r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        domain = self.r.choice(("163.com", "qq.com", "hospital.cn"))
        return f"{user}{self.r.randint(1, 99)}@{domain}"


def _clause_boundaries(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer(r"[，。？！；,?!]", text) if m.end() < len(text)]


def prose_row(gen: Gen, sentence: str) -> Row:
    """One PHI item in a real sentence: a name (bare or cued) or another type."""
    kind = gen.r.choices(("name", "cue", "phone", "id_card", "address", "record", "email",
                          "birth_date"), weights=(6, 3, 2, 2, 1, 2, 1, 1))[0]  # fmt: skip
    pronouns = list(PRONOUNS.finditer(sentence))
    if kind == "name" and pronouns and gen.r.random() < 0.5:
        m = gen.r.choice(pronouns)
        row = Row("prose").add(sentence[: m.start()])
        return row.add(gen.name(), "name").add(sentence[m.end() :])
    at = gen.r.choice(_clause_boundaries(sentence))
    row = Row("cue" if kind == "cue" else "prose").add(sentence[:at])
    if kind == "name":
        row.add(gen.name(), "name").add(gen.r.choice(CONNECTORS))
    elif kind == "cue":
        row.add(gen.r.choice(CUES)).add(gen.name(), "name").add(gen.r.choice(CONNECTORS))
    elif kind == "phone":
        row.add(gen.r.choice(("有事请打", "联系电话", "手机", "可以打"))).add(gen.phone(), "phone")
        row.add("，")
    elif kind == "id_card":
        row.add(gen.r.choice(("身份证号", "身份证", "证件号："))).add(gen.id_number(), "id_card")
        row.add("，")
    elif kind == "address":
        row.add(gen.r.choice(("家住", "住在", "地址："))).add(gen.address(), "address").add("，")
    elif kind == "record":
        label, phi_type = gen.r.choice(RECORD_LABELS)
        row.add(label + gen.r.choice(("", "：", " "))).add(gen.record_number(), phi_type)
        row.add("，")
    elif kind == "email":
        row.add("邮箱").add(gen.email(), "email").add("，")
    else:
        row.add("出生于").add(gen.birth(), "birth_date").add("，")
    return row.add(sentence[at:])


def record_row(gen: Gen) -> Row:
    """A line of a case record: labelled fields in random order and spacing."""
    row = Row("record")
    sep = gen.r.choice(("  ", "，", "；", " ", "\u3000"))
    style = gen.r.random()
    if style < 0.35:  # the name opens the line, then a field label
        row.add(gen.name(), "name").add(gen.r.choice((" ", "，", "\u3000")))
    elif style < 0.45:
        row.add("姓名：").add(gen.r.choice(PINYIN), "name").add(sep)
    else:
        row.add(gen.r.choice(("姓名：", "姓名:", "患者姓名：", "联系人："))).add(gen.name(), "name")
        row.add(sep)
    fields = ["sex", "birth", "record", "phone", "id", "address"]
    gen.r.shuffle(fields)
    for field in fields[: gen.r.randint(2, 5)]:
        if field == "sex":
            row.add(f"性别：{gen.r.choice('男女')}{sep}年龄：{gen.r.randint(1, 95)}岁")
        elif field == "birth":
            row.add("出生日期：").add(gen.birth(), "birth_date")
        elif field == "record":
            label, phi_type = gen.r.choice(RECORD_LABELS)
            row.add(label + "：").add(gen.record_number(), phi_type)
        elif field == "phone":
            row.add(gen.r.choice(("联系电话：", "电话：", "手机："))).add(gen.phone(), "phone")
        elif field == "id":
            row.add(gen.r.choice(("身份证号：", "身份证：", "证件号：")))
            row.add(gen.id_number(valid=gen.r.random() > 0.2), "id_card")
        else:
            row.add(gen.r.choice(("地址：", "住址：", "现住址：")))
            row.add(gen.address(with_city=gen.r.random() > 0.4), "address")
        row.add(sep)
    return row


def real_sentences(data_dir: Path) -> list[str]:
    """Clinical sentences (CMeEE) and patient questions (ChatMed), 8-120 characters."""
    cmeee = json.loads((data_dir / "cblue/CMeEE/CMeEE_dev.json").read_text(encoding="utf-8"))
    chatmed = data_dir / "corpus/chatmed/ChatMed-Consult_test.json"
    questions = [
        json.loads(line)["query"].removeprefix("<s>问：").removesuffix("答：\n").strip()
        for line in chatmed.open(encoding="utf-8") if line.strip()
    ]
    texts = [row["text"] for row in cmeee] + [q.replace("\n", "") for q in questions]
    return [t for t in texts if 8 <= len(t) <= 120]


def build(data_dir: Path, seed: int, *, prose: int, records: int, clean: int) -> list[Row]:
    gen = Gen(seed)
    sentences = real_sentences(data_dir)
    picked = gen.r.sample(sentences, prose + clean)
    rows = [prose_row(gen, s) for s in picked[:prose]]
    rows += [record_row(gen) for _ in range(records)]
    rows += [Row("clean").add(s) for s in picked[prose:]]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    rows = build(args.data_dir, args.seed, **SIZES)
    args.out.write_text("".join(row.json() + "\n" for row in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
