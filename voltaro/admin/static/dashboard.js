// Voltaro dashboard: live updates over server-sent events, and commands without reloading.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const pageCp = document.body.dataset.cp || null;
  const stateEl = document.getElementById("live-state");

  function describe(e) {
    switch (e.type) {
      case "connected": return "connected";
      case "disconnected": return "disconnected" + (e.reason ? " (" + e.reason + ")" : "");
      case "offline": return "offline: " + (e.reason || "");
      case "online": return "online again: " + (e.reason || "");
      case "boot": return "booted: " + e.vendor + " " + e.model + ", " + e.status;
      case "status": return "connector " + e.connectorId + ": " + (e.previousStatus ? e.previousStatus + " → " : "") + e.status +
        (e.errorCode && e.errorCode !== "NoError" ? " (" + e.errorCode + ")" : "");
      case "transactionStarted": return "transaction #" + e.transactionId + " started on connector " + e.connectorId + " by " + e.idTag;
      case "transactionStopped": return "transaction #" + e.transactionId + " stopped" + (e.reason ? " (" + e.reason + ")" : "");
      case "meterValues": return "meter values for transaction #" + e.transactionId;
      case "commandAnswered": return e.action + ": " + (e.outcome === "result" ? (e.status || "answered") : e.outcome);
      case "error": return "CALLERROR " + e.code + (e.direction === "in" ? " from charger" : " to charger") +
        (e.action ? " on " + e.action : "") + (e.description ? ": " + e.description : "");
      default: return e.type;
    }
  }

  // An event's time as the feed shows it: UTC like every time on the dashboard, with its
  // date unless it is today's (a feed kept open overnight, events from before a restart).
  function when(at) {
    const today = new Date().toISOString().slice(0, 10);
    const time = at.slice(11, 19) + " UTC";
    return at.slice(0, 10) === today ? time : at.slice(0, 10) + " " + time;
  }

  function fillEvent(li, e) {
    li.className = "event ev-" + e.type;
    li.textContent = "";
    const time = document.createElement("time");
    time.dateTime = e.at; time.textContent = when(e.at || "");
    time.title = (e.at || "").replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC");
    const link = document.createElement("a");
    link.href = "/charge-points/" + encodeURIComponent(e.chargePointId || "");
    link.textContent = e.chargePointId || "";
    const what = document.createElement("span");
    what.className = "what"; what.textContent = describe(e);
    li.append(time, link, what);
  }

  const feed = document.getElementById("feed");
  if (feed) {
    feed.querySelectorAll("li[data-event]").forEach(function (li) {
      try { fillEvent(li, JSON.parse(li.dataset.event)); } catch (err) { li.remove(); }
    });
  }
  function addToFeed(e) {
    if (!feed || e.type === "meterValues") return;
    const li = document.createElement("li");
    fillEvent(li, e);
    feed.prepend(li);
    while (feed.children.length > 100) feed.lastElementChild.remove();
    const empty = document.getElementById("feed-empty");
    if (empty) empty.hidden = true;
  }

  // A payload the operator opened (a <details> in a row with data-message) stays open
  // when its region is rendered again.
  function keepOpen(old, replacement) {
    old.querySelectorAll("tr[data-message] details[open]").forEach(function (details) {
      const id = details.closest("tr").dataset.message;
      const row = replacement.querySelector('tr[data-message="' + CSS.escape(id) + '"]');
      const same = row && row.querySelector("details");
      if (same) same.open = true;
    });
  }

  // The element of a fresh region that stands for the focused one of the old (a payload's
  // summary by its message, an element by its id, a form's button by its action and value),
  // so a region with the focus in it is updated too and the focus stays where it was.
  function counterpart(el, fresh) {
    const row = el.tagName === "SUMMARY" && el.closest("tr[data-message]");
    if (row) {
      return fresh.querySelector('tr[data-message="' + CSS.escape(row.dataset.message) + '"] summary');
    }
    if (el.id) return fresh.querySelector("#" + CSS.escape(el.id));
    const form = el.closest("form");
    if (form && el.name) {
      return Array.prototype.find.call(fresh.querySelectorAll("form"), function (f) {
        return f.getAttribute("action") === form.getAttribute("action");
      })?.querySelector('[name="' + CSS.escape(el.name) + '"][value="' + CSS.escape(el.value) + '"]') || null;
    }
    return null;
  }

  // Re-render the page's live regions ([data-live][id]) from a fresh copy of the page.
  let refreshing = false, again = false;
  async function refresh() {
    if (!document.querySelector("[data-live]")) return;
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const response = await fetch(location.href, { cache: "no-store" });
      if (response.redirected || response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-live][id]").forEach(function (old) {
        const replacement = fresh.getElementById(old.id);
        if (!replacement) return;
        const focused = document.activeElement;
        const within = focused && focused !== document.body && old.contains(focused);
        const successor = within ? counterpart(focused, replacement) : null;
        if (within && !successor) return; // nothing to hand the focus to: keep it as it is
        keepOpen(old, replacement);
        old.replaceWith(replacement);
        if (successor) successor.focus({ preventScroll: true });
      });
      bindCommands(document);
    } catch (err) {
      // the next event or reconnect tries again
    } finally {
      refreshing = false;
      if (again) { again = false; setTimeout(refresh, 250); } // at most ~4 renders a second
    }
  }

  // List pages (a table[data-rows]): an event changes only the rows it concerns that are
  // on the page, each re-fetched alone (its row fragment); events about rows not shown
  // fetch nothing. Only a page with room left (data-full="0") re-fetches its list when
  // something new appears, since the new row may belong on it. The running energy of the
  // active transactions shown is fetched for all of them in one request every 10 s, rather
  // than on each of their MeterValues (which the transactions list does not subscribe to).
  const LISTS = {
    cp: {
      attr: "data-cp",
      key: function (e) { return e.chargePointId; },
      url: function (ids) {
        return "/charge-points/" + encodeURIComponent(ids[0]) + "/row?back=" +
          encodeURIComponent(location.pathname + location.search);
      },
      changes: ["connected", "disconnected", "offline", "online", "boot", "status"],
      grows: ["connected", "boot"],
    },
    tx: {
      attr: "data-transaction",
      key: function (e) { return e.transactionId === undefined ? undefined : String(e.transactionId); },
      url: function (ids) { return "/transactions/rows?ids=" + ids.map(encodeURIComponent).join(","); },
      changes: ["transactionStopped"],
      grows: ["transactionStarted"],
      poll: { every: 10000, rows: "tr[data-active]" },
    },
  };
  const ROW_DELAY = 300; // ms: events for one row within this become one fetch
  const rowTimers = new Map();

  function shownRow(table, kind, id) {
    return Array.prototype.find.call(table.tBodies[0].rows, function (tr) {
      return tr.getAttribute(kind.attr) === id;
    }) || null;
  }

  async function updateRows(kind, ids) {
    const table = document.querySelector("table[data-rows]");
    if (!table || !ids.length) return;
    try {
      const response = await fetch(kind.url(ids), { cache: "no-store" });
      if (response.redirected || response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      template.content.querySelectorAll("tr[" + kind.attr + "]").forEach(function (fresh) {
        const current = shownRow(table, kind, fresh.getAttribute(kind.attr));
        if (!current) return;
        if (current.contains(document.activeElement) && document.activeElement !== document.body) return;
        current.replaceWith(fresh);
      });
    } catch (err) {
      // the row's next event tries again
    }
  }

  function onListEvent(table, e) {
    const kind = LISTS[table.dataset.rows];
    if (!kind) return;
    const id = kind.key(e);
    if (id === undefined || id === null) return;
    if (!shownRow(table, kind, String(id))) {
      if (kind.grows.indexOf(e.type) < 0) return;
      if (table.dataset.full === "0") refresh();
      else if (table.dataset.newestFirst) {
        // A full page of the newest: say there is newer, rather than reshuffle the rows
        // under the operator's eyes.
        const news = document.getElementById("list-news");
        if (news) news.hidden = false;
      }
      return;
    }
    if (kind.changes.indexOf(e.type) < 0 || rowTimers.has(id)) return;
    rowTimers.set(id, setTimeout(function () {
      rowTimers.delete(id);
      updateRows(kind, [String(id)]);
    }, ROW_DELAY));
  }

  function pollRows() {
    const table = document.querySelector("table[data-rows]");
    const kind = table && LISTS[table.dataset.rows];
    if (!kind || !kind.poll) return;
    setInterval(function () {
      const current = document.querySelector("table[data-rows]");
      if (!current || document.hidden) return;
      const ids = Array.prototype.map.call(current.querySelectorAll("tbody " + kind.poll.rows),
        function (tr) { return tr.getAttribute(kind.attr); });
      updateRows(kind, ids);
    }, kind.poll.every);
  }
  pollRows();

  // A charger's message log (table[data-rows="msg"][data-tail]: its first page, newest
  // first): the frames logged since the newest row shown are fetched (data-tail, with from=
  // that row's time) and put on top, the oldest dropping off the page. The rows shown are
  // never rendered again, so an expanded payload stays open. The charger's events (of the
  // frames that have one) fetch soon after, and once more a little later for the answer
  // logged with the writer's next batch; frames without an event (Heartbeat, DataTransfer,
  // ...) come with a fetch every 10 s.
  const TAIL = {
    types: ["boot", "status", "transactionStarted", "transactionStopped", "meterValues",
      "error", "commandAnswered"],
    soon: 300, later: 2000, every: 10000,
  };
  let tailing = false, tailAgain = false, tailTimer = null, tailLater = null;
  function tailTable() { return document.querySelector('table[data-rows="msg"][data-tail]'); }

  async function fetchTail() {
    const table = tailTable();
    if (!table) return;
    if (tailing) { tailAgain = true; return; }
    tailing = true;
    try {
      const body = table.tBodies[0];
      const newest = body.querySelector("tr[data-message]");
      const url = new URL(table.dataset.tail, location.href);
      if (newest) url.searchParams.set("from", newest.dataset.logged);
      url.searchParams.set("limit", table.dataset.limit);
      const response = await fetch(url.pathname + url.search, { cache: "no-store" });
      if (response.redirected || response.status === 401) { location.reload(); return; }
      if (!response.ok) return;
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      const shown = new Set(Array.prototype.map.call(body.querySelectorAll("tr[data-message]"),
        function (tr) { return tr.dataset.message; }));
      const fresh = Array.prototype.filter.call(template.content.querySelectorAll("tr[data-message]"),
        function (tr) { return !shown.has(tr.dataset.message); });
      if (!fresh.length) return;
      body.querySelectorAll("tr:not([data-message])").forEach(function (tr) { tr.remove(); });
      const first = body.firstElementChild;
      fresh.forEach(function (tr) { body.insertBefore(tr, first); });
      const rows = body.querySelectorAll("tr[data-message]");
      for (let i = Number(table.dataset.limit); i < rows.length; i++) rows[i].remove();
      const count = document.getElementById("message-count");
      if (count && count.dataset.total !== undefined) {
        const total = Number(count.dataset.total) + fresh.length;
        count.dataset.total = String(total);
        count.textContent = total.toLocaleString("en-US") + " message" + (total === 1 ? "" : "s");
        updatePager(document.querySelector("nav.pager[data-noun]"), rows.length, total);
      }
    } catch (err) {
      // the next event or the next round tries again
    } finally {
      tailing = false;
      if (tailAgain) { tailAgain = false; fetchTail(); }
    }
  }

  // The pager of a first page that grew: "1–50 of N", and a link to the next page once
  // there is one (its URL was rendered in data-next).
  function updatePager(pager, shown, total) {
    if (!pager) return;
    const span = pager.querySelector("span");
    const last = Math.min(shown, Number(tailTable().dataset.limit));
    span.textContent = "1–" + last + " of " + total.toLocaleString("en-US") + " " + pager.dataset.noun;
    if (total > last && pager.dataset.next && !pager.querySelector('a[rel="next"]')) {
      const next = document.createElement("a");
      next.href = pager.dataset.next;
      next.rel = "next";
      next.textContent = "next ›";
      pager.appendChild(next);
    }
  }

  function tailSoon() {
    if (!tailTimer) tailTimer = setTimeout(function () { tailTimer = null; fetchTail(); }, TAIL.soon);
    clearTimeout(tailLater);
    tailLater = setTimeout(fetchTail, TAIL.later);
  }
  if (tailTable()) {
    setInterval(function () { if (!document.hidden) fetchTail(); }, TAIL.every);
  }

  function setState(text, on) {
    if (!stateEl) return;
    stateEl.textContent = text;
    stateEl.classList.toggle("on", on);
    stateEl.classList.toggle("off", !on);
  }

  if (stateEl && window.EventSource) {
    let opened = false;
    // A list page asks only for the kinds of event that change its rows.
    // A charger's pages ask only for its events.
    const listTable = document.querySelector("table[data-rows]");
    const listKind = listTable && LISTS[listTable.dataset.rows];
    let stream = "/events";
    if (tailTable() && pageCp) {
      stream += "?types=" + encodeURIComponent(TAIL.types.join(",")) +
        "&chargePointId=" + encodeURIComponent(pageCp);
    } else if (listKind && !feed) {
      stream += "?types=" + encodeURIComponent(listKind.changes.concat(listKind.grows).join(","));
    } else if (pageCp) {
      stream += "?chargePointId=" + encodeURIComponent(pageCp);
    }
    const source = new EventSource(stream);
    source.onopen = function () {
      setState("live", true);
      if (opened) { refresh(); fetchTail(); } // reconnected: catch up on what we missed
      opened = true;
    };
    source.onerror = function () { setState("reconnecting…", false); };
    source.onmessage = function (message) {
      let e;
      try { e = JSON.parse(message.data); } catch (err) { return; }
      addToFeed(e);
      const table = document.querySelector("table[data-rows]");
      if (table && table.dataset.rows === "msg") tailSoon();
      else if (table) onListEvent(table, e);
      else if (!pageCp || e.chargePointId === pageCp) refresh();
    };
  }

  // Commands: POST the form, show the charger's answer (or the problem) under the button.
  // Answers in which the charger says it did not do what was asked.
  const REFUSALS = new Set(["Rejected", "NotSupported", "NotImplemented", "Faulted", "Occupied",
    "Unavailable", "UnlockFailed", "Failed"]);
  function showAnswer(output, ok, verdict, body) {
    output.className = "answer " + (ok ? "ok" : "bad");
    output.textContent = "";
    const strong = document.createElement("span");
    strong.className = "verdict"; strong.textContent = verdict;
    output.append(strong);
    if (body !== undefined) {
      const pre = document.createElement("pre");
      pre.textContent = JSON.stringify(body, null, 2);
      output.append(pre);
    }
  }

  function bindCommands(root) {
    root.querySelectorAll("form.cmd:not([data-bound])").forEach(function (form) {
      form.dataset.bound = "1";
      form.addEventListener("submit", async function (event) {
        event.preventDefault();
        const output = form.querySelector("output.answer");
        const button = form.querySelector("button[type=submit]");
        button.disabled = true;
        output.className = "answer"; output.textContent = "Waiting for the charger's answer…";
        try {
          const response = await fetch(form.action, {
            method: "POST", body: new FormData(form),
            headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
          });
          const body = await response.json().catch(function () { return {}; });
          if (response.ok) {
            const result = body.result || {};
            let verdict = result.status ? "Answer: " + result.status : "Answered";
            if (body.allocated) {
              verdict += " (sent with " + Object.entries(body.allocated).map(function (kv) { return kv[0] + " " + kv[1]; }).join(", ") + ")";
            }
            showAnswer(output, !REFUSALS.has(result.status), verdict, result);
          } else {
            showAnswer(output, false, "Error " + response.status + ": " + (body.detail || response.statusText));
          }
        } catch (err) {
          showAnswer(output, false, "Error: " + err);
        } finally {
          button.disabled = false;
          // The known configuration changes with the answer; the message log is written
          // with the next batch, a moment later.
          refresh();
          setTimeout(refresh, 700);
        }
      });
    });
  }
  bindCommands(document);

  // "Change" next to a configuration key fills the ChangeConfiguration form.
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("button.change-key");
    const form = document.querySelector('form.cmd[data-action="ChangeConfiguration"]');
    if (!button || !form) return;
    form.elements.key.value = button.dataset.key;
    form.elements.value.value = button.dataset.value;
    form.scrollIntoView({ block: "center" });
    form.elements.value.focus();
    form.elements.value.select();
  });
})();
