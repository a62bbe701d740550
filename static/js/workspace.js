// The workspace (a project's page): the composer (Enter sends, grows, counts, shows the most a send can
// cost), following the stream, the mobile view switch, and the project pane: live preview with device
// widths, a path bar, a console of the preview's errors, refresh when a new version lands, upload progress.
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function pane() { return document.getElementById("project-pane"); }
  function frame() { return $("[data-preview-frame]"); }
  function composerBox() { return document.getElementById("message"); }

  // -- composer ----------------------------------------------------------------------------------
  function grow(box) {
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight + 2, 224) + "px";
  }

  function countChars(box) {
    var counter = $("[data-char-count]");
    if (!counter) return;
    var max = parseInt(box.getAttribute("maxlength"), 10) || 0;
    var used = box.value.length;
    var near = max && used > max * 0.8;
    counter.textContent = near ? used.toLocaleString() + " / " + max.toLocaleString() : "";
    counter.classList.toggle("near-limit", !!near);
  }

  var estimateTimer = null;
  function estimateSoon() {
    var slot = $(".composer-estimate");
    var box = composerBox();
    if (!slot || !box) return;
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(function () {
      var form = box.form;
      var model = form.querySelector("select[name=model]");
      var params = new URLSearchParams({ project_id: slot.getAttribute("data-project-id"),
        model: model ? model.value : "", message: box.value });
      fetch(slot.getAttribute("data-estimate-url") + "?" + params.toString(),
        { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.text(); })
        .then(function (html) { slot.innerHTML = html; })
        .catch(function () { slot.textContent = ""; });
    }, 350);
  }

  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (!box || box.id !== "message" || !document.getElementById("workspace")) return;
    if (event.key !== "Enter" || event.shiftKey || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.isComposing || event.keyCode === 229) return;  // an IME is composing: Enter picks a word
    event.preventDefault();
    if (!box.value.trim()) return;
    if (box.form.requestSubmit) box.form.requestSubmit(); else box.form.submit();
  });
  document.addEventListener("input", function (event) {
    if (!event.target || event.target.id !== "message") return;
    grow(event.target); countChars(event.target); estimateSoon();
  });
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "model" && event.target.closest("#composer")) estimateSoon();
  });

  function fillComposer(text) {
    var box = composerBox();
    if (!box) return;
    setView("chat");
    box.value = text;
    grow(box); countChars(box); estimateSoon();
    box.focus();
  }

  // -- following the stream ----------------------------------------------------------------------
  var scroller = null;
  var pinned = true;
  function nearBottom() { return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48; }
  function toBottom() { scroller.scrollTop = scroller.scrollHeight; pinned = true; showPill(false); }
  function showPill(on) { var pill = $("[data-latest-pill]"); if (pill) pill.hidden = !on; }

  function watchConversation() {
    scroller = $(".ws-chat .conversation");
    var messages = $("[data-messages]");
    if (!scroller || !messages) return;
    toBottom();
    scroller.addEventListener("scroll", function () { pinned = nearBottom(); if (pinned) showPill(false); });
    new MutationObserver(function () {
      if (pinned) toBottom(); else showPill(true);
    }).observe(messages, { childList: true, subtree: true, characterData: true });
    var pill = $("[data-latest-pill]");
    if (pill) pill.addEventListener("click", toBottom);
  }

  // -- a finished reply: announce it, and show its version when it lands ----------------------------
  function announce(text) {
    var region = $("[data-announce]");
    if (!region) return;
    region.textContent = "";
    setTimeout(function () { region.textContent = text; }, 50);
  }

  function onReplyFinished(article) {
    var chip = article.querySelector("[data-reply-chip][data-snapshot-id]");
    announce(chip ? "Sorya replied: version " + chip.getAttribute("data-version") + " is ready."
      : "Sorya replied.");
    var current = pane();
    if (!chip || !current) return;
    var landed = chip.getAttribute("data-snapshot-id");
    if (landed === current.getAttribute("data-snapshot-id") || current.getAttribute("data-latest") === "false"
        && current.getAttribute("data-snapshot-id")) return;
    refreshPane(current.getAttribute("data-tab") === "publish" ? "publish" : null);
  }

  function currentPath() {
    var input = $("#preview-path");
    return input ? input.value : "";
  }

  function refreshPane(tab) {
    var current = pane();
    if (!current || !window.htmx) return;
    var keepPath = currentPath();
    var wanted = tab || (current.getAttribute("data-tab") === "files" ? "files" : "preview");
    var url = window.location.pathname + "?tab=" + wanted;
    window.htmx.ajax("GET", url, { target: "#project-pane", swap: "outerHTML" }).then(function () {
      if (keepPath) visit(keepPath, true);
    });
  }

  // -- preview -------------------------------------------------------------------------------------
  function visit(path, quiet) {
    var current = pane();
    var iframe = frame();
    if (!current || !iframe) return;
    var url = current.getAttribute("data-preview-url") + "?path=" + encodeURIComponent(path.replace(/^\/+/, ""));
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.url) return;
        if (quiet && data.path !== path.replace(/^\/+/, "")) return;  // the new version has no such page
        clearConsole();
        iframe.src = data.url;
        var input = $("#preview-path");
        if (input) input.value = data.path || "";
      });
  }

  function clearConsole() {
    var list = $("[data-console-list]");
    if (list) list.textContent = "";
    var box = $("[data-console]");
    if (box) box.hidden = true;
  }

  function onPreviewMessage(event) {
    var iframe = frame();
    if (!iframe || event.source !== iframe.contentWindow) return;
    var data = event.data;
    if (!data || typeof data !== "object" || data.source !== "sorya-preview") return;
    var list = $("[data-console-list]");
    var box = $("[data-console]");
    if (!list || !box || list.children.length >= 50) return;
    var where = data.file ? String(data.file).split("/").slice(-1)[0] + (data.line ? ":" + data.line : "") : "";
    var item = document.createElement("li");
    var text = document.createElement("code");
    text.textContent = String(data.message || "Error") + (where ? " (" + where + ")" : "");
    var ask = document.createElement("button");
    ask.type = "button";
    ask.className = "secondary outline";
    ask.textContent = "Ask Sorya to fix this";
    ask.addEventListener("click", function () {
      fillComposer("The preview shows this error" + (where ? " in " + where : "") + ": " + String(data.message || "") +
        "\nPlease fix it.");
    });
    item.appendChild(text);
    item.appendChild(ask);
    list.appendChild(item);
    box.hidden = false;
    var count = $("[data-console-count]");
    if (count) count.textContent = String(list.children.length);
  }

  document.addEventListener("click", function (event) {
    var device = event.target.closest && event.target.closest(".ws-device");
    if (device) {
      document.querySelectorAll(".ws-device").forEach(function (b) { b.setAttribute("aria-pressed", String(b === device)); });
      var iframe = frame();
      var width = device.getAttribute("data-width");
      if (iframe) iframe.style.width = width ? width + "px" : "100%";
      return;
    }
    var open = event.target.closest && event.target.closest("[data-preview-open]");
    if (open) { open.href = pane().getAttribute("data-preview-url") + "?path=" + encodeURIComponent(currentPath()); }
    var switcher = event.target.closest && event.target.closest("[data-ws-view]");
    if (switcher) setView(switcher.getAttribute("data-ws-view"));
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("[data-preview-path]")) { event.preventDefault(); visit(currentPath()); }
    if (form.matches("[data-upload]") && window.XMLHttpRequest && window.FormData) { upload(event, form); }
  });

  // -- mobile: Chat / Preview / Files -----------------------------------------------------------------
  function setView(view) {
    var workspace = document.getElementById("workspace");
    if (!workspace) return;
    workspace.setAttribute("data-view", view);
    document.querySelectorAll("[data-ws-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-ws-view") === view));
    });
    var current = pane();
    if (view !== "chat" && current && current.getAttribute("data-tab") !== view && window.htmx &&
        window.matchMedia("(max-width: 1023.98px)").matches) {
      window.htmx.ajax("GET", window.location.pathname + "?tab=" + view, { target: "#project-pane", swap: "outerHTML" });
    }
  }

  // -- upload with progress -------------------------------------------------------------------------
  function upload(event, form) {
    event.preventDefault();
    var bar = $("[data-upload-progress]", form);
    var status = $("[data-upload-status]", form);
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable || !bar) return;
      bar.hidden = false;
      bar.value = Math.round((e.loaded / e.total) * 100);
    });
    request.addEventListener("load", function () {
      var data = {};
      try { data = JSON.parse(request.responseText); } catch (ignored) { data = {}; }
      if (request.status >= 200 && request.status < 300) {
        if (status) status.textContent = "Uploaded: a new version.";
        refreshPane("files");
      } else if (status) {
        status.textContent = (data.error && data.error.message) || data.message || "The upload failed.";
      }
    });
    request.addEventListener("error", function () { if (status) status.textContent = "The upload failed: no connection."; });
    request.send(new FormData(form));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var workspace = document.getElementById("workspace");
    if (!workspace) return;
    workspace.classList.add("js");
    document.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
    var tab = new URLSearchParams(window.location.search).get("tab");
    setView(tab === "files" ? "files" : tab ? "preview" : "chat");
    watchConversation();
    window.addEventListener("message", onPreviewMessage);
    var box = composerBox();
    if (box) { grow(box); estimateSoon(); }
  });
  document.addEventListener("htmx:load", function (event) {
    var el = event.detail.elt;
    document.querySelectorAll("#project-pane [data-js-only]").forEach(function (n) { n.hidden = false; });
    if (el && el.matches && el.matches(".chat-message.from-assistant") && !el.hasAttribute("data-stream-url")) {
      onReplyFinished(el);
    }
  });
})();
