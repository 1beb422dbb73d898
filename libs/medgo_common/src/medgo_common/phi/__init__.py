"""PHI de-identification for Chinese clinical text, shared by every service.

    from medgo_common.phi import redact, contains_phi, Redacted, PhiType, RedactionError

`redact(text)` returns a `Redacted` whose `.text` has each PHI span replaced by a
typed placeholder (`[姓名]`, `[身份证号]`, `[电话]`, `[病历号]`, `[住院号]`,
`[门诊号]`, `[床号]`, `[地址]`, `[邮箱]`, `[出生日期]`), with `.counts` per
`PhiType` and `.spans` in the original text.

Contract: redaction fails closed. On any internal failure `redact`, `contains_phi`
and `find_spans` raise `RedactionError` (its message never includes the text);
callers must then not store, log or export the clear text.
"""

from medgo_common.phi.patterns import PhiType, Span
from medgo_common.phi.redactor import (
    Redacted,
    RedactionError,
    contains_phi,
    find_spans,
    redact,
)

__all__ = [
    "PhiType",
    "Redacted",
    "RedactionError",
    "Span",
    "contains_phi",
    "find_spans",
    "redact",
]
