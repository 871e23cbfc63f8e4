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

  function renderAnswer(a) {
    current = a;
    rating = null;
    $("thumbs-up").setAttribute("aria-pressed", "false");
    $("thumbs-down").setAttribute("aria-pressed", "false");
    $("comment").value = "";
    $("send-feedback").disabled = true;
    $("feedback-status").textContent = "";

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
      a.sentences.forEach((s, i) => {
        if (i > 0) answer.append(" ");
        answer.append(s.text + " ");
        s.citations.forEach((n) => {
          const link = document.createElement("a");
          link.href = "#source-" + n;
          link.className = "cite";
          link.textContent = "[" + n + "]";
          answer.append(link);
        });
      });
    }
    $("note").textContent = a.note || "";
    $("note").hidden = !a.note;
    $("sources-title").textContent = a.status === "not_found" ? "Closest documents" : "Sources";
    const list = $("sources");
    list.replaceChildren();
    a.sources.forEach((s) => {
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
    $("result").hidden = false;
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
      renderAnswer(await api("/v1/ask", { question }));
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
