"""End to end, as deployed: OpenAI SDK → `medgo-gateway` → real vLLM (medgo-tiny) →
`medgo-feedback`, and a clinician's correction comes out of the DPO export.

Every server is the real console script in its own process, configured only through
its environment; the API key is created with the real `medgo-gateway keys add` CLI,
as the local-mode launcher does.
"""

from __future__ import annotations

import httpx
import openai
from medgo_common.phi import redact

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


PROMPT = "患者王五，电话13700001234，反复胸闷两周，需要做哪些检查？"
CORRECTION = "建议完善心电图、心肌酶谱和冠脉CTA检查，必要时行冠脉造影。"


def test_chat_rate_and_export(stack) -> None:
    client = openai.OpenAI(base_url=stack.gateway + "/v1", api_key=stack.key)
    assert [m.id for m in client.models.list()] == ["medgo"]

    raw = client.chat.completions.with_raw_response.create(
        model="medgo",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=8,
        stream=True,
    )
    interaction_id = raw.headers["x-medgo-interaction-id"]
    assert raw.headers["x-medgo-checkpoint"] == "medgo-tiny-sft"
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)

    rating = {
        "interaction_id": interaction_id,
        "verdict": "unacceptable",
        "reasons": ["incomplete"],
        "corrected_answer": CORRECTION,
    }
    auth = {"Authorization": f"Bearer {stack.key}"}
    r = httpx.post(
        timeout=MODEL_TIMEOUT_S, url=stack.gateway + "/v1/feedback", json=rating, headers=auth
    )
    # 201: stored at once; 202: queued behind the interaction record, which the gateway
    # delivers asynchronously. Either way the export below must show it.
    assert r.status_code in (201, 202), r.text

    rows, export = stack.dpo_export()
    assert rows == [
        {
            "prompt": [{"role": "user", "content": redact(PROMPT).text}],
            "chosen": [{"role": "assistant", "content": CORRECTION}],
            "rejected": [{"role": "assistant", "content": redact(answer).text}],
        }
    ]
    assert "13700001234" not in export and "王五" not in export
