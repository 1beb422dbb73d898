"""Text2DT: a medical decision tree from a guideline sentence, with its official metrics.

A tree is its nodes in pre-order: a condition node ("C") has two subtrees, the one
taken when the condition holds and the one taken when it does not; a decision node
("D") is a leaf. Each node holds triples (subject, relation, object). The official
scorer (Text2DT, CHIP 2022) reports five figures, all computed here per tree:

- tree accuracy: the whole node sequence matches (role and triple set per node);
- triple F1: micro-F1 over each tree's distinct triples;
- path F1: micro-F1 over root-to-leaf decision paths (nodes and yes/no branches);
- edit distance: walking both trees together, per aligned node 1 for a differing role
  plus its triples' symmetric difference, and each node of a subtree the other tree
  lacks 2 (role and relation slot) plus its triples; the mean over trees (lower is
  better);
- node F1: micro-F1 over nodes that hold triples (role and triple set).

Like the official scorer, the and/or relation between a node's triples is not scored.
Unlike it, a tree the model did not produce counts in the accuracy's denominator
(the official code skips empty predictions, which rewards answering less). The model
writes one node per line ("条件：主体|关系|客体；…", "决策：…", "决策：无"); a sequence
cut short is completed with empty decisions and lines past a complete tree are
dropped, so every reply is a tree. The headline score is tree accuracy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from medgo_trainer.evaluation.cblue.lines import answer_lines
from medgo_trainer.evaluation.cblue.relations import topic_and_text
from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task

Triple = tuple[str, str, str]
ROLE_WORDS = {"C": "条件", "D": "决策"}
RELATION_WORDS = {"and": "且", "or": "或"}
_ROLE_BY_WORD = {"条件": "C", "决策": "D", "C": "C", "D": "D"}
_RELATION_BY_WORD = {v: k for k, v in RELATION_WORDS.items()}
_NODE_LINE = re.compile(
    r"^(?:\d{1,3}[.、)）]\s*)?(条件|决策|C|D)\s*(?:[（(]\s*(且|或)\s*[）)])?\s*[：:]\s*(.*)$"
)
_TRIPLE_SPLIT = re.compile(r"\s*[；;]\s*")
_FIELD_SPLIT = re.compile(r"\s*[|｜]\s*")
#: The per-tree counts of the ``text2dt`` metric kind, in unit order.
TREE_COUNTS = (
    "tree_correct", "trees",
    "triple_tp", "triple_pred", "triple_gold",
    "path_tp", "path_pred", "path_gold",
    "edit_distance",
    "node_tp", "node_pred", "node_gold",
)  # fmt: skip


@dataclass(frozen=True)
class Node:
    role: str  # "C" or "D"
    triples: frozenset[Triple]
    relation: str = "null"  # "and" / "or" / "null": kept for rendering, not scored
    yes: Node | None = None  # the subtrees of a condition
    no: Node | None = None

    def same(self, other: Node) -> bool:
        """Node equality as the official scorer defines it: role and triple set."""
        return self.role == other.role and self.triples == other.triples

    def preorder(self) -> Iterator[Node]:
        yield self
        for child in (self.yes, self.no):
            if child is not None:
                yield from child.preorder()


EMPTY_DECISION = Node("D", frozenset())


def build_tree(flat: list[tuple[str, frozenset[Triple], str]]) -> Node:
    """The tree of a pre-order node list, completed or cut to a full binary tree."""
    items = iter(flat)

    def take() -> Node:
        role, triples, relation = next(items, ("D", frozenset(), "null"))
        if role != "C":
            return Node("D", triples, relation)
        return Node("C", triples, relation, yes=take(), no=take())

    return take()


def gold_tree(example: Example) -> Node:
    return build_tree(
        [
            (n["role"], frozenset(tuple(t) for t in n["triples"]), n.get("logical_rel", "null"))
            for n in example.data["tree"]
        ]
    )


def parse_tree(output: str, source: str | None = None) -> Node | None:
    """Node lines → a tree; None when the reply has no node line at all."""
    flat = []
    for line in answer_lines(output, source):
        match = _NODE_LINE.match(line)
        if match is None:
            continue
        triples = set()
        for chunk in _TRIPLE_SPLIT.split(match.group(3)):
            parts = [p.strip() for p in _FIELD_SPLIT.split(chunk)]
            if len(parts) == 3 and all(parts):
                triples.add((parts[0], parts[1], parts[2]))
        relation = _RELATION_BY_WORD.get(match.group(2) or "", "null")
        flat.append((_ROLE_BY_WORD[match.group(1)], frozenset(triples), relation))
    return build_tree(flat) if flat else None


def render_tree(tree: Node) -> str:
    lines = []
    for node in tree.preorder():
        relation = f"（{RELATION_WORDS[node.relation]}）" if node.relation in RELATION_WORDS else ""
        triples = "；".join("|".join(t) for t in sorted(node.triples)) or "无"
        lines.append(f"{ROLE_WORDS[node.role]}{relation}：{triples}")
    return "\n".join(lines)


def _paths(tree: Node) -> list[tuple[Any, ...]]:
    """Root-to-leaf paths as (node, branch, node, …, leaf) with nodes as (role, triples)."""
    if tree.yes is None or tree.no is None:
        return [((tree.role, tree.triples),)]
    here = (tree.role, tree.triples)
    return [
        (here, branch, *rest)
        for branch, child in (("yes", tree.yes), ("no", tree.no))
        for rest in _paths(child)
    ]


def _node_distance(a: Node, b: Node | None) -> int:
    if b is None:  # against nothing: role, relation slot and every triple differ
        return 2 + len(a.triples)
    return int(a.role != b.role) + len(a.triples ^ b.triples)


def _lowered(node: Node) -> Node:
    triples = frozenset(tuple(x.lower() for x in t) for t in node.triples)
    yes = _lowered(node.yes) if node.yes else None
    no = _lowered(node.no) if node.no else None
    return Node(node.role, triples, node.relation, yes, no)  # type: ignore[arg-type]


def edit_distance(predicted: Node, gold: Node) -> int:
    """Walk both trees together (case-insensitive triples, as the official scorer):
    aligned nodes cost their difference; where one side is a leaf and the other is not,
    the other side's whole subtree below that node is counted against nothing."""
    p, g = _lowered(predicted), _lowered(gold)

    def walk(a: Node, b: Node) -> int:
        cost = _node_distance(a, b)
        a_leaf, b_leaf = a.yes is None, b.yes is None
        if a_leaf and b_leaf:
            return cost
        if a_leaf or b_leaf:
            inner = b if a_leaf else a
            below = [n for child in (inner.yes, inner.no) for n in child.preorder()]  # type: ignore[union-attr]
            return cost + sum(_node_distance(n, None) for n in below)
        return cost + walk(a.yes, b.yes) + walk(a.no, b.no)  # type: ignore[arg-type]

    return walk(p, g)


def tree_unit(predicted: Node | None, gold: Node) -> list[float]:
    """The twelve `TREE_COUNTS` of one item (an absent prediction is an empty decision)."""
    pred = predicted or EMPTY_DECISION
    pred_nodes, gold_nodes = list(pred.preorder()), list(gold.preorder())
    correct = len(pred_nodes) == len(gold_nodes) and all(
        a.same(b) for a, b in zip(pred_nodes, gold_nodes, strict=True)
    )
    pred_triples = {t for n in pred_nodes for t in n.triples}
    gold_triples = {t for n in gold_nodes for t in n.triples}
    pred_paths, gold_paths = _paths(pred), _paths(gold)
    path_tp = sum(path in gold_paths for path in pred_paths)
    key = Counter((n.role, n.triples) for n in pred_nodes if n.triples)
    gold_key = Counter((n.role, n.triples) for n in gold_nodes if n.triples)
    return [
        float(correct), 1.0,
        len(pred_triples & gold_triples), len(pred_triples), len(gold_triples),
        path_tp, len(pred_paths), len(gold_paths),
        edit_distance(pred, gold),
        sum((key & gold_key).values()), sum(key.values()), sum(gold_key.values()),
    ]  # fmt: skip


class Text2DT(Task):
    name = "text2dt"
    title = "Text2DT"
    metric = "Tree accuracy"
    kind = "text2dt"
    max_tokens = 384
    eval_file = "cblue/Text2DT/Text2DT_test.json"
    train_file = "cblue/Text2DT/Text2DT_train.json"
    required = ("text", "tree")

    def prompt(self, example: Example) -> str:
        topic, body = topic_and_text(example.data["text"])
        return (
            "把下面的诊疗文本转写成诊疗决策树，按先序每行写一个节点：条件节点写"
            "“条件：主体|关系|客体”，其后先写条件成立时的分支，再写不成立时的分支；"
            "决策节点写“决策：主体|关系|客体”。一个节点有多个三元组时用“；”分隔，"
            "并可在节点名后注明（且）或（或）；没有内容的决策写“决策：无”。关系只能是："
            "临床表现、基本情况、治疗方案、治疗药物、用法用量、禁用药物。\n"
            + (f"主题：{topic}\n" if topic else "")
            + f"文本：{body}"
        )

    def answer(self, example: Example) -> str:
        return render_tree(gold_tree(example))

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_tree(reply.text, example.data["text"])
        shown = render_tree(predicted) if predicted else None
        return Scored(tree_unit(predicted, gold_tree(example)), shown)
