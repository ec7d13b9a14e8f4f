// sitegen: small progressive enhancements; every page works without JavaScript.
(function () {
  "use strict";
  // Sortable tables: click a header button to sort by that column.
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th button[data-sort]").forEach(function (button, col) {
      button.addEventListener("click", function () {
        var tbody = table.tBodies[0];
        var numeric = button.dataset.sort === "num";
        var asc = button.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th button").forEach(function (b) { b.removeAttribute("aria-sort"); });
        button.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(tbody.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].dataset.value || a.cells[col].textContent;
          var y = b.cells[col].dataset.value || b.cells[col].textContent;
          var r = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y, document.documentElement.lang);
          return asc ? r : -r;
        });
        rows.forEach(function (row) { tbody.appendChild(row); });
      });
    });
  });
})();
