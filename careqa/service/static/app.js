// CareQA agent page: plain DOM, no framework, no inline script (the page's CSP forbids it).
// Text from the API is always inserted with textContent, never as HTML.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "careqa.token";
  let current = null; // the answer on screen
  let rating = null;

  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(path, body) {
    const res = await fetch(path, {
      method: body === undefined ? "GET" : "POST",
      headers: Object.assign({ "Authorization": "Bearer " + token() },
                             body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { /* non-JSON error page */ }
    if (!res.ok) {
      const message = (data && data.error && data.error.message) || ("request failed (" + res.status + ")");
      const err = new Error(message);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function showError(message) { $("error").textContent = message; $("error").hidden = !message; }

  async function signIn() {
    try {
      const me = await api("/v1/whoami");
      $("who").textContent = me.subject + " · " + me.tenant_name;
      $("signin").hidden = true;
      $("asker").hidden = false;
      showError("");
      $("question").focus();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("signin").hidden = false;
      $("asker").hidden = true;
      showError(err.status === 401 ? "That token was not accepted." : err.message);
    }
  }

  function resetFeedback() {
    rating = null;
    $("thumbs-up").setAttribute("aria-pressed", "false");
    $("thumbs-down").setAttribute("aria-pressed", "false");
    $("comment").value = "";
    $("send-feedback").disabled = true;
    $("feedback-status").textContent = "";
  }

  function appendSentence(s) {
    const answer = $("answer");
    if (answer.childNodes.length) answer.append(" ");
    answer.append(s.text + " ");
    s.citations.forEach((n) => {
      const link = document.createElement("a");
      link.href = "#source-" + n;
      link.className = "cite";
      link.textContent = "[" + n + "]";
      answer.append(link);
    });
  }

  function renderSources(sources, notFound) {
    $("sources-title").textContent = notFound ? "Closest documents" : "Sources";
    const list = $("sources");
    list.replaceChildren();
    sources.forEach((s) => {
      const li = document.createElement("li");
      li.id = "source-" + s.n;
      li.value = s.n;
      const link = document.createElement("a");
      link.href = s.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = s.title;
      const score = document.createElement("span");
      score.className = "hint";
      score.textContent = (s.cited ? "" : " · related") + " · match " + s.score.toFixed(2);
      const snippet = document.createElement("span");
      snippet.className = "snippet";
      snippet.textContent = s.snippet;
      li.append(link, score, snippet);
      list.append(li);
    });
  }

  // A streamed answer starts here: its sources, then each sentence as it arrives (renderAnswer finishes it).
  function startAnswer(sources) {
    current = null;
    resetFeedback();
    $("feedback-form").hidden = true;
    $("mode").textContent = "Answering…";
    $("mode").className = "badge";
    $("timing").textContent = "";
    $("answer").replaceChildren();
    $("note").hidden = true;
    renderSources(sources, false);
    $("result").hidden = false;
  }

  function renderAnswer(a) {
    current = a;
    resetFeedback();
    $("feedback-form").hidden = false;
    const labels = { generated: "Answer", curated: "Curated answer", extractive: "Quoted from the knowledge base",
                     not_found: "Not found" };
    $("mode").textContent = labels[a.mode] || a.mode;
    $("mode").className = "badge " + a.mode;
    const t = a.timings;
    $("timing").textContent = Math.round(t.total_ms) + " ms";

    const answer = $("answer");
    answer.replaceChildren();
    if (a.status === "not_found") {
      answer.textContent = a.text;
    } else {
      a.sentences.forEach(appendSentence);
    }
    $("note").textContent = a.note || "";
    $("note").hidden = !a.note;
    renderSources(a.sources, a.status === "not_found");
    $("result").hidden = false;
  }

  // Server-sent events from POST /v1/ask/stream, read from the response body (EventSource cannot POST).
  // Resolves with the final answer; rejects with err.status set for HTTP errors, or err.noStream when the
  // browser cannot read a streamed body (the caller then asks /v1/ask instead).
  async function askStreaming(question) {
    const res = await fetch("/v1/ask/stream", {
      method: "POST",
      headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json",
                 "Accept": "text/event-stream" },
      body: JSON.stringify({ question }),
    });
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch (_) { /* non-JSON error page */ }
      const err = new Error((data && data.error && data.error.message) || ("request failed (" + res.status + ")"));
      err.status = res.status;
      throw err;
    }
    if (!res.body || typeof res.body.getReader !== "function" || typeof TextDecoder === "undefined") {
      const err = new Error("streaming unsupported");
      err.noStream = true;
      throw err;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let final = null;
    const handle = (frame) => {
      let type = "message";
      const data = [];
      frame.split(/\r?\n/).forEach((line) => {
        if (line.startsWith("event:")) type = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      });
      if (!data.length) return; // a keep-alive comment
      const payload = JSON.parse(data.join("\n"));
      if (type === "sources") startAnswer(payload.sources);
      else if (type === "sentence") appendSentence(payload.sentence);
      else if (type === "done") { final = payload.answer; renderAnswer(final); }
      else if (type === "error") throw new Error(payload.error.message);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let match;
      while ((match = /\r?\n\r?\n/.exec(buffer)) !== null) {
        const frame = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        handle(frame);
      }
    }
    if (!final) throw new Error("the answer stream ended early; please ask again");
    return final;
  }

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    signIn();
  });

  $("question").addEventListener("input", () => {
    $("count").textContent = $("question").value.length + " / 1000";
  });

  $("ask-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    showError("");
    $("ask").disabled = true;
    $("busy").hidden = false;
    try {
      try {
        await askStreaming(question);
      } catch (err) {
        if (!err.noStream) throw err;
        renderAnswer(await api("/v1/ask", { question })); // no streaming in this browser: the whole answer
      }
    } catch (err) {
      showError(err.message);
      if (err.status === 401) signIn();
    } finally {
      $("ask").disabled = false;
      $("busy").hidden = true;
    }
  });

  function choose(value) {
    rating = value;
    $("thumbs-up").setAttribute("aria-pressed", String(value === "up"));
    $("thumbs-down").setAttribute("aria-pressed", String(value === "down"));
    $("send-feedback").disabled = false;
  }
  $("thumbs-up").addEventListener("click", () => choose("up"));
  $("thumbs-down").addEventListener("click", () => choose("down"));

  $("feedback-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!current || !rating) return;
    $("send-feedback").disabled = true;
    try {
      await api("/v1/feedback", { answer_id: current.answer_id, rating, comment: $("comment").value });
      $("feedback-status").textContent = "Thanks — feedback saved.";
    } catch (err) {
      $("feedback-status").textContent = "Not saved: " + err.message;
      $("send-feedback").disabled = false;
    }
  });

  if (token()) signIn();
})();
