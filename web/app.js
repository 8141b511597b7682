// ragbot's web page: plain JavaScript over the HTTP API (no build step).
// config.json (optional, next to the page): {"apiUrl", "streamUrl", "devSignIn",
// "cognito": {"domain", "clientId"}}. Without it the API is this page's origin.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: {}, token: null, claims: null, conversation: null };

function api(path) {
  return (state.config.apiUrl || "").replace(/\/$/, "") + path;
}
function streamApi(path) {
  return (state.config.streamUrl || state.config.apiUrl || "").replace(/\/$/, "") + path;
}

async function call(path, options = {}) {
  const headers = Object.assign({ authorization: "Bearer " + state.token }, options.headers || {});
  const r = await fetch(api(path), Object.assign({}, options, { headers }));
  if (r.status === 401) { signOut("Your session ended; sign in again."); throw new Error("signed out"); }
  if (r.status === 204) return null;
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || "request failed (" + r.status + ")");
  return body;
}

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - part.length % 4) % 4)));
  } catch (_) { return null; }
}
function roles() {
  const c = state.claims || {};
  return [].concat(c.roles || c["cognito:groups"] || []);
}

// ---------------------------------------------------------------- sign-in
function signIn(token) {
  const claims = claimsOf(token);
  if (!claims) { $("sign-in-error").textContent = "That is not a token."; return; }
  state.token = token;
  state.claims = claims;
  sessionStorage.setItem("ragbot.token", token);
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = (claims.sub || "?") + " · " + (claims.tenant || claims["custom:tenant"] || "no tenant") + " · " + roles().join(", ");
  $("admin").hidden = !roles().includes("admin");
  loadConversations();
  if (!$("admin").hidden) loadDocuments();
  $("question").focus();
}

function signOut(message) {
  sessionStorage.removeItem("ragbot.token");
  state.token = null;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
}

$("dev-sign-in").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target;
  const chosen = [...f.querySelectorAll("input[name=roles]:checked")].map((i) => i.value);
  const r = await fetch(api("/dev/token"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub: f.sub.value, tenant: f.tenant.value, roles: chosen }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { $("sign-in-error").textContent = (body.error && body.error.message) || "sign-in failed"; return; }
  signIn(body.token);
});
$("token-sign-in").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
$("sign-out").addEventListener("click", () => signOut());

// ---------------------------------------------------------------- conversations
async function loadConversations() {
  try {
    const page = await call("/conversations?limit=50");
    const list = $("conversations");
    list.replaceChildren();
    for (const c of page.conversations || []) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = c.title || "Untitled conversation";
      b.dataset.id = c.id;
      if (c.id === state.conversation) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => openConversation(c.id));
      li.append(b);
      list.append(li);
    }
  } catch (e) { $("chat-error").textContent = e.message; }
}

async function openConversation(id) {
  state.conversation = id;
  $("messages").replaceChildren();
  $("suggestions").hidden = true;
  try {
    const c = await call("/conversations/" + id);
    for (const m of c.messages || []) {
      if (m.role === "user") addUser(m.content, m.status === "failed");
      else renderAnswer(addAssistant(), { answer: m.content, citations: m.citations || [], message_id: m.id, feedback: m.feedback });
    }
    loadConversations();
  } catch (e) { $("chat-error").textContent = e.message; }
}

$("new-conversation").addEventListener("click", () => {
  state.conversation = null;
  $("messages").replaceChildren();
  $("suggestions").hidden = true;
  loadConversations();
  $("question").focus();
});

// ---------------------------------------------------------------- messages
function addUser(text, failed) {
  const li = document.createElement("li");
  li.className = "msg user" + (failed ? " failed" : "");
  li.textContent = text;
  $("messages").append(li);
  return li;
}
function addAssistant() {
  const li = document.createElement("li");
  li.className = "msg assistant";
  li.setAttribute("aria-busy", "true");
  $("messages").append(li);
  return li;
}

// The answer with its [n] markers as buttons that show the cited passage. `passages` (what
// retrieval found, from the stream's `citations` event) are listed when the answer cites none.
function renderAnswer(li, a, passages) {
  li.replaceChildren();
  li.removeAttribute("aria-busy");
  li.dataset.messageId = a.message_id || "";
  const byIndex = new Map((a.citations || []).map((c) => [c.index, c]));
  const text = document.createElement("div");
  text.className = "answer";
  const parts = (a.answer || "").split(/(\[\d+\])/);
  const sources = document.createElement("div");
  for (const part of parts) {
    const m = /^\[(\d+)\]$/.exec(part);
    const c = m && byIndex.get(Number(m[1]));
    if (!c) { text.append(part); continue; }
    const b = document.createElement("button");
    b.type = "button";
    b.className = "cite";
    b.textContent = m[1];
    b.setAttribute("aria-label", "Source " + m[1] + ": " + c.title);
    b.setAttribute("aria-expanded", "false");
    b.addEventListener("click", () => toggleSource(b, c, sources));
    text.append(b);
  }
  li.append(text, sources);
  const listed = (a.citations || []).length ? a.citations : (a.grounded ? passages || [] : []);
  if (listed.length && !parts.some((p) => /^\[\d+\]$/.test(p) && byIndex.has(Number(p.slice(1, -1))))) {
    // No marker in the text (a stored answer quoted verbatim, or a model that did not cite):
    // its sources as buttons after it.
    const label = document.createElement("span");
    label.className = "meta";
    label.textContent = (a.citations || []).length ? " Sources:" : " Passages searched:";
    text.append(label);
    for (const c of listed) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "cite";
      b.textContent = c.index;
      b.setAttribute("aria-label", "Source " + c.index + ": " + c.title);
      b.setAttribute("aria-expanded", "false");
      b.addEventListener("click", () => toggleSource(b, c, sources));
      text.append(" ", b);
    }
  }
  if (a.message_id) li.append(feedback(a));
  if (a.provider) {
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = a.provider + " · " + a.model + (a.cached ? " · cached" : "") + " · " + a.latency_ms + " ms";
    li.append(meta);
  }
}

function toggleSource(button, c, box) {
  const open = button.getAttribute("aria-expanded") === "true";
  for (const b of box.parentElement.querySelectorAll(".cite")) b.setAttribute("aria-expanded", "false");
  box.replaceChildren();
  if (open) return;
  button.setAttribute("aria-expanded", "true");
  const s = document.createElement("blockquote");
  s.className = "source";
  const h = document.createElement("h3");
  h.textContent = "[" + c.index + "] " + c.title;
  const p = document.createElement("p");
  p.textContent = c.snippet;
  s.append(h, p);
  box.append(s);
}

function feedback(a) {
  const div = document.createElement("div");
  div.className = "feedback";
  for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "quiet";
    b.textContent = label;
    b.dataset.rating = rating;
    b.setAttribute("aria-pressed", String(!!(a.feedback && a.feedback.rating === rating)));
    b.addEventListener("click", async () => {
      try {
        await call("/conversations/" + state.conversation + "/messages/" + a.message_id + "/feedback", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ rating }),
        });
        for (const x of div.querySelectorAll("button")) x.setAttribute("aria-pressed", String(x === b));
      } catch (e) { $("chat-error").textContent = e.message; }
    });
    div.append(b);
  }
  return div;
}

function showSuggestions(fallback) {
  const list = $("suggestion-list");
  list.replaceChildren();
  const qs = (fallback && fallback.sample_questions) || [];
  $("suggestions").hidden = qs.length === 0;
  for (const q of qs) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = q;
    b.addEventListener("click", () => ask(q));
    li.append(b);
    list.append(li);
  }
}

// ---------------------------------------------------------------- asking (streamed)
async function ask(question) {
  $("chat-error").textContent = "";
  $("suggestions").hidden = true;
  addUser(question);
  const li = addAssistant();
  const text = document.createElement("div");
  text.className = "answer";
  li.append(text);
  $("send").disabled = true;
  try {
    const r = await fetch(streamApi("/chat/stream"), {
      method: "POST",
      headers: { authorization: "Bearer " + state.token, "content-type": "application/json" },
      body: JSON.stringify(state.conversation ? { message: question, conversation_id: state.conversation } : { message: question }),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || "request failed (" + r.status + ")");
    }
    let passages = [], fresh = false;
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trimStart();
        }
        const d = data ? JSON.parse(data) : {};
        if (name === "citations") {
          passages = d.citations || [];
        } else if (name === "meta") {
          // A new conversation is stored with the answer: list it once `done` says so.
          fresh = state.conversation !== d.conversation_id;
          state.conversation = d.conversation_id;
        } else if (name === "delta") {
          text.append(d.text);
        } else if (name === "done") {
          renderAnswer(li, d, passages);
          if (fresh) loadConversations();
          if (!d.grounded) showSuggestions(d.fallback);
        } else if (name === "error") {
          li.classList.add("failed");
          li.removeAttribute("aria-busy");
          throw new Error(d.error.message);
        }
      }
    }
  } catch (e) {
    $("chat-error").textContent = e.message;
  } finally {
    $("send").disabled = false;
    $("question").focus();
  }
}

$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("question").value.trim();
  if (!q) return;
  $("question").value = "";
  ask(q);
});
$("question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("ask").requestSubmit(); }
});

// ---------------------------------------------------------------- documents (admin)
async function loadDocuments() {
  try {
    const page = await call("/documents?limit=10");
    const list = $("documents");
    list.replaceChildren();
    let busy = false;
    for (const d of page.documents || []) {
      const li = document.createElement("li");
      li.textContent = d.title + " — " + d.status + (d.failure_reason ? ": " + d.failure_reason : "");
      busy = busy || d.status === "processing";
      list.append(li);
    }
    if (busy) setTimeout(loadDocuments, 2000);
  } catch (e) { $("chat-error").textContent = e.message; }
}

$("upload").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  try {
    await call("/documents?name=" + encodeURIComponent(file.name), {
      method: "POST",
      headers: { "content-type": file.type || "application/octet-stream" },
      body: file,
    });
    $("file").value = "";
    loadDocuments();
  } catch (err) { $("chat-error").textContent = err.message; }
});

// ---------------------------------------------------------------- Cognito hosted UI (AWS)
// The authorization code flow with PKCE: no client secret, and the code is useless without the
// verifier this tab keeps.
function redirectUri() { return location.origin + location.pathname; }
function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
async function hostedSignIn(cognito) {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem("ragbot.pkce", verifier);
  location.href = cognito.domain + "/oauth2/authorize?" + new URLSearchParams({
    response_type: "code", client_id: cognito.clientId, redirect_uri: redirectUri(),
    scope: "openid email profile", code_challenge: challenge, code_challenge_method: "S256",
  });
}
async function exchange(cognito, code) {
  const verifier = sessionStorage.getItem("ragbot.pkce");
  sessionStorage.removeItem("ragbot.pkce");
  if (!verifier) throw new Error("This sign-in was started elsewhere; sign in again.");
  const r = await fetch(cognito.domain + "/oauth2/token", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", client_id: cognito.clientId, code,
      redirect_uri: redirectUri(), code_verifier: verifier,
    }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok || !body.id_token) throw new Error("Sign-in failed: " + (body.error || r.status));
  return body.id_token;
}

// ---------------------------------------------------------------- start
(async function start() {
  try {
    const r = await fetch("config.json");
    if (r.ok) state.config = await r.json();
  } catch (_) { /* no config: same origin */ }
  $("dev-sign-in").hidden = !state.config.devSignIn;
  const cognito = state.config.cognito;
  let token = sessionStorage.getItem("ragbot.token");
  if (cognito && cognito.domain && cognito.clientId) {
    $("cognito").hidden = false;
    $("cognito-link").addEventListener("click", (e) => { e.preventDefault(); hostedSignIn(cognito); });
    const code = new URLSearchParams(location.search).get("code");
    if (code) {
      history.replaceState(null, "", location.pathname);
      try { token = await exchange(cognito, code); } catch (e) { $("sign-in-error").textContent = e.message; }
    }
  }
  if (token) signIn(token); else signOut();
})();
