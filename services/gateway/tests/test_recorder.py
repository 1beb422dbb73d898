"""Interaction records and ratings reach the real feedback service: redacted, once,
even across a feedback outage and a gateway crash (the durable spool)."""

from __future__ import annotations

import json
import re
import uuid

import httpx
from medgo_common.phi import PhiType, redact

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


CHAT = "/v1/chat/completions"
PHI_PROMPT = "患者张三，电话13812345678，身份证号110101199003074258，头痛三天，怎么办？"


def _chat(content: str, **extra) -> dict:
    return {"model": "medgo", "messages": [{"role": "user", "content": content}], **extra}


def _sample(text: str, sample: str) -> float:
    """One sample's value from a Prometheus text page (0 when absent)."""
    match = re.search(rf"^{re.escape(sample)} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _metric(url: str, sample: str) -> float:
    return _sample(httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/metrics").text, sample)


def _stream_text(body: str) -> str:
    chunks = [json.loads(e[6:]) for e in body.split("\n\n") if e and e != "data: [DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_streamed_chat_is_recorded_redacted_and_rated(
    make_settings, serve, vllm_server, feedback, keys
):
    feedback.start()
    settings = make_settings(inference_url=vllm_server, feedback_url=feedback.url)
    with serve(settings) as url:
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + CHAT,
            json=_chat(PHI_PROMPT, stream=True, max_tokens=6),
            headers=keys.auth("clinician"),
        )
        assert r.status_code == 200
        interaction_id = r.headers["x-medgo-interaction-id"]
        record = feedback.interaction(interaction_id)
        stored = json.dumps(record, ensure_ascii=False)
        for secret in ("张三", "13812345678", "110101199003074258"):
            assert secret not in stored
        assert record["messages"] == [{"role": "user", "content": redact(PHI_PROMPT).text}]
        assert "[电话]" in record["messages"][0]["content"]
        assert record["response"] == redact(_stream_text(r.text)).text
        assert (record["user_id"], record["department"]) == (keys.clinician_id, "心内科")
        assert record["checkpoint_id"] == "medgo-tiny-sft"
        assert record["prompt_tokens"] > 0 and 0 < record["completion_tokens"] <= 6
        assert _metric(url, 'medgo_gateway_redactions_total{type="phone"}') >= 1

        rating = {
            "interaction_id": interaction_id,
            "verdict": "unacceptable",
            "reasons": ["incomplete"],
            "comment": "请联系患者李四 13900001111 复诊",
        }
        headers = keys.auth("clinician") | {"Idempotency-Key": "rate-1"}
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + "/v1/feedback", json=rating, headers=headers
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["rater"], body["outcome"]) == (keys.clinician_id, "created")
        assert "13900001111" not in body["comment"] and "[电话]" in body["comment"]
        again = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + "/v1/feedback", json=rating, headers=headers
        )
        assert again.status_code == 200 and again.json()["id"] == body["id"]
        # An interaction feedback does not know (yet: its record may be in another
        # replica's spool) is queued and retried, not refused.
        unknown = rating | {"interaction_id": str(uuid.uuid4())}
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/feedback",
            json=unknown,
            headers=keys.auth("clinician"),
        )
        assert r.status_code == 202 and r.json()["status"] == "queued"
        assert _metric(url, "medgo_gateway_rating_deferrals_total") >= 1


def test_record_of_a_redacted_prompt_is_the_prompt_the_model_saw(
    make_settings, serve, vllm_server, feedback, keys
):
    """With prompt redaction on, the record keeps the redacted prompt sent to the model
    (not redacted a second time) and redacts the answer."""
    feedback.start()
    settings = make_settings(inference_url=vllm_server, feedback_url=feedback.url,
                             redact_prompts=True)
    with serve(settings) as url:
        r = httpx.post(timeout=MODEL_TIMEOUT_S, url=url + CHAT,
                       json=_chat(PHI_PROMPT, max_tokens=6), headers=keys.auth("clinician"))
        assert r.status_code == 200
        interaction_id = r.headers["x-medgo-interaction-id"]
        record = feedback.interaction(interaction_id)
        assert record["messages"] == [{"role": "user", "content": redact(PHI_PROMPT).text}]
        answer = r.json()["choices"][0]["message"]["content"]
        assert record["response"] == redact(answer).text
        # The prompt's phone counted once (prompt redaction), not again for the record.
        phones = 1 + redact(answer).counts.get(PhiType.PHONE, 0)
        assert _metric(url, 'medgo_gateway_redactions_total{type="phone"}') == phones


def test_feedback_outage_is_spooled_and_replayed_once(
    make_settings, serve, vllm_server, feedback, keys, wait
):
    settings = make_settings(inference_url=vllm_server, feedback_url=feedback.url)
    with serve(settings) as url:
        ids = []
        for i in range(3):
            r = httpx.post(
                timeout=MODEL_TIMEOUT_S,
                url=url + CHAT,
                json=_chat(f"第{i}个问题：咳嗽怎么办", max_tokens=4),
                headers=keys.auth("clinician"),
            )
            assert r.status_code == 200  # the gateway keeps serving with feedback down
            ids.append(r.headers["x-medgo-interaction-id"])
        rating = {"interaction_id": ids[0], "verdict": "acceptable"}
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/feedback",
            json=rating,
            headers=keys.auth("clinician"),
        )
        assert r.status_code == 202 and r.json()["status"] == "queued"
        wait(lambda: _metric(url, "medgo_gateway_spool_depth") == 4, 30, "4 spooled items")

        feedback.start()
        wait(lambda: _metric(url, "medgo_gateway_spool_depth") == 0, 60, "the spool to drain")
        for interaction_id in ids:
            assert feedback.get(f"/v1/interactions/{interaction_id}").status_code == 200
        fb_metrics = feedback.get("/metrics").text
        inserted = 'medgo_feedback_interactions_total{result="inserted"}'
        duplicate = 'medgo_feedback_interactions_total{result="duplicate"}'
        assert (_sample(fb_metrics, inserted), _sample(fb_metrics, duplicate)) == (3, 0)
        assert _sample(fb_metrics, 'medgo_feedback_ratings_total{outcome="created"}') == 1
        assert _metric(url, 'medgo_gateway_delivered_total{kind="interaction"}') == 3


def test_spool_survives_a_gateway_crash(vllm_server, feedback, gateway_process, keys, wait):
    gateway = gateway_process(inference_url=vllm_server, feedback_url=feedback.url)
    gateway.start()
    ids = []
    for i in range(2):
        r = httpx.post(
            gateway.url + CHAT,
            json=_chat(f"问题{i}：发烧", max_tokens=4),
            headers=keys.auth("api_client"),
            timeout=60,
        )
        assert r.status_code == 200
        ids.append(r.headers["x-medgo-interaction-id"])
    wait(lambda: _metric(gateway.url, "medgo_gateway_spool_depth") == 2, 30, "2 spooled records")
    gateway.kill()  # SIGKILL: nothing in memory survives

    feedback.start()
    for interaction_id in ids:
        assert feedback.get(f"/v1/interactions/{interaction_id}").status_code == 404
    gateway.start()  # same spool file
    wait(
        lambda: all(feedback.get(f"/v1/interactions/{i}").status_code == 200 for i in ids),
        60,
        "the spooled records to be replayed after the restart",
    )
    fb_metrics = feedback.get("/metrics").text
    assert _sample(fb_metrics, 'medgo_feedback_interactions_total{result="inserted"}') == 2
