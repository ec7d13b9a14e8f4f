(function () {
  "use strict";
  var me = document.currentScript;
  var shown = Number(me && me.getAttribute("data-generation"));
  var overlay = null;
  function hide() { if (overlay) { overlay.remove(); overlay = null; } }
  function show(status) {
    hide();
    overlay = document.createElement("div");
    overlay.id = "sitegen-error-overlay";
    overlay.setAttribute("role", "alert");
    overlay.style.cssText = "position:fixed;inset:0;z-index:2147483647;overflow:auto;background:rgba(20,20,24,.94);" +
      "color:#fafafa;font:14px/1.5 ui-monospace,Menlo,Consolas,monospace;padding:2rem;white-space:pre-wrap";
    var title = document.createElement("h2");
    title.style.cssText = "color:#ff6b6b;font:600 18px/1.4 system-ui,sans-serif;margin:0 0 1rem";
    title.textContent = "sitegen: the last build failed — showing the last good page underneath";
    var body = document.createElement("pre");
    body.style.cssText = "margin:0;white-space:pre-wrap";
    body.textContent = (status.errors || []).concat(status.warnings || []).join("\n") || status.message;
    var close = document.createElement("button");
    close.textContent = "×";
    close.setAttribute("aria-label", "close");
    close.style.cssText = "position:absolute;top:1rem;right:1rem;font-size:20px";
    close.onclick = hide;
    overlay.append(title, body, close);
    document.documentElement.append(overlay);
  }
  var source = new EventSource("/__sitegen__/events");
  source.addEventListener("status", function (e) {
    var status = JSON.parse(e.data);
    if (!status.ok) { show(status); return; }
    hide();
    if (status.generation !== shown) { location.reload(); }
  });
})();
