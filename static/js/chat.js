// The chat page: follows each reply that is still being written and grows it in place.
// A reply's element carries data-stream-url (GET /api/chat/<id>/stream, the contract's event stream).
// EventSource re-attaches on its own after a dropped connection, sending Last-Event-ID, so the server
// replays exactly what was missed. On the final event the server-rendered reply replaces the live text.
(function () {
  "use strict";

  var followed = new WeakSet();

  function replaceWithFinished(article) {
    var url = article.getAttribute("data-fragment-url");
    if (!url) return;
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html || !window.htmx) return;
        // htmx.swap applies the out-of-band counter in the fragment and wires any hx-* inside.
        window.htmx.swap(article, html, { swapStyle: "outerHTML" });
      });
  }

  // An open file card grows by plain text (never parsed as HTML) and shows its new line count; its code
  // box follows the bottom unless the person scrolled up inside it.
  function growCard(tail, data) {
    var code = tail.querySelector("[data-live-code]");
    var lines = tail.querySelector("[data-live-lines]");
    if (code && data.code) {
      var box = code.parentElement;
      var atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
      code.appendChild(document.createTextNode(data.code));
      if (atEnd) box.scrollTop = box.scrollHeight;
    }
    if (lines && data.lines) lines.textContent = data.lines;
  }

  function follow(article) {
    if (followed.has(article)) return;
    followed.add(article);
    // The page's rendered stream (sanitised HTML: finished blocks once, the open one again), else the raw one.
    var url = article.getAttribute("data-render-url") || article.getAttribute("data-stream-url");
    var live = article.querySelector("[data-live-text]");
    var status = article.querySelector("[data-live-status]");
    var source = new EventSource(url);
    var ended = false;

    source.addEventListener("start", function () {
      // A fresh attachment replays the reply from its first event: start from empty text.
      if (live) live.textContent = "";
      done = null;
      tail = null;
    });
    var done = null;
    var tail = null;
    source.addEventListener("html", function (event) {
      var data = JSON.parse(event.data);
      if (!live) return;
      if (!done) {
        live.textContent = "";
        live.classList.remove("chat-text");
        live.classList.add("reply-rendered");
        done = document.createElement("div");
        tail = document.createElement("div");
        live.appendChild(done);
        live.appendChild(tail);
      }
      if (data.append) done.insertAdjacentHTML("beforeend", data.append);  // sanitised by the server
      if (data.tail !== null && data.tail !== undefined) {
        tail.innerHTML = data.tail;
      } else {
        growCard(tail, data);
      }
      if (status) status.textContent = "Writing…";
      article.setAttribute("data-streaming", "true");
    });
    source.addEventListener("delta", function (event) {
      var data = JSON.parse(event.data);
      if (live) live.appendChild(document.createTextNode(data.text));
      if (status) status.textContent = "Writing…";
      article.setAttribute("data-streaming", "true");
    });
    function finish(event) {
      ended = true;
      source.close();
      var data = {};
      try { data = JSON.parse(event.data); } catch (ignored) { data = {}; }
      window.Sorya.setCreditBalance(data.balance);
      replaceWithFinished(article);
    }
    source.addEventListener("done", finish);
    source.addEventListener("error", function (event) {
      if (event.data) { finish(event); return; }  // the reply's own error event
      // A network error: EventSource retries by itself; say so while it does.
      if (!ended && status) status.textContent = "Reconnecting…";
    });
  }

  function followAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-stream-url]")) follow(scope);
    scope.querySelectorAll("[data-stream-url]").forEach(follow);
  }

  document.addEventListener("DOMContentLoaded", function () {
    followAll(document);
    var messages = document.getElementById("messages");
    if (messages && !window.location.hash && !new URLSearchParams(window.location.search).get("q")) {
      var last = messages.lastElementChild;
      if (last) last.scrollIntoView({ block: "end" });
    }
  });
  document.addEventListener("htmx:load", function (event) { followAll(event.detail.elt); });

  // After a message is sent: empty the box, and bring the new reply into view.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "composer" || !event.detail.successful) return;
    var box = form.querySelector("textarea");
    if (box) { box.value = ""; box.focus(); }
    var messages = document.getElementById("messages");
    if (messages && messages.lastElementChild) messages.lastElementChild.scrollIntoView({ block: "end", behavior: "smooth" });
  });

  // Ctrl+Enter (Cmd+Enter on a Mac) sends.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    var box = event.target;
    if (!box || box.id !== "message") return;
    event.preventDefault();
    if (box.form.requestSubmit) box.form.requestSubmit(); else box.form.submit();
  });
})();
