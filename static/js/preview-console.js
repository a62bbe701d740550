/* Injected at the top of every page a version preview serves (app/web/snapshot_preview.py), ahead of the
   page's own scripts: forwards uncaught errors, unhandled rejections and console.error to the workspace
   that frames the preview, as postMessage({source: "sorya-preview", kind, message, file, line, column,
   stack}). The parent checks that event.source is its preview frame. */
(function () {
  "use strict";
  var LIMIT = 2048;
  var target = document.currentScript && document.currentScript.getAttribute("data-parent-origin") || "*";

  function clip(value) {
    var text = value == null ? "" : String(value);
    return text.length > LIMIT ? text.slice(0, LIMIT) : text;
  }

  function describe(value) {
    if (value instanceof Error) return value.name + ": " + value.message;
    if (typeof value === "string") return value;
    try { return JSON.stringify(value); } catch (ignored) { return String(value); }
  }

  function send(kind, message, file, line, column, stack) {
    if (window.parent === window) return;
    try {
      window.parent.postMessage({
        source: "sorya-preview", kind: kind, message: clip(message), file: clip(file || ""),
        line: Number(line) || 0, column: Number(column) || 0, stack: clip(stack || "")
      }, target);
    } catch (ignored) { /* a message that cannot be cloned or sent is dropped, never thrown at the page */ }
  }

  window.addEventListener("error", function (event) {
    var element = event.target;
    if (element && element !== window && element.tagName) {
      var url = element.src || element.href || "";
      send("resource", "Could not load " + (url || element.tagName.toLowerCase()), url, 0, 0, "");
      return;
    }
    var error = event.error;
    send("error", event.message || (error && error.message) || "Error", event.filename, event.lineno,
         event.colno, error && error.stack);
  }, true);

  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    send("unhandledrejection", "Unhandled promise rejection: " + describe(reason), "", 0, 0,
         reason && reason.stack);
  });

  var original = console.error;
  console.error = function () {
    var parts = [], stack = "";
    for (var i = 0; i < arguments.length; i++) {
      parts.push(describe(arguments[i]));
      if (!stack && arguments[i] instanceof Error) stack = arguments[i].stack || "";
    }
    send("console.error", parts.join(" "), "", 0, 0, stack);
    return original.apply(console, arguments);
  };
})();
