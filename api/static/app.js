// Minimal chat page: every piece of document text is inserted as text, never as HTML.
(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("ask");
  var input = document.getElementById("question");

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function snippet(c) {
    // the snippet holds the answer; highlight its first occurrence
    var p = el("div", "cite");
    var s = c.snippet, a = c.answer || "";
    var i = a ? s.indexOf(a) : -1;
    if (i < 0) { p.textContent = s; return p; }
    p.appendChild(document.createTextNode(s.slice(0, i)));
    p.appendChild(el("mark", "", s.slice(i, i + a.length)));
    p.appendChild(document.createTextNode(s.slice(i + a.length)));
    return p;
  }

  function show(data) {
    var li = el("li", "bot");
    if (data.answer === null) {
      li.appendChild(el("div", "answer", "I couldn't find this in the articles."));
    } else {
      li.appendChild(el("div", "answer", data.answer));
      li.appendChild(el("div", "meta", "score " + data.score.toFixed(2)));
      data.citations.forEach(function (c, n) {
        var title = el("div", "meta", "[" + (n + 1) + "] " + c.title);
        li.appendChild(title);
        c.answer = data.answer;
        li.appendChild(snippet(c));
      });
    }
    log.appendChild(li);
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = input.value.trim();
    if (!q) return;
    log.appendChild(el("li", "user", q));
    input.value = "";
    fetch("/ask", { method: "POST", headers: { "content-type": "application/json" },
                    body: JSON.stringify({ question: q }) })
      .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
      .then(function (res) {
        if (!res[0]) throw new Error(typeof res[1].detail === "string" ? res[1].detail : "request failed");
        show(res[1]);
      })
      .catch(function (e) { log.appendChild(el("li", "error", "Error: " + e.message)); });
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });
})();
