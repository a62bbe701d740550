// Snapshot preview: keep the file tree's selection in step with the file htmx swapped in.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSettle", function (event) {
    var view = document.getElementById("file-view");
    if (!view || !event.target || event.target.id !== "file-view") return;
    var path = view.getAttribute("data-path");
    document.querySelectorAll(".tree-file").forEach(function (item) {
      var selected = item.getAttribute("data-path") === path;
      item.classList.toggle("selected", selected);
      var link = item.querySelector("a");
      if (!link) return;
      if (selected) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  });
})();
