"""PHI handling: prompts redacted before the model when configured, and fail-closed
behaviour when the redactor breaks (the failure is injected into the real redactor's
call site: it cannot be provoked with any input)."""

from __future__ import annotations

import re
import threading

import httpx
import medgo_common.phi.guarded as guarded
from medgo_common.phi import RedactionError

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


CHAT = "/v1/chat/completions"
PHI = "患者张三，电话13812345678"


def _metric(url: str, sample: str) -> float:
    match = re.search(
        rf"^{re.escape(sample)} ([0-9.e+]+)$",
        httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/metrics").text,
        re.M,
    )
    return float(match.group(1)) if match else 0.0


def test_prompts_reach_the_model_redacted(make_settings, serve, vllm_server, keys):
    """vLLM's `echo` returns the final assistant message as the model saw it."""
    body = {
        "model": "medgo",
        "max_tokens": 1,
        "echo": True,
        "add_generation_prompt": False,
        "continue_final_message": True,
        "messages": [{"role": "user", "content": "复述"}, {"role": "assistant", "content": PHI}],
    }
    echo = ["echo", "add_generation_prompt", "continue_final_message"]  # vLLM's echo trick
    with serve(make_settings(inference_url=vllm_server, passthrough_params=echo)) as url:
        plain = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + CHAT, json=body, headers=keys.auth("api_client")
        ).json()
        assert plain["choices"][0]["message"]["content"].startswith(PHI)
    with serve(
        make_settings(inference_url=vllm_server, redact_prompts=True, passthrough_params=echo)
    ) as url:
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + CHAT, json=body, headers=keys.auth("api_client")
        )
        seen = r.json()["choices"][0]["message"]["content"]
        assert seen.startswith("患者[姓名]，电话[电话]") and "13812345678" not in seen


def _broken_redactor(text: str):
    raise RedactionError("injected failure")


def test_redaction_failure_fails_closed(make_settings, serve, vllm_server, keys, monkeypatch, wait):
    monkeypatch.setattr(guarded, "redact", _broken_redactor)
    chat = {"model": "medgo", "messages": [{"role": "user", "content": PHI}], "max_tokens": 2}
    with serve(make_settings(inference_url=vllm_server, redact_prompts=True)) as url:
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + CHAT, json=chat, headers=keys.auth("api_client")
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "redaction_failed"
        assert _metric(url, "medgo_gateway_redaction_failures_total") == 1
    with serve(make_settings(inference_url=vllm_server)) as url:
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + CHAT, json=chat, headers=keys.auth("api_client")
        )
        assert r.status_code == 200  # answering is fine; recording the clear text is not
        wait(
            lambda: _metric(url, "medgo_gateway_redaction_failures_total") == 1,
            10,
            "the failed redaction to be counted",
        )
        assert _metric(url, "medgo_gateway_spool_depth") == 0
        rating = {
            "interaction_id": r.headers["x-medgo-interaction-id"],
            "verdict": "unacceptable",
            "comment": PHI,
        }
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/feedback",
            json=rating,
            headers=keys.auth("clinician"),
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "redaction_failed"
        assert _metric(url, "medgo_gateway_spool_depth") == 0


def test_a_stalled_redaction_fails_closed_and_the_loop_keeps_serving(
    make_settings, serve, keys, monkeypatch
):
    """A redaction past its deadline refuses the rating (503, nothing spooled) and, while
    it runs, the same gateway answers other requests: the redactor is off the event loop.
    The stall is injected (a redactor that blocks until released); no input stalls the
    real one (see libs/medgo_common/tests/test_phi_linear.py). The text is longer than
    `INLINE_MAX_CHARS`: shorter ones are redacted inline, bounded by the linear cost."""
    entered, release = threading.Event(), threading.Event()

    def stalled(text: str):
        entered.set()
        release.wait(30)
        raise RedactionError("released")

    monkeypatch.setattr(guarded, "redact", stalled)
    rating = {
        "interaction_id": "00000000-0000-4000-8000-000000000001",
        "verdict": "unacceptable",
        "corrected_answer": PHI * (guarded.INLINE_MAX_CHARS // len(PHI) + 1),
    }
    try:
        with serve(make_settings(redaction_timeout_s=1.0)) as url:
            result: dict = {}

            def post() -> None:
                result["r"] = httpx.post(
                    url + "/v1/feedback", json=rating, headers=keys.auth("clinician"), timeout=30
                )

            poster = threading.Thread(target=post)
            poster.start()
            assert entered.wait(10)
            reasons = httpx.get(url + "/v1/feedback/reasons", headers=keys.auth("clinician"))
            assert reasons.status_code == 200  # served while the redaction is stuck
            poster.join(30)
            r = result["r"]
            assert r.status_code == 503 and r.json()["error"]["code"] == "redaction_failed"
            assert PHI not in r.text
            assert _metric(url, "medgo_gateway_redaction_failures_total") == 1
            assert _metric(url, "medgo_gateway_spool_depth") == 0
    finally:
        release.set()
