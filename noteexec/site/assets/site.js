// noteexec site behaviour: theme toggle, callout classes, search, the phone menu, copy buttons,
// Mermaid, live reload. Plain ES2017, no dependencies; works from file:// and any base path.
(function () {
  "use strict";

  var body = document.body;
  var root = body.getAttribute("data-root") || "";
  var html = document.documentElement;

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ------------------------------------------------------------------ theme
  function isDark() {
    return html.classList.contains("theme-dark");
  }
  if (!html.classList.contains("theme-dark") && !html.classList.contains("theme-light")) {
    var saved = null;
    try {
      saved = window.localStorage.getItem("noteexec-theme");
    } catch (error) {
      saved = null;
    }
    var prefersDark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    html.classList.add((saved ? saved === "dark" : prefersDark) ? "theme-dark" : "theme-light");
  }
  function setTheme(dark) {
    html.classList.toggle("theme-dark", dark);
    html.classList.toggle("theme-light", !dark);
    try {
      window.localStorage.setItem("noteexec-theme", dark ? "dark" : "light");
    } catch (error) {
      // storage may be off (private mode): the choice lasts for this page only
    }
    renderMermaid();
  }
  var toggle = document.querySelector(".theme-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      setTheme(!isDark());
    });
  }

  // ------------------------------------------------------------------ callouts
  // Foldable callouts are <details> and fold without this script; it keeps Obsidian's
  // is-collapsed class in step for CSS written against Obsidian's DOM.
  document.querySelectorAll("details.callout").forEach(function (callout) {
    callout.addEventListener("toggle", function () {
      callout.classList.toggle("is-collapsed", !callout.open);
    });
  });

  // ------------------------------------------------------------------ note list (phones)
  // The list is in the page (it works without this script); on a narrow screen it is a drawer
  // that its button, Esc and a tap outside it close.
  var menu = document.querySelector(".menu-toggle");
  var drawer = document.querySelector(".sidebar-left");
  function setMenu(open) {
    body.classList.toggle("nav-open", open);
    menu.setAttribute("aria-expanded", open ? "true" : "false");
  }
  if (menu && drawer) {
    menu.addEventListener("click", function () {
      setMenu(!body.classList.contains("nav-open"));
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && body.classList.contains("nav-open")) {
        setMenu(false);
        menu.focus();
      }
    });
    document.addEventListener("click", function (event) {
      if (body.classList.contains("nav-open") && !drawer.contains(event.target) && !menu.contains(event.target)) {
        setMenu(false);
      }
    });
  }

  // ------------------------------------------------------------------ search
  var input = document.querySelector(".search-input");
  var results = document.querySelector(".search-results");
  var selected = -1;
  // The index is loaded the first time search is used, not with every page. It is read from
  // its own property only (an element id cannot stand in for it: it must hold a list).
  var index = null;
  var loading = false;
  function loadIndex() {
    if (index || loading) return;
    loading = true;
    var script = document.createElement("script");
    script.src = root + "search-index.js";
    script.onload = function () {
      var data = window.NOTEEXEC_INDEX;
      index = data && Array.isArray(data.pages) ? data.pages : [];
      if (input.value) showResults(input.value);
    };
    script.onerror = function () {
      loading = false;
    };
    document.head.appendChild(script);
  }

  function casefold(text) {
    return (text || "").toLocaleLowerCase();
  }
  function score(page, terms) {
    var title = casefold(page.t);
    var headings = casefold((page.h || []).join(" "));
    var tags = casefold((page.g || []).join(" "));
    var text = casefold(page.x);
    var total = 0;
    for (var i = 0; i < terms.length; i++) {
      var term = terms[i];
      var s = 0;
      if (title.indexOf(term) >= 0) s += 10;
      if (tags.indexOf(term) >= 0) s += 6;
      if (headings.indexOf(term) >= 0) s += 4;
      if (text.indexOf(term) >= 0) s += 1;
      if (!s) return 0;
      total += s;
    }
    return total;
  }
  function snippet(page, terms) {
    var text = page.x || "";
    var lower = casefold(text);
    var at = -1;
    for (var i = 0; i < terms.length && at < 0; i++) at = lower.indexOf(terms[i]);
    var node = element("div", "search-result-snippet");
    if (at < 0) {
      node.textContent = text.slice(0, 120);
      return node;
    }
    var start = Math.max(0, at - 40);
    var end = Math.min(text.length, at + terms[0].length + 80);
    node.appendChild(document.createTextNode((start > 0 ? "…" : "") + text.slice(start, at)));
    node.appendChild(element("mark", "", text.slice(at, at + terms[0].length)));
    node.appendChild(document.createTextNode(text.slice(at + terms[0].length, end) + (end < text.length ? "…" : "")));
    return node;
  }
  function showResults(query) {
    var terms = casefold(query).split(/\s+/).filter(Boolean);
    results.textContent = "";
    selected = -1;
    if (!terms.length) {
      results.hidden = true;
      return;
    }
    if (!index) {
      loadIndex();
      return;
    }
    var found = [];
    index.forEach(function (page) {
      var s = score(page, terms);
      if (s) found.push([s, page]);
    });
    found.sort(function (a, b) {
      return b[0] - a[0] || (a[1].t < b[1].t ? -1 : 1);
    });
    if (!found.length) {
      results.appendChild(element("div", "search-empty", "No notes match “" + query + "”"));
    }
    found.slice(0, 20).forEach(function (entry) {
      var page = entry[1];
      var link = element("a", "search-result");
      link.href = root + page.u;
      link.setAttribute("role", "option");
      link.appendChild(element("div", "search-result-title", page.t));
      link.appendChild(snippet(page, terms));
      results.appendChild(link);
    });
    results.hidden = false;
  }
  function move(step) {
    var items = results.querySelectorAll(".search-result");
    if (!items.length) return;
    if (selected >= 0) items[selected].classList.remove("is-selected");
    selected = (selected + step + items.length) % items.length;
    items[selected].classList.add("is-selected");
    items[selected].scrollIntoView({ block: "nearest" });
  }
  if (input && results) {
    input.addEventListener("focus", loadIndex);
    input.addEventListener("input", function () {
      showResults(input.value);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        move(1);
      } else if (event.key === "ArrowUp") {
        event.preventDefault();
        move(-1);
      } else if (event.key === "Enter") {
        var items = results.querySelectorAll(".search-result");
        var target = items[selected >= 0 ? selected : 0];
        if (target) window.location.href = target.href;
      } else if (event.key === "Escape") {
        input.value = "";
        showResults("");
        input.blur();
      }
    });
    document.addEventListener("click", function (event) {
      if (!event.target.closest(".search")) results.hidden = true;
    });
    document.addEventListener("keydown", function (event) {
      var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
      if (!typing && (event.key === "/" || ((event.ctrlKey || event.metaKey) && event.key === "k"))) {
        event.preventDefault();
        input.focus();
      }
    });
  }

  // ------------------------------------------------------------------ links to a block
  // Verdict panels start closed; following a link to a block (a failure in the header) opens its
  // panel and any folded callout around it.
  function openTarget() {
    var id = "";
    try {
      id = decodeURIComponent(window.location.hash.slice(1));
    } catch (error) {
      return;
    }
    var target = id && document.getElementById(id);
    if (!target) return;
    var verdict = target.classList.contains("nx-block") && target.querySelector(":scope > details.nx-verdict");
    if (verdict) verdict.open = true;
    for (var node = target.parentElement; node; node = node.parentElement) {
      if (node.tagName === "DETAILS") node.open = true;
    }
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();

  // ------------------------------------------------------------------ code copy buttons
  document.querySelectorAll(".code-block").forEach(function (block) {
    var code = block.querySelector("pre code");
    if (!code || !navigator.clipboard) return;
    var button = element("button", "copy-code", "Copy");
    button.type = "button";
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(code.textContent).then(
        function () {
          button.textContent = "Copied";
          setTimeout(function () {
            button.textContent = "Copy";
          }, 1200);
        },
        function () {
          button.textContent = "Copy failed";
        }
      );
    });
    block.appendChild(button);
  });

  // ------------------------------------------------------------------ table of contents
  var tocLinks = document.querySelectorAll(".sidebar-right > .toc a[href]"); // not a note's own .toc
  if (tocLinks.length && "IntersectionObserver" in window) {
    var byId = {};
    tocLinks.forEach(function (link) {
      byId[decodeURIComponent(link.getAttribute("href").slice(1))] = link;
    });
    var observer = new IntersectionObserver(
      function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting && byId[entry.target.id]) {
            tocLinks.forEach(function (link) {
              link.classList.remove("is-active");
            });
            byId[entry.target.id].classList.add("is-active");
          }
        });
      },
      { rootMargin: "0px 0px -70% 0px" }
    );
    Object.keys(byId).forEach(function (id) {
      var heading = document.getElementById(id);
      if (heading) observer.observe(heading);
    });
  }

  // ------------------------------------------------------------------ mermaid
  var diagrams = Array.prototype.slice.call(document.querySelectorAll("pre.mermaid"));
  diagrams.forEach(function (node) {
    node.setAttribute("data-source", node.textContent);
  });
  function mermaidApi() {
    // Not just window.mermaid: an element with id="mermaid" (a heading named Mermaid) is
    // window.mermaid when the script did not load. Only the real library has these functions.
    var api = window.mermaid;
    return api && typeof api.initialize === "function" && typeof api.run === "function" ? api : null;
  }
  // A note's own colours (`style A fill:#ffb8b8`) are chosen for a light page: in the dark
  // theme Mermaid writes light labels on them. Each node's label gets dark or light ink by
  // the brightness of the node's fill.
  function readableLabels() {
    diagrams.forEach(function (diagram) {
      diagram.querySelectorAll("g.node").forEach(function (node) {
        var shape = node.querySelector("rect, polygon, circle, ellipse, path");
        var rgb = shape ? (getComputedStyle(shape).fill.match(/[\d.]+/g) || []).map(Number) : [];
        if (rgb.length < 3) return;
        var ink = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 150 ? "#1a1a1a" : "#f0f0f0";
        node.querySelectorAll(".nodeLabel, .label, text, tspan").forEach(function (label) {
          label.style.color = ink;
          label.style.fill = ink;
        });
      });
    });
  }
  function renderMermaid() {
    var mermaid = mermaidApi();
    if (!diagrams.length || !mermaid) return;
    diagrams.forEach(function (node) {
      node.removeAttribute("data-processed");
      node.textContent = node.getAttribute("data-source");
    });
    mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      // Labels may hold HTML (sanitised by Mermaid's DOMPurify); nothing a reader could submit,
      // nothing that embeds another document, no style sheet.
      dompurifyConfig: {
        FORBID_TAGS: ["form", "input", "button", "textarea", "select", "option", "iframe", "frame",
          "object", "embed", "style", "link", "meta", "base"],
      },
      theme: isDark() ? "dark" : "default",
      fontFamily: getComputedStyle(body).fontFamily,
    });
    mermaid
      .run({ nodes: diagrams, suppressErrors: true })
      .then(readableLabels)
      .catch(function (error) {
        console.warn("noteexec: a diagram could not be drawn", error);
      });
  }
  if (diagrams.length) {
    if (mermaidApi()) {
      renderMermaid();
    } else {
      window.addEventListener("load", renderMermaid);
    }
  }

  // ------------------------------------------------------------------ print
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (details) {
      if (!details.open) {
        details.setAttribute("data-print-opened", "");
        details.open = true;
      }
    });
  });
  window.addEventListener("afterprint", function () {
    document.querySelectorAll("details[data-print-opened]").forEach(function (details) {
      details.open = false;
      details.removeAttribute("data-print-opened");
    });
  });

  // ------------------------------------------------------------------ live reload (noteexec serve)
  if (body.hasAttribute("data-live") && window.location.protocol.indexOf("http") === 0) {
    var generation = body.getAttribute("data-live");  // the build this page came from
    var poll = function () {
      fetch("/_noteexec/generation", { cache: "no-store" })
        .then(function (response) {
          return response.text();
        })
        .then(function (text) {
          if (text !== generation) {
            window.location.reload();
            return;
          }
          setTimeout(poll, 700);
        })
        .catch(function () {
          setTimeout(poll, 2000);
        });
    };
    poll();
  }
})();
