"""`medgo-gateway` with its PHI detector replaced by the identity — a benchmark baseline.

bench/gateway.py (`--phi-off`) runs this next to the real gateway so one run shows
what the detector costs per request (issue 18: gateway CPU with the detector on, side
by side with it off). Only here, never a gateway setting: the records this process
spools are not redacted. The benchmark's prompts hold no PHI and its spool lives in a
temporary directory that is deleted when the run ends.

    MEDGO_GATEWAY_... python bench/gateway_unredacted.py    # same settings as medgo-gateway
"""

from __future__ import annotations

import sys

from medgo_common.phi import Redacted
from medgo_gateway import deid
from medgo_gateway.cli import main


def _identity(texts: list[str], timeout: float = 0.0) -> list[Redacted]:
    return [Redacted(text) for text in texts]


async def _aidentity(text: str, timeout: float = 0.0) -> Redacted:
    return Redacted(text)


if __name__ == "__main__":
    deid.redact_all_within = _identity  # what the recorder calls, in its writer thread
    deid.aredact = _aidentity  # prompt redaction (the bench also turns it off)
    sys.exit(main([]))
