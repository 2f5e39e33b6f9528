/*! ragqa chat widget: plain JavaScript, no dependencies.
 *
 * Embed on any site (the service's RAGQA_CORS_ORIGINS must name that site's origin):
 *   <script src="http://HOST/widget.js"></script>
 * A floating button opens the chat panel. The service's own page (/) mounts the same chat full
 * window with data-mode="page" data-target="ELEMENT_ID".
 *
 * Security: everything that comes from the service (answers, titles, passages, error details) is
 * inserted with textContent / createTextNode, never as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.src || script.getAttribute("data-ragqa-mounted")) return;
  script.setAttribute("data-ragqa-mounted", "1");

  var BASE = new URL(".", script.src).href; // the service, e.g. "http://HOST:8000/"
  var MODE = script.getAttribute("data-mode") === "page" ? "page" : "widget";
  var TARGET = script.getAttribute("data-target");
  var STORE_KEY = "ragqa-chat:" + BASE;
  var MAX_CHARS = 1000;
  var MAX_MESSAGES = 60;
  var TIMEOUT_MS = 60000;
  var SVG = "http://www.w3.org/2000/svg";
  var uid = 0;

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "class") node.className = v;
        else node.setAttribute(k, v === true ? "" : String(v));
      });
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function icon(d, stroke) {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "rq-icon");
    var path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    if (stroke) {
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", "currentColor");
      path.setAttribute("stroke-width", "2.2");
      path.setAttribute("stroke-linecap", "round");
    } else {
      path.setAttribute("fill", "currentColor");
    }
    svg.appendChild(path);
    return svg;
  }
  var ICON_CHAT = "M6 3h12a3 3 0 0 1 3 3v8a3 3 0 0 1-3 3h-7l-5 4v-4H6a3 3 0 0 1-3-3V6a3 3 0 0 1 3-3z";
  var ICON_CLOSE = "M6 6l12 12M18 6L6 18";
  var ICON_SEND = "M3.4 20.4 21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z";

  function load() {
    try {
      var raw = window.sessionStorage.getItem(STORE_KEY);
      var data = raw ? JSON.parse(raw) : null;
      if (data && Array.isArray(data.messages)) return data;
    } catch (e) { /* storage disabled or corrupt: start afresh */ }
    return { messages: [], open: false };
  }

  function save() {
    try {
      state.messages = state.messages.slice(-MAX_MESSAGES);
      window.sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
    } catch (e) { /* storage full or disabled: the chat still works, it is just not kept */ }
  }

  // a stored answer's confidence (answers kept by an older widget in this tab called it score)
  function confidenceOf(msg) {
    var c = typeof msg.confidence === "number" ? msg.confidence : msg.score;
    return typeof c === "number" ? c : 0;
  }

  function confidenceLevel(value) {
    if (value >= 0.75) return { level: "high", text: "High confidence" };
    if (value >= 0.5) return { level: "medium", text: "Medium confidence" };
    return { level: "low", text: "Low confidence: check the source" };
  }

  function detailText(body) {
    var d = body && body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d) && d.length && d[0] && typeof d[0].msg === "string") return d[0].msg;
    return "";
  }

  function errorWords(msg) {
    if (msg.kind === "network") {
      return ["Can't reach the article service right now.",
              "Check your connection, then try again. Your question is kept."];
    }
    if (msg.kind === "timeout") {
      return ["The article service is taking too long to answer.", "Please try again in a moment."];
    }
    if (msg.kind === "interrupted") {
      return ["The page was reloaded before the answer arrived.", "Try again to get it."];
    }
    var detail = (msg.detail || "").slice(0, 300);
    if (msg.status >= 400 && msg.status < 500) {
      return ["The service couldn't take this question.", detail || "Please rephrase it and try again."];
    }
    return ["Something went wrong on the article service" + (msg.status ? " (error " + msg.status + ")." : "."),
            detail || "Please try again in a moment."];
  }

  // keep what the view needs: the answer, its citations and only the passages they point into
  function trimAnswer(body, question) {
    var citations = Array.isArray(body.citations) ? body.citations.slice(0, 8) : [];
    var used = {};
    citations.forEach(function (c) { used[c.doc_id + "\u0000" + c.chunk_id] = true; });
    var passages = (Array.isArray(body.passages) ? body.passages : []).filter(function (p) {
      return used[p.doc_id + "\u0000" + p.chunk_id];
    });
    return { role: "bot", question: question, answer: String(body.answer),
             // the span probability, where the reader gives one, is the better-ordered
             // confidence; the score (what the no-answer threshold applies to) otherwise
             confidence: typeof body.confidence === "number" ? body.confidence : Number(body.score) || 0,
             citations: citations, passages: passages };
  }

  // the passage of a citation, with the answer located by its offsets
  function passageFor(msg, c) {
    for (var i = 0; i < msg.passages.length; i++) {
      var p = msg.passages[i];
      if (p.doc_id === c.doc_id && p.chunk_id === c.chunk_id && typeof p.text === "string") {
        var a = c.start - p.start, b = c.end - p.start;
        if (a >= 0 && b > a && b <= p.text.length) return { text: p.text, start: a, end: b };
      }
    }
    // no passage: fall back on the snippet, which holds the answer
    var s = String(c.snippet || ""), j = s.indexOf(msg.answer);
    return { text: s, start: j, end: j < 0 ? -1 : j + msg.answer.length };
  }

  function highlighted(container, text, start, end) {
    if (!(start >= 0 && end > start && end <= text.length)) {
      container.appendChild(document.createTextNode(text));
      return null;
    }
    container.appendChild(document.createTextNode(text.slice(0, start)));
    var mark = el("mark", { class: "rq-mark" }, text.slice(start, end));
    container.appendChild(mark);
    container.appendChild(document.createTextNode(text.slice(end)));
    return mark;
  }

  function sourceUrl(c) {
    return BASE + "documents/" + encodeURIComponent(c.doc_id) + "?start=" + encodeURIComponent(c.start) +
      "&end=" + encodeURIComponent(c.end) + "#answer";
  }

  // ------------------------------------------------------------------ the DOM
  var state = load();
  var busy = false;

  var host = el("div", { class: "ragqa-widget", "data-ragqa": MODE });
  var root = host.attachShadow({ mode: "open" });
  // hidden until the stylesheet is in (no flash of unstyled content); then, on the chat page,
  // the question box takes the focus (a hidden element cannot)
  host.style.visibility = "hidden";
  var shown = false;
  function reveal() {
    if (shown) return;
    shown = true;
    host.style.visibility = "";
    if (MODE === "page" && (!document.activeElement || document.activeElement === document.body)) input.focus();
  }
  var css = el("link", { rel: "stylesheet", href: BASE + "static/chat.css" });
  css.addEventListener("load", reveal);
  css.addEventListener("error", reveal);
  window.setTimeout(reveal, 3000); // a stylesheet that never answers must not hide the chat
  root.appendChild(css);

  var frame = el("div", { class: "rq rq-" + MODE });
  root.appendChild(frame);

  var launcher = null;
  if (MODE === "widget") {
    launcher = el("button", { type: "button", class: "rq-launcher", "aria-expanded": "false",
                              "aria-controls": "rq-panel", "aria-label": "Ask the articles: open chat" });
    launcher.appendChild(icon(ICON_CHAT));
    launcher.appendChild(el("span", { class: "rq-launcher-text" }, "Ask"));
    frame.appendChild(launcher);
  }

  var panel = el("section", MODE === "widget"
    ? { id: "rq-panel", class: "rq-panel", role: "dialog", "aria-labelledby": "rq-title", hidden: true }
    : { id: "rq-panel", class: "rq-panel", "aria-labelledby": "rq-title" });
  frame.appendChild(panel);

  var header = el("header", { class: "rq-header" });
  var titles = el("div", { class: "rq-titles" });
  titles.appendChild(el(MODE === "page" ? "h1" : "h2", { id: "rq-title", class: "rq-title" }, "Ask the articles"));
  titles.appendChild(el("p", { class: "rq-sub" }, "Answers quote the exact words of their source."));
  header.appendChild(titles);
  var clearBtn = el("button", { type: "button", class: "rq-textbtn rq-clear" }, "New chat");
  header.appendChild(clearBtn);
  var closeBtn = null;
  if (MODE === "widget") {
    closeBtn = el("button", { type: "button", class: "rq-iconbtn rq-close", "aria-label": "Close chat" });
    closeBtn.appendChild(icon(ICON_CLOSE, true));
    header.appendChild(closeBtn);
  }
  panel.appendChild(header);

  var log = el("ol", { class: "rq-log", "aria-label": "Conversation", tabindex: "-1" });
  panel.appendChild(log);
  var intro = el("li", { class: "rq-intro" });
  intro.appendChild(el("p", null, "Ask a question about the articles."));
  intro.appendChild(el("p", { class: "rq-muted" },
    "Each answer shows its sources: open one to see the exact passage, the answer highlighted."));
  var typing = el("li", { class: "rq-msg rq-bot rq-typing", hidden: true });
  typing.appendChild(el("span", { class: "rq-visually-hidden" }, "Searching the articles…"));
  var dots = el("span", { class: "rq-dots", "aria-hidden": "true" });
  dots.appendChild(el("span")); dots.appendChild(el("span")); dots.appendChild(el("span"));
  typing.appendChild(dots);

  // screen readers hear new answers (and errors) here, once, in plain words
  var live = el("div", { class: "rq-visually-hidden rq-live", role: "status", "aria-live": "polite" });
  panel.appendChild(live);

  var form = el("form", { class: "rq-form", novalidate: true });
  var inputId = "rq-input";
  form.appendChild(el("label", { for: inputId, class: "rq-visually-hidden" }, "Your question"));
  var input = el("textarea", { id: inputId, class: "rq-input", rows: "1", maxlength: String(MAX_CHARS),
                               placeholder: "Ask a question…", autocomplete: "off",
                               "aria-describedby": "rq-hint" });
  form.appendChild(input);
  var send = el("button", { type: "submit", class: "rq-send", "aria-label": "Send question", disabled: true });
  send.appendChild(icon(ICON_SEND));
  form.appendChild(send);
  panel.appendChild(form);
  panel.appendChild(el("p", { id: "rq-hint", class: "rq-hint" }, "Enter to send, Shift+Enter for a new line"));

  // ------------------------------------------------------------------ rendering
  function announce(text) {
    live.textContent = "";
    window.setTimeout(function () { live.textContent = text; }, 60);
  }

  // newest at the bottom: stay there while the user has not scrolled up, even when the panel
  // changes size (phone rotated, on-screen keyboard shown)
  var pinned = true;
  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
    pinned = true;
  }
  log.addEventListener("scroll", function () {
    pinned = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
  });
  if (window.ResizeObserver) {
    new ResizeObserver(function () { if (pinned) log.scrollTop = log.scrollHeight; }).observe(log);
  }

  // the highlighted answer a third of the way down its passage box, also after a resize
  function centerMark(quote) {
    var mark = quote.querySelector("mark");
    if (!mark || !quote.clientHeight) return;
    var offset = mark.getBoundingClientRect().top - quote.getBoundingClientRect().top;
    quote.scrollTop = Math.max(0, quote.scrollTop + offset - quote.clientHeight / 3);
  }
  var passageResized = window.ResizeObserver
    ? new ResizeObserver(function (entries) { entries.forEach(function (e) { centerMark(e.target); }); })
    : null;

  function renderCitations(li, msg) {
    if (!msg.citations.length) return;
    var box = el("div", { class: "rq-sources" });
    box.appendChild(el("p", { class: "rq-sources-label" }, msg.citations.length === 1 ? "Source" : "Sources"));
    var chips = el("ul", { class: "rq-chips", role: "list" });
    box.appendChild(chips);
    var panels = [];
    msg.citations.forEach(function (c, n) {
      var id = "rq-cite-" + (++uid);
      var title = String(c.title || c.doc_id);
      var chip = el("button", { type: "button", class: "rq-chip", "aria-expanded": "false", "aria-controls": id,
                                title: title, "data-doc-id": c.doc_id });
      chip.appendChild(el("span", { class: "rq-chip-num", "aria-hidden": "true" }, String(n + 1)));
      chip.appendChild(el("span", { class: "rq-visually-hidden" }, "Source " + (n + 1) + ": "));
      chip.appendChild(el("span", { class: "rq-chip-title" }, title));
      var item = el("li");
      item.appendChild(chip);
      chips.appendChild(item);

      var pane = el("div", { id: id, class: "rq-passage", role: "region", "aria-label": "Source " + (n + 1) + " passage",
                             hidden: true });
      pane.appendChild(el("p", { class: "rq-passage-title" }, title));
      var found = passageFor(msg, c);
      var quote = el("blockquote", { class: "rq-passage-text" });
      highlighted(quote, found.text, found.start, found.end);
      if (passageResized) passageResized.observe(quote);
      pane.appendChild(quote);
      var link = el("a", { class: "rq-source-link", href: sourceUrl(c), target: "_blank", rel: "noopener" },
                    "Open the article at this answer");
      link.appendChild(el("span", { class: "rq-visually-hidden" }, " (opens in a new tab)"));
      pane.appendChild(link);
      panels.push({ chip: chip, pane: pane });
      box.appendChild(pane);

      chip.addEventListener("click", function () {
        var opening = chip.getAttribute("aria-expanded") !== "true";
        panels.forEach(function (other) {
          other.chip.setAttribute("aria-expanded", "false");
          other.pane.hidden = true;
        });
        if (!opening) return;
        chip.setAttribute("aria-expanded", "true");
        pane.hidden = false;
        centerMark(quote);
        var bottom = pane.offsetTop + pane.offsetHeight - log.clientHeight;
        if (log.scrollTop < bottom) log.scrollTop = bottom + 8;
      });
    });
    li.appendChild(box);
  }

  function renderMessage(msg) {
    var li;
    if (msg.role === "user") {
      li = el("li", { class: "rq-msg rq-user" });
      li.appendChild(el("span", { class: "rq-visually-hidden" }, "You asked: "));
      li.appendChild(el("p", { class: "rq-text" }, msg.text));
    } else if (msg.role === "bot") {
      li = el("li", { class: "rq-msg rq-bot" });
      li.appendChild(el("span", { class: "rq-visually-hidden" }, "Answer: "));
      li.appendChild(el("p", { class: "rq-answer" }, msg.answer));
      var value = confidenceOf(msg), conf = confidenceLevel(value);
      var meter = el("p", { class: "rq-confidence rq-conf-" + conf.level, title: "confidence " + value.toFixed(2) });
      var bars = el("span", { class: "rq-bars", "aria-hidden": "true" });
      bars.appendChild(el("span")); bars.appendChild(el("span")); bars.appendChild(el("span"));
      meter.appendChild(bars);
      meter.appendChild(el("span", null, conf.text));
      li.appendChild(meter);
      renderCitations(li, msg);
    } else if (msg.role === "abstain") {
      li = el("li", { class: "rq-msg rq-bot rq-abstain" });
      li.appendChild(el("p", { class: "rq-answer" }, "I couldn't find this in the articles."));
      li.appendChild(el("p", { class: "rq-muted" }, "Try rephrasing, or ask about something the articles cover."));
    } else {
      li = el("li", { class: "rq-msg rq-error" });
      var words = errorWords(msg);
      var head = el("p", { class: "rq-error-title" });
      head.appendChild(el("span", { class: "rq-error-icon", "aria-hidden": "true" }, "!"));
      head.appendChild(el("span", null, words[0]));
      li.appendChild(head);
      li.appendChild(el("p", { class: "rq-error-detail" }, words[1]));
      var retry = el("button", { type: "button", class: "rq-retry" }, "Try again");
      retry.addEventListener("click", function () { retryFrom(msg, li); });
      li.appendChild(retry);
    }
    log.insertBefore(li, typing);
    return li;
  }

  function renderAll() {
    while (log.firstChild) log.removeChild(log.firstChild);
    log.appendChild(intro);
    log.appendChild(typing);
    intro.hidden = state.messages.length > 0;
    state.messages.forEach(renderMessage);
    scrollToEnd();
  }

  function push(msg) {
    state.messages.push(msg);
    save();
    intro.hidden = true;
    var li = renderMessage(msg);
    scrollToEnd();
    return li;
  }

  function updateSend() {
    send.disabled = busy || !input.value.trim();
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
  }

  function setBusy(value) {
    busy = value;
    typing.hidden = !value;
    panel.setAttribute("aria-busy", value ? "true" : "false");
    updateSend();
    if (value) {
      scrollToEnd();
      announce("Searching the articles…");
    }
  }

  // ------------------------------------------------------------------ talking to the service
  function ask(question) {
    setBusy(true);
    var controller = window.AbortController ? new AbortController() : null;
    var timer = window.setTimeout(function () { if (controller) controller.abort(); }, TIMEOUT_MS);
    var status = 0;
    fetch(BASE + "ask", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ question: question }),
      signal: controller ? controller.signal : undefined,
    })
      .then(function (r) {
        status = r.status;
        return r.json().then(function (j) { return [r.ok, j]; }, function () { return [false, null]; });
      })
      .then(function (res) {
        var body = res[1];
        if (!res[0] || !body || typeof body !== "object") {
          return { role: "error", question: question, kind: "http", status: status, detail: detailText(body) };
        }
        if (body.answer === null || body.answer === undefined) return { role: "abstain", question: question };
        return trimAnswer(body, question);
      }, function (err) {
        return { role: "error", question: question, kind: err && err.name === "AbortError" ? "timeout" : "network" };
      })
      .then(function (msg) {
        window.clearTimeout(timer);
        setBusy(false);
        push(msg);
        if (msg.role === "bot") {
          var n = msg.citations.length;
          announce("Answer: " + msg.answer + ". " + confidenceLevel(confidenceOf(msg)).text + ". " +
                   n + (n === 1 ? " source." : " sources."));
        } else if (msg.role === "abstain") {
          announce("I couldn't find this in the articles.");
        } else {
          var words = errorWords(msg);
          announce(words[0] + " " + words[1]);
          if (!input.value.trim()) { input.value = question; autosize(); updateSend(); }
        }
      });
  }

  function submit() {
    var question = input.value.trim();
    if (!question || busy) return;
    input.value = "";
    autosize();
    push({ role: "user", text: question });
    ask(question);
  }

  function retryFrom(msg, li) {
    if (busy) return;
    var i = state.messages.indexOf(msg);
    if (i >= 0) state.messages.splice(i, 1);
    save();
    if (li.parentNode) li.parentNode.removeChild(li);
    if (input.value.trim() === msg.question) { input.value = ""; autosize(); }
    ask(msg.question);
    input.focus();
  }

  // ------------------------------------------------------------------ events
  form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", function () { autosize(); updateSend(); });
  clearBtn.addEventListener("click", function () {
    if (busy) return;
    state.messages = [];
    save();
    renderAll();
    input.focus();
  });

  function setOpen(open, focus) {
    if (MODE !== "widget") return;
    panel.hidden = !open;
    frame.classList.toggle("rq-open", open);
    launcher.setAttribute("aria-expanded", open ? "true" : "false");
    state.open = open;
    save();
    if (open) {
      scrollToEnd();
      if (focus) input.focus();
    } else if (focus) {
      launcher.focus();
    }
  }
  if (MODE === "widget") {
    launcher.addEventListener("click", function () { setOpen(panel.hidden, true); });
    closeBtn.addEventListener("click", function () { setOpen(false, true); });
    panel.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") { ev.preventDefault(); setOpen(false, true); }
    });
  }

  // ------------------------------------------------------------------ start
  // a question asked just before a reload has no answer: offer to ask it again
  var last = state.messages[state.messages.length - 1];
  if (last && last.role === "user") {
    state.messages.push({ role: "error", question: last.text, kind: "interrupted" });
    save();
  }
  renderAll();

  function mount() {
    var target = MODE === "page" && TARGET ? document.getElementById(TARGET) : null;
    (target || document.body).appendChild(host);
    if (MODE === "widget") setOpen(!!state.open, false);
    scrollToEnd();
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
