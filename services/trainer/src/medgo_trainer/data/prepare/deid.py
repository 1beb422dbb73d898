"""PHI scrubbing with the shared redactor, failing closed.

Training data must never hold a patient's name, ID-card or phone number: every
document goes through `medgo_common.phi.redact`, and a document the redactor cannot
process is dropped (counted as `deid_error`), never kept in clear text.
"""

from __future__ import annotations

from collections import Counter

from medgo_common.phi import RedactionError, redact


def scrub(text: str) -> tuple[str | None, Counter[str]]:
    """Return (redacted text, replacements per PHI type) or (None, {}) on redactor failure."""
    try:
        result = redact(text)
    except RedactionError:
        return None, Counter()
    return result.text, Counter({str(k): v for k, v in result.counts.items() if v})
