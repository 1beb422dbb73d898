// The clinician chat page: sign in, ask, read the streamed answer, rate it.
//
// It uses the gateway's public API only (/v1/sessions, /v1/chat/completions,
// /v1/feedback), exactly as any API client would. Conversations live in this tab's
// sessionStorage: they may hold patient details, so nothing outlives the tab or a
// sign-out, and nothing is kept on the ward terminal's disk beyond the browser session.
// Signing out also ends the session on the gateway (DELETE /v1/sessions), so a copy of
// the token is refused by every replica from then on.

import { renderMarkdown } from "./markdown.js";

const SESSION_KEY = "medgo.session";
const CONVERSATIONS_KEY = "medgo.conversations";

const $ = (id) => document.getElementById(id);

const state = {
  session: null, // {token, expires_at, role, department}
  conversations: [], // [{id, title, messages: [{role, content, status, interactionId, checkpoint, rating}]}]
  currentId: null,
  controller: null, // AbortController of the answer being streamed
  reasons: [], // [{value, label}] from /v1/feedback/reasons
  expiryTimer: null,
};

class SessionEnded extends Error {}

// ---------------------------------------------------------------- helpers

function randomId() {
  // crypto.randomUUID needs a secure context; a hospital intranet may serve plain http.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function save() {
  const withoutElements = (key, value) => (key === "element" ? undefined : value);
  sessionStorage.setItem(CONVERSATIONS_KEY, JSON.stringify(state.conversations, withoutElements));
}

function current() {
  return state.conversations.find((c) => c.id === state.currentId) || null;
}

function showBanner(text, kind) {
  $("banner-text").textContent = text;
  $("banner").dataset.kind = kind;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

async function errorOf(response) {
  try {
    return (await response.json()).error || {};
  } catch {
    return {};
  }
}

// Turns an HTTP failure into the banner a clinician understands.
async function reportFailure(response) {
  const error = await errorOf(response);
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    showBanner(`请求过于频繁，已达到使用配额${wait ? `，请在 ${wait} 秒后重试` : "，请稍后重试"}。`, "rate-limited");
  } else if (error.code === "session_store_unavailable") {
    // The gateway cannot check sessions (its shared store is down): keep this one.
    showBanner("登录服务暂时不可用，请稍后重试。", "unavailable");
  } else if (response.status === 503 || response.status === 502) {
    showBanner("模型暂时不可用（服务繁忙或正在更新），请稍后重试。", "unavailable");
  } else if (response.status === 504) {
    showBanner("模型响应超时，请稍后重试或缩短问题。", "unavailable");
  } else if (response.status === 403) {
    showBanner("当前账号无权执行此操作。", "forbidden");
  } else {
    showBanner(`请求未被接受：${error.message || response.statusText}`, "invalid");
  }
  return error;
}

// Every call after sign-in goes through here: it adds the session and ends it on 401.
async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const response = await fetch(path, {
    method,
    signal,
    headers: {
      Authorization: `Bearer ${state.session.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    const error = await errorOf(response);
    endSession(error.code === "session_expired" ? "会话已过期，请重新登录。" : "会话已失效，请重新登录。");
    throw new SessionEnded(error.message);
  }
  return response;
}

// ---------------------------------------------------------------- session

async function signIn(event) {
  event.preventDefault();
  const key = $("signin-key").value.trim();
  $("signin-error").textContent = "";
  let response;
  try {
    response = await fetch("/v1/sessions", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
    });
  } catch {
    $("signin-error").textContent = "无法连接到 MedGo 网关，请检查网络。";
    return;
  }
  if (!response.ok) {
    const error = await errorOf(response);
    $("signin-error").textContent =
      response.status === 401 ? "密钥无效，请核对后重试。"
      : response.status === 503 ? "登录服务暂时不可用，请稍后重试。"
      : `登录失败：${error.message || response.status}`;
    return;
  }
  $("signin-key").value = "";
  startSession(await response.json());
}

function startSession(session) {
  state.session = session;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  hideBanner();
  clearTimeout(state.expiryTimer);
  const left = Date.parse(session.expires_at) - Date.now();
  state.expiryTimer = setTimeout(() => endSession("会话已过期，请重新登录。"), Math.max(left, 0));
  showApp();
}

async function signOut() {
  const token = state.session?.token;
  endSession(null); // the tab forgets everything first, whatever the network does
  if (!token) return;
  try {
    await fetch("/v1/sessions", { method: "DELETE", keepalive: true, headers: { Authorization: `Bearer ${token}` } });
  } catch {
    // Unreachable gateway: the token is gone from the tab and expires on its own.
  }
}

function endSession(message) {
  state.controller?.abort();
  clearTimeout(state.expiryTimer);
  state.session = null;
  state.conversations = [];
  state.currentId = null;
  sessionStorage.clear();
  if (message) showBanner(message, "expired");
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-key").focus();
}

async function showApp() {
  $("signin").hidden = true;
  $("app").hidden = false;
  const { role, department } = state.session;
  $("who").textContent = `${role === "clinician" ? "临床医生" : role}${department ? ` · ${department}` : ""}`;
  if (state.conversations.length) renderAll();
  else newConversation(); // draws the page too
  $("prompt").focus();
  try {
    const response = await api("/v1/feedback/reasons");
    if (response.ok) state.reasons = await response.json();
  } catch {
    // Without the list a rating still works: verdict, comment and correction.
  }
}

// ---------------------------------------------------------------- conversations

function newConversation() {
  const conversation = { id: randomId(), title: "新对话", messages: [] };
  state.conversations.unshift(conversation);
  state.currentId = conversation.id;
  save();
  renderAll();
  return conversation;
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren(
    ...state.conversations.map((conversation) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = conversation.title;
      if (conversation.id === state.currentId) button.setAttribute("aria-current", "true");
      button.addEventListener("click", () => {
        if (state.controller) return; // finish or stop the answer first
        state.currentId = conversation.id;
        renderAll();
        toggleSidebar(false);
      });
      item.append(button);
      return item;
    }),
  );
}

function renderAll() {
  renderConversations();
  const conversation = current();
  $("chat-title").textContent = conversation ? conversation.title : "新对话";
  const answers = conversation ? conversation.messages.filter((m) => m.checkpoint) : [];
  $("checkpoint").textContent = answers.length ? `模型版本：${answers.at(-1).checkpoint}` : "";
  $("messages").replaceChildren(...(conversation ? conversation.messages.map(messageElement) : []));
}

// ---------------------------------------------------------------- messages

function messageElement(message) {
  const item = document.createElement("li");
  item.className = `message ${message.role}`;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "role";
  who.textContent = message.role === "user" ? "我" : "MedGo";
  meta.append(who);
  const content = document.createElement("div");
  content.className = "content";
  item.append(meta, content);
  message.element = item;
  if (message.role === "user") {
    content.textContent = message.content;
  } else {
    const checkpoint = document.createElement("span");
    checkpoint.className = "message-checkpoint";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "link copy";
    copy.textContent = "复制";
    copy.addEventListener("click", () => copyAnswer(message, copy));
    meta.append(checkpoint, copy);
    updateAnswer(message);
  }
  return item;
}

// Redraws one answer in place (the rest of the page, and any rating being typed, stay).
function updateAnswer(message) {
  const item = message.element;
  if (!item) return;
  item.dataset.status = message.status;
  item.querySelector(".content").innerHTML =
    renderMarkdown(message.content) || (message.status === "streaming" ? '<p class="muted">正在生成…</p>' : "");
  item.querySelector(".message-checkpoint").textContent = message.checkpoint || "";
  item.querySelector(".copy").hidden = !message.content;
  const notes = { stopped: "（已停止）", error: "（回答中断）" };
  if (notes[message.status]) item.querySelector(".content").insertAdjacentHTML("beforeend", `<p class="muted">${notes[message.status]}</p>`);
  if (message.status !== "streaming" && message.interactionId && !item.querySelector(".rating")) {
    if (state.session.role === "clinician") item.append(ratingElement(message));
  }
}

async function copyAnswer(message, button) {
  try {
    await navigator.clipboard.writeText(message.content);
  } catch {
    // Plain-http intranets have no clipboard API: copy through a selection instead.
    const area = document.createElement("textarea");
    area.value = message.content;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "已复制";
  setTimeout(() => (button.textContent = "复制"), 1500);
}

function setStreaming(on) {
  $("stop").hidden = !on;
  $("send").disabled = on;
  $("new-chat").disabled = on;
}

// Reads vLLM's server-sent events as they arrive (the gateway relays them unchanged).
async function readStream(response, onText) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || "stream error");
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) onText(choice.delta.content);
        }
      }
    }
  }
}

async function ask(text) {
  const conversation = current() || newConversation();
  if (conversation.title === "新对话") conversation.title = text.slice(0, 24);
  const history = conversation.messages
    .filter((m) => m.content && m.status !== "error")
    .map(({ role, content }) => ({ role, content }));
  conversation.messages.push({ role: "user", content: text });
  const answer = { role: "assistant", content: "", status: "streaming" };
  conversation.messages.push(answer);
  renderAll();
  answer.element.scrollIntoView({ block: "end" });
  const controller = new AbortController();
  state.controller = controller;
  setStreaming(true);
  let frame = 0;
  try {
    const response = await api("/v1/chat/completions", {
      method: "POST",
      body: { model: "medgo", stream: true, messages: [...history, { role: "user", content: text }] },
      headers: { "x-medgo-conversation-id": conversation.id },
      signal: controller.signal,
    });
    if (!response.ok) {
      answer.status = "error";
      answer.content = "";
      await reportFailure(response);
      return;
    }
    hideBanner();
    answer.interactionId = response.headers.get("x-medgo-interaction-id");
    answer.checkpoint = response.headers.get("x-medgo-checkpoint");
    $("checkpoint").textContent = answer.checkpoint ? `模型版本：${answer.checkpoint}` : "";
    await readStream(response, (text) => {
      answer.content += text;
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        updateAnswer(answer);
      });
    });
    answer.status = "done";
  } catch (error) {
    if (error instanceof SessionEnded) return;
    if (error.name === "AbortError") {
      answer.status = "stopped";
    } else {
      answer.status = "error";
      showBanner("连接中断：无法从 MedGo 获取回答，请检查网络后重试。", "unavailable");
    }
  } finally {
    cancelAnimationFrame(frame);
    if (state.controller === controller) state.controller = null;
    setStreaming(false);
    updateAnswer(answer);
    if (state.session) save();
    $("prompt").focus();
  }
}

// ---------------------------------------------------------------- ratings

function ratingElement(answer) {
  const form = $("rating-template").content.firstElementChild.cloneNode(true);
  const details = form.querySelector(".rating-details");
  const status = form.querySelector(".rating-status");
  const fieldset = form.querySelector(".reasons");
  for (const { value, label } of state.reasons) {
    const option = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = value;
    option.append(box, label);
    fieldset.append(option);
  }
  const rating = answer.rating || {};
  for (const box of fieldset.querySelectorAll("input")) box.checked = (rating.reasons || []).includes(box.value);
  form.querySelector(".comment").value = rating.comment || "";
  form.querySelector(".corrected").value = rating.corrected_answer || "";

  const select = (verdict) => {
    for (const button of form.querySelectorAll(".verdict")) {
      button.setAttribute("aria-pressed", String(button.dataset.verdict === verdict));
    }
    form.dataset.verdict = verdict;
    details.hidden = verdict !== "unacceptable";
  };
  if (rating.verdict) {
    select(rating.verdict);
    status.textContent = rating.saved || "";
  }

  const submit = async () => {
    const verdict = form.dataset.verdict;
    const unacceptable = verdict === "unacceptable";
    const body = {
      interaction_id: answer.interactionId,
      verdict,
      reasons: unacceptable ? [...fieldset.querySelectorAll("input:checked")].map((b) => b.value) : [],
      comment: unacceptable ? form.querySelector(".comment").value.trim() || null : null,
      corrected_answer: unacceptable ? form.querySelector(".corrected").value.trim() || null : null,
    };
    status.textContent = "正在保存…";
    status.dataset.state = "saving";
    let response;
    try {
      response = await api("/v1/feedback", {
        method: "POST",
        body,
        headers: { "Idempotency-Key": randomId() },
      });
    } catch (error) {
      if (!(error instanceof SessionEnded)) {
        status.textContent = "保存失败：网络错误，请重试。";
        status.dataset.state = "error";
      }
      return;
    }
    if (response.ok) {
      // 202: the gateway holds the rating durably and delivers it once the store is back.
      const saved = response.status === 202 ? "评价已提交（排队保存中），可随时修改" : "评价已保存，可随时修改";
      answer.rating = { ...body, saved };
      status.textContent = saved;
      status.dataset.state = "saved";
      save();
    } else {
      const error = await reportFailure(response);
      status.textContent = `保存失败：${error.message || response.status}`;
      status.dataset.state = "error";
    }
  };

  for (const button of form.querySelectorAll(".verdict")) {
    button.addEventListener("click", () => {
      select(button.dataset.verdict);
      // "Acceptable" needs nothing more; "unacceptable" waits for reasons and a correction.
      if (button.dataset.verdict === "acceptable") submit();
      else form.querySelector(".reasons input, .comment")?.focus();
    });
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  return form;
}

// ---------------------------------------------------------------- layout and keys

function toggleSidebar(open) {
  $("sidebar").classList.toggle("open", open);
  $("toggle-sidebar").setAttribute("aria-expanded", String(open));
}

function init() {
  $("signin-form").addEventListener("submit", signIn);
  $("banner-close").addEventListener("click", hideBanner);
  $("signout").addEventListener("click", signOut);
  $("new-chat").addEventListener("click", () => {
    newConversation();
    toggleSidebar(false);
    $("prompt").focus();
  });
  $("toggle-sidebar").addEventListener("click", () => toggleSidebar(!$("sidebar").classList.contains("open")));
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || state.controller) return;
    $("prompt").value = "";
    ask(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.controller) state.controller.abort();
  });
  window.addEventListener("offline", () => showBanner("网络已断开，恢复后可继续使用。", "offline"));
  window.addEventListener("online", hideBanner);

  const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  if (stored && Date.parse(stored.expires_at) > Date.now()) {
    state.conversations = JSON.parse(sessionStorage.getItem(CONVERSATIONS_KEY) || "[]");
    for (const conversation of state.conversations) {
      for (const message of conversation.messages) {
        if (message.status === "streaming") message.status = "stopped"; // the tab was reloaded mid-answer
      }
    }
    state.currentId = state.conversations[0]?.id || null;
    startSession(stored);
  } else {
    endSession(stored ? "会话已过期，请重新登录。" : null);
  }
}

init();
