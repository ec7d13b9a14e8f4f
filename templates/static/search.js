// sitegen search page: loads the Pagefind bundle by a URL relative to this page (works under any
// sub-path and offline), shows results with title, excerpt and type, and filters by type,
// language, sector and tag. The state lives in the query string: search/index.html?q=…&type=report.
// A classic script on purpose: module scripts and import() are refused on file:// pages, and
// there the page says so instead of filling the console with errors.
(function () {
  "use strict";
  var root = document.getElementById("search");
  if (!root || !root.dataset.labels) return;
  var L = JSON.parse(root.dataset.labels);
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  var filterBox = document.getElementById("search-filters");
  var input = document.getElementById("search-q");
  var form = input && input.form;
  var FILTER_ORDER = ["type", "language", "sector", "tag"];
  var PAGE_SIZE = 20;
  var more = document.getElementById("search-more");
  var current = [];
  var params = new URLSearchParams(location.search);
  var pagefind = null;
  var seq = 0;
  var timer = 0;

  input.value = params.get("q") || "";
  var headerBox = document.getElementById("site-search");
  if (headerBox) headerBox.value = input.value;

  function say(text) { status.textContent = text; }
  function fill(template, n) { return template.replace("{n}", String(n)); }
  function label(filter, value) {
    var names = L.values[filter];
    return (names && names[value]) || value;
  }

  if (root.dataset.enabled !== "true") { say(L.unavailable); return; }
  if (location.protocol !== "http:" && location.protocol !== "https:") { say(L.file); return; }

  // Pagefind escapes the page text and marks hits with <mark>; keep only text and <mark> anyway
  // (parsed in an inert <template>, so nothing in an excerpt can load or run).
  function excerptNodes(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    var out = document.createDocumentFragment();
    tpl.content.childNodes.forEach(function (node) {
      if (node.nodeType === Node.ELEMENT_NODE && node.nodeName === "MARK") {
        var mark = document.createElement("mark");
        mark.textContent = node.textContent;
        out.appendChild(mark);
      } else {
        out.appendChild(document.createTextNode(node.textContent));
      }
    });
    return out;
  }

  function selectedFilters() {
    var chosen = {};
    filterBox.querySelectorAll("input[type=checkbox]:checked").forEach(function (box) {
      (chosen[box.name] = chosen[box.name] || []).push(box.value);
    });
    var filters = {};
    Object.keys(chosen).forEach(function (name) { filters[name] = { any: chosen[name] }; });
    return { chosen: chosen, filters: filters };
  }

  function remember(query, chosen) {
    var next = new URLSearchParams();
    if (query) next.set("q", query);
    FILTER_ORDER.forEach(function (name) {
      (chosen[name] || []).forEach(function (value) { next.append(name, value); });
    });
    var qs = next.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
  }

  function renderFilters(all) {
    FILTER_ORDER.forEach(function (name) {
      var values = all[name];
      if (!values || !Object.keys(values).length) return;
      var set = document.createElement("fieldset");
      set.className = "search-filter filter-" + name;
      var legend = document.createElement("legend");
      legend.textContent = L.filters[name] || name;
      set.appendChild(legend);
      var wanted = params.getAll(name);
      Object.keys(values).sort(function (a, b) { return values[b] - values[a] || a.localeCompare(b); }).forEach(function (value) {
        var item = document.createElement("label");
        var box = document.createElement("input");
        box.type = "checkbox";
        box.name = name;
        box.value = value;
        box.checked = wanted.indexOf(value) !== -1;
        box.addEventListener("change", function () { run(); });
        item.appendChild(box);
        item.appendChild(document.createTextNode(" " + label(name, value) + " "));
        var count = document.createElement("span");
        count.className = "count";
        count.textContent = "(" + values[value] + ")";
        item.appendChild(count);
        set.appendChild(item);
      });
      filterBox.appendChild(set);
    });
    filterBox.hidden = !filterBox.children.length;
  }

  function renderResult(data) {
    var li = document.createElement("li");
    li.className = "search-result";
    var lang = data.filters && data.filters.language && data.filters.language[0];
    if (lang) li.lang = lang === "zh" ? "zh-CN" : lang;
    var meta = document.createElement("p");
    meta.className = "result-meta";
    var type = data.meta && data.meta.type;
    if (type) {
      var badge = document.createElement("span");
      badge.className = "badge result-type";
      badge.textContent = label("type", type);
      meta.appendChild(badge);
    }
    if (lang) {
      var langName = document.createElement("span");
      langName.className = "result-lang";
      langName.textContent = label("language", lang);
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(langName);
    }
    var heading = document.createElement("h2");
    var link = document.createElement("a");
    link.href = data.url;
    link.textContent = (data.meta && data.meta.title) || data.url;
    heading.appendChild(link);
    var excerpt = document.createElement("p");
    excerpt.className = "excerpt";
    excerpt.appendChild(excerptNodes(data.excerpt || ""));
    li.appendChild(meta);
    li.appendChild(heading);
    li.appendChild(excerpt);
    return li;
  }

  async function run() {
    var mine = ++seq;
    var query = input.value.trim();
    var picked = selectedFilters();
    remember(query, picked.chosen);
    if (headerBox) headerBox.value = query;
    if (!query && !Object.keys(picked.filters).length) {
      current = [];
      list.replaceChildren();
      more.hidden = true;
      say(L.hint);
      return;
    }
    var found = await pagefind.search(query || null, { filters: picked.filters });
    if (mine !== seq || !found) return;
    current = found.results;
    list.replaceChildren();
    await showMore(mine);
  }

  // Each result's text is a separate small file: fetch them a page at a time.
  async function showMore(mine) {
    var start = list.children.length;
    var data = await Promise.all(current.slice(start, start + PAGE_SIZE).map(function (r) { return r.data(); }));
    if (mine !== seq) return;
    data.map(renderResult).forEach(function (li) { list.appendChild(li); });
    var n = current.length;
    var shown = list.children.length;
    more.hidden = shown >= n;
    say(n ? fill(L.count, n) + (shown < n ? " · " + fill(L.more, shown) : "") : L.none);
    return start;
  }

  async function start() {
    say(L.loading);
    var bundle = new URL(root.dataset.bundle, location.href);
    var home = new URL(".", new URL(root.dataset.home, location.href));
    try {
      pagefind = await import(bundle.href);
      // Result URLs are stored relative to the site root; the root is wherever this site is served.
      await pagefind.options({ baseUrl: home.pathname, excerptLength: 28 });
      renderFilters(await pagefind.filters());
    } catch (err) {
      pagefind = null;
      say(L.unavailable);
      return;
    }
    await run();
  }

  more.addEventListener("click", async function () {
    var first = await showMore(seq);
    // Keyboard and screen-reader users continue at the first new result.
    var link = list.children[first] && list.children[first].querySelector("a");
    if (link) link.focus();
  });
  if (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      clearTimeout(timer);
      if (pagefind) run();
    });
  }
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { if (pagefind) run(); }, 200);
  });
  start();
})();
