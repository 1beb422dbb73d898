"""The clinician chat page in a real headless Chromium (Debian's), driven by Playwright.

Against the real stack on medgo-tiny: sign in with a clinician key, ask, watch the
answer stream in, rate it unacceptable with a correction, find the rating in the
feedback store and the pair in the DPO export, then change the rating. A second test
runs the page against a gateway whose model is down, for the banners (model
unavailable, rate limit, expired session), the tablet layout and sign-out (the token
is refused by the gateway afterwards).

Screenshots are kept as test artifacts in `$MEDGO_TEST_ARTIFACTS/chat-page`
(default `var/test-artifacts/chat-page`), one per step, for a reviewer to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from medgo_common.phi import redact
from playwright.sync_api import expect, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                       "(scripts/test.sh installs it with apt-get when run as root)"),
]

ARTIFACTS = Path(os.environ.get(
    "MEDGO_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "var" / "test-artifacts"
)) / "chat-page"
# The flags that keep Chromium off the network this machine does not have (it would
# otherwise try Google's update and sync hosts at every start).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ANSWER_TIMEOUT_MS = 120_000  # CPU vLLM on a loaded 2-core machine
PROMPT = "患者李四，手机13912345678，活动后胸痛伴气短3天，应考虑哪些诊断？"
CORRECTION = "应考虑心绞痛、急性冠脉综合征和肺栓塞，尽快完善心电图、肌钙蛋白和D-二聚体检查。"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request) -> Iterator:
    """A fresh browser profile per test, tablet-sized, failing on any page error."""
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{request.node.name}-last.png", full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def sign_in(page, url: str, key: str) -> None:
    page.goto(url)
    page.get_by_label("API 密钥").fill(key)
    page.get_by_role("button", name="登录").click()
    page.locator("#app").wait_for(state="visible")


def conversations(page) -> list[dict]:
    return json.loads(page.evaluate("sessionStorage.getItem('medgo.conversations')"))


def wait_for_store(predicate, timeout_s: float = 30):
    """Ratings may be queued (202) behind their interaction record: poll the store."""
    deadline = time.monotonic() + timeout_s
    while (value := predicate()) is None:
        if time.monotonic() > deadline:
            pytest.fail("the feedback store never showed the rating")
        time.sleep(0.2)
    return value


def test_ask_stream_rate_and_export(page, stack):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, stack.gateway, stack.key)
    assert page.locator("#who").inner_text() == "临床医生 · 心内科"
    # The key is traded for a session: it is not kept in the browser.
    assert stack.key not in page.evaluate("JSON.stringify(sessionStorage)")
    shot(page, "01-signed-in")

    # Record every state the answer is drawn in; a streamed answer is drawn while
    # "streaming" before it is "done". (How many redraws a short answer gets depends on
    # how many chunks land in one animation frame, so that count is not asserted.)
    page.evaluate("""() => {
        window.states = [];
        new MutationObserver(() => {
            const answer = document.querySelector('.message.assistant');
            if (answer && answer.dataset.status !== window.states.at(-1)) {
                window.states.push(answer.dataset.status);
            }
        }).observe(document.getElementById('messages'),
                   {childList: true, subtree: true, attributes: true});
    }""")
    with page.expect_response("**/v1/chat/completions") as chat:
        page.get_by_label("输入问题").fill(PROMPT)
        page.keyboard.press("Enter")
    assert chat.value.request.post_data_json["stream"] is True
    assert chat.value.headers["content-type"].startswith("text/event-stream")
    answer = page.locator(".message.assistant").last
    page.wait_for_selector(".message.assistant[data-status='done']", timeout=ANSWER_TIMEOUT_MS)
    text = answer.locator(".content").inner_text().strip()
    assert text, "the answer is empty"
    assert page.evaluate("window.states") == ["streaming", "done"]
    assert answer.locator(".message-checkpoint").inner_text() == "medgo-tiny-sft"
    assert page.locator("#checkpoint").inner_text() == "模型版本：medgo-tiny-sft"
    assert page.locator("#conversations button[aria-current='true']").inner_text() == PROMPT[:24]
    shot(page, "02-answer")

    answer.get_by_role("button", name="复制").click()
    expect(answer.get_by_role("button", name="已复制")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    stored = conversations(page)[0]["messages"][1]
    assert copied == stored["content"] and copied.strip()

    # Rate it unacceptable, with two reasons, a comment and a correction.
    answer.get_by_role("button", name="不可接受").click()
    answer.get_by_label("回答不完整").check()
    answer.get_by_label("事实错误").check()
    answer.get_by_label("备注").fill("遗漏了肺栓塞")
    answer.get_by_label("修正后的回答").fill(CORRECTION)
    shot(page, "03-rating-form")
    answer.get_by_role("button", name="提交评价").click()
    status = answer.locator(".rating-status[data-state='saved']")
    status.wait_for()
    assert "可随时修改" in status.inner_text()
    shot(page, "04-rated")

    interaction_id = stored["interactionId"]

    def rating_with(verdict: str):
        record = stack.feedback_get(f"/v1/interactions/{interaction_id}").json()
        ratings = record.get("ratings") or []
        return ratings if ratings and ratings[0]["verdict"] == verdict else None

    (rating,) = wait_for_store(lambda: rating_with("unacceptable"))
    assert sorted(rating["reasons"]) == ["factual_error", "incomplete"]
    assert rating["comment"] == "遗漏了肺栓塞"
    assert rating["corrected_answer"] == CORRECTION

    rows, export = stack.dpo_export()
    assert rows == [{
        "prompt": [{"role": "user", "content": redact(PROMPT).text}],
        "chosen": [{"role": "assistant", "content": CORRECTION}],
        "rejected": [{"role": "assistant", "content": redact(stored["content"]).text}],
    }]
    assert "13912345678" not in export and "李四" not in export

    # The clinician changes their mind: one rating, updated, not a second one.
    answer.get_by_role("button", name="可接受", exact=True).click()
    wait_for_store(lambda: rating_with("acceptable"))
    assert answer.get_by_role("button", name="可接受", exact=True).get_attribute(
        "aria-pressed") == "true"
    expect(answer.locator(".rating-details")).to_be_hidden()
    assert stack.dpo_export(timeout_s=0)[0] == []
    shot(page, "05-rating-changed")

    # Esc stops an answer in flight; it stays, marked as stopped. The request is held
    # in the browser until then: medgo-tiny's short answers can otherwise finish
    # before the key press arrives. (The gateway's own tests check that a client
    # leaving mid-stream aborts the generation in vLLM.)
    held = []
    page.route("**/v1/chat/completions", lambda route: held.append(route))
    page.get_by_label("输入问题").fill("请详细介绍高血压的分级和治疗原则。")
    page.keyboard.press("Enter")
    expect(page.locator("#stop")).to_be_visible()
    page.keyboard.press("Escape")
    page.wait_for_selector(".message.assistant[data-status='stopped']")
    page.unroute("**/v1/chat/completions")
    assert len(held) == 1
    expect(page.get_by_role("button", name="发送")).to_be_enabled()
    expect(page.locator("#stop")).to_be_hidden()

    # A new conversation, then back: the first one is redrawn with its answer and rating.
    page.get_by_role("button", name="＋ 新对话").click()
    assert page.locator(".message").count() == 0
    page.locator("#conversations button").last.click()
    first = page.locator(".message.assistant").first
    assert first.locator(".content").inner_text().strip() == text
    assert "可随时修改" in first.locator(".rating-status").inner_text()


def test_markdown_is_rendered_and_markup_escaped(page, stack_factory, tmp_path):
    with stack_factory(tmp_path, "http://127.0.0.1:9", ready_path="/healthz") as stack:
        page.goto(stack.gateway)
        html = page.evaluate("""async () => {
            const {renderMarkdown} = await import('/ui/markdown.js');
            return renderMarkdown(
                '## 诊断\\n- **心绞痛**\\n- 肺栓塞\\n\\n1. 心电图\\n2. `D-二聚体`\\n\\n' +
                '<img src=x onerror=alert(1)> *注意*\\n```\\n<script>x</script>\\n```');
        }""")
    assert html == (
        "<h4>诊断</h4><ul><li><strong>心绞痛</strong></li><li>肺栓塞</li></ul>"
        "<ol><li>心电图</li><li><code>D-二聚体</code></li></ol>"
        "<p>&lt;img src=x onerror=alert(1)&gt; <em>注意</em></p>"
        "<pre><code>&lt;script&gt;x&lt;/script&gt;</code></pre>"
    )


def test_banners_tablet_layout_and_expired_session(page, stack_factory, tmp_path):
    # Nothing listens on port 9: the model is down. One request a minute: the second
    # question hits the key's quota.
    secret = "replicas-share-this"
    with stack_factory(tmp_path, "http://127.0.0.1:9", ready_path="/healthz",
                       session_secret=secret, requests_per_minute="1") as stack:
        page.set_viewport_size({"width": 768, "height": 1024})  # a tablet, portrait
        page.goto(stack.gateway)
        page.get_by_label("API 密钥").fill("mg-not-a-real-key")
        page.get_by_role("button", name="登录").click()
        expect(page.locator("#signin-error")).to_have_text("密钥无效，请核对后重试。")
        sign_in(page, stack.gateway, stack.key)

        # Portrait tablet: the conversation list is a drawer behind a button.
        expect(page.locator("#sidebar")).to_be_hidden()
        page.get_by_role("button", name="对话列表").click()
        expect(page.locator("#sidebar")).to_have_class("sidebar open")
        page.wait_for_timeout(300)  # let the drawer slide in for the screenshot
        assert page.locator("#sidebar").bounding_box()["x"] >= 0
        shot(page, "10-tablet-drawer")
        page.get_by_role("button", name="＋ 新对话").click()

        banner = page.locator("#banner")
        page.get_by_label("输入问题").fill("头痛怎么办？")
        page.keyboard.press("Enter")
        expect(banner).to_have_attribute("data-kind", "unavailable")
        assert "模型暂时不可用" in banner.inner_text()
        shot(page, "11-banner-unavailable")

        page.get_by_label("输入问题").fill("头痛怎么办？")
        page.keyboard.press("Enter")
        expect(banner).to_have_attribute("data-kind", "rate-limited")
        assert "请求过于频繁" in banner.inner_text() and "秒后重试" in banner.inner_text()
        shot(page, "12-banner-rate-limited")

        # The server ends a session the page still believes in (another replica issued
        # it two minutes ago with a one-minute lifetime, and this tab's clock is behind):
        # back to sign-in, with a banner.
        from medgo_gateway.policy.session import SessionSigner

        old = SessionSigner(secret.encode(), ttl_s=60).issue(
            json.loads(stack.keys_file.read_text())["keys"][0]["id"], now=time.time() - 120)
        page.evaluate("""token => {
            const s = JSON.parse(sessionStorage.getItem('medgo.session'));
            sessionStorage.setItem('medgo.session', JSON.stringify({...s, token}));
        }""", old.token)
        page.reload()  # the page's first call after loading learns the session is over
        page.locator("#signin").wait_for(state="visible")
        assert banner.get_attribute("data-kind") == "expired"
        assert banner.inner_text().startswith("会话已过期")
        # Nothing of the ended session stays in the tab.
        assert page.evaluate("sessionStorage.length") == 0
        shot(page, "13-banner-expired")

        # Signing out ends the session on the gateway, not only in the tab: a copy of
        # the token taken before is refused from then on (issue 18).
        page.set_viewport_size({"width": 1024, "height": 768})  # the sidebar is shown
        sign_in(page, stack.gateway, stack.key)
        token = page.evaluate("JSON.parse(sessionStorage.getItem('medgo.session')).token")
        reasons = stack.gateway + "/v1/feedback/reasons"
        copy = {"Authorization": f"Bearer {token}"}
        assert httpx.get(reasons, headers=copy, timeout=30).status_code == 200
        with page.expect_response(lambda r: r.url.endswith("/v1/sessions")
                                  and r.request.method == "DELETE") as signed_out:
            page.get_by_role("button", name="退出登录").click()
        assert signed_out.value.status == 204
        page.locator("#signin").wait_for(state="visible")
        assert page.evaluate("sessionStorage.length") == 0
        refused = httpx.get(reasons, headers=copy, timeout=30)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "session_revoked")
        shot(page, "14-signed-out")
