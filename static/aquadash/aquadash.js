// Copy buttons, closing a preview, the "/" shortcut, polling that pauses while the tab is hidden, and the tab
// telling that the job ended.
// Plain DOM code, no eval and no inline handlers, so the strict CSP holds.
(function () {
  "use strict";

  // Copy buttons and live-refresh notes only make sense with JavaScript, so they start hidden.
  function reveal(root) {
    root.querySelectorAll("button[data-copy], button[data-copy-from], .needs-js").forEach(function (element) {
      element.hidden = false;
    });
  }
  document.addEventListener("DOMContentLoaded", function () { reveal(document); });
  document.addEventListener("htmx:afterSettle", function (event) { reveal(event.detail.elt); });

  // navigator.clipboard exists only on HTTPS and localhost; an intranet over plain HTTP gets
  // the older selection-based copy.
  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand("copy");
    area.remove();
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  // A button with data-copy-from copies what that address answers (a batch's every segment ID,
  // too many to carry in the page). A ClipboardItem takes the text still on its way, so the
  // browser counts the copy as the click's even though the text arrives later.
  function copyFrom(url) {
    var text = fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.text();
    });
    if (window.ClipboardItem && navigator.clipboard && window.isSecureContext) {
      var blob = text.then(function (body) { return new Blob([body], { type: "text/plain" }); });
      return navigator.clipboard.write([new ClipboardItem({ "text/plain": blob })]);
    }
    return text.then(copy);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy], button[data-copy-from]");
    if (!button) return;
    var label = button.textContent;
    var copied = button.dataset.copyFrom ? copyFrom(button.dataset.copyFrom) : copy(button.dataset.copy);
    copied.then(
      function () { button.textContent = "Copied"; },
      function () {
        button.textContent = button.dataset.copyFrom
          ? "Copy failed: use the .txt"
          : "Copy failed: select the text";
      }
    ).then(function () {
      setTimeout(function () { button.textContent = label; }, 1500);
    });
  });

  // "Close preview" is a link back to the job page, for the preview's own page; opened under
  // its batch on the job page, it empties the preview's slot instead and gives the focus back
  // to the Preview link that opened it.
  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-close-preview]");
    var slot = close && close.closest(".preview-slot");
    if (!slot) return;
    event.preventDefault();
    var opener = document.querySelector('[hx-target="#' + slot.id + '"]');
    slot.replaceChildren();
    if (opener) opener.focus();
  });

  // "/" jumps to the job field. It is typed only where it can belong: never into the empty job
  // field (a job ID has no "/"; the hint invites pressing it while the field has focus).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var field = document.getElementById("id_job") || document.getElementById("header-job");
    var typing = event.target.closest("input, textarea, select");
    if (!field || (typing && !(event.target === field && field.value === ""))) return;
    event.preventDefault();
    field.focus();
    field.select();
  });

  // The live section carries data-poll="<seconds>" until the job is final; the final fragment
  // has none, so polling ends by itself. Nothing is requested while the tab is hidden, unless
  // the reader pressed "Also notify in this browser" (below).
  var timer = null;
  function schedule() {
    clearTimeout(timer);
    var live = document.querySelector("[data-poll]");
    if (!live) return;
    timer = setTimeout(function () {
      // A hidden tab asks nothing, unless its reader asked to be notified in this browser.
      if (document.visibilityState === "visible" || localStorage.getItem(notifyKey())) {
        htmx.trigger(live, "poll");
      }
      else schedule();
    }, Number(live.dataset.poll) * 1000);
  }
  document.addEventListener("DOMContentLoaded", schedule);
  document.addEventListener("htmx:afterSettle", schedule);
  document.addEventListener("visibilitychange", function () {
    var live = document.querySelector("[data-poll]");
    if (document.visibilityState === "visible" && live) htmx.trigger(live, "poll");
  });
  // A poll answered 4xx (access revoked, signed out elsewhere) ends polling with a notice;
  // other failures keep the last good state and try again later.
  document.addEventListener("htmx:responseError", function (event) {
    var live = event.detail.elt;
    if (!live.matches || !live.matches("[data-poll]")) return;
    var status = event.detail.xhr.status;
    if (status >= 400 && status < 500) {
      live.removeAttribute("data-poll");
      var notice = document.createElement("div");
      notice.className = "banner banner-bad";
      notice.textContent = "This job is no longer available to you here. Reload the page to check.";
      live.prepend(notice);
    } else {
      schedule();
    }
  });
  document.addEventListener("htmx:sendError", schedule);

  // A job that ends while its page is open says so in the tab: the title gets a mark, the
  // favicon turns green or red, and, for whoever pressed "Also notify in this browser", a
  // browser notification. The watch card reloads on the same event (hx-trigger).
  var wasLive = false;
  document.addEventListener("DOMContentLoaded", function () {
    wasLive = Boolean(document.querySelector("#live[data-poll]"));
  });
  document.addEventListener("htmx:afterSettle", function () {
    var live = document.querySelector("#live");
    if (!live) return;
    if (wasLive && live.dataset.ended) ended(live.dataset.ended === "ok");
    wasLive = live.hasAttribute("data-poll");
  });

  function ended(ok) {
    document.title = (ok ? "\u2713 " : "\u2717 ") + document.title;
    var icon = document.querySelector("link[rel=icon]");
    if (icon) icon.href = ok ? icon.dataset.ok : icon.dataset.bad;
    document.body.dispatchEvent(new CustomEvent("aquadash:ended"));
    if (localStorage.getItem(notifyKey()) && "Notification" in window
        && Notification.permission === "granted") {
      new Notification(document.title, { body: location.href, tag: notifyKey() });
    }
    localStorage.removeItem(notifyKey());
  }

  function notifyKey() { return "aquadash:notify:" + location.pathname; }

  function showNotifyState(root) {
    var button = root.querySelector && root.querySelector("[data-notify-browser]");
    if (!button) return;
    var state = button.parentNode.querySelector("[data-notify-state]");
    if (!("Notification" in window)) {
      button.hidden = true;
      state.textContent = "This browser cannot show notifications.";
    } else if (localStorage.getItem(notifyKey()) && Notification.permission === "granted") {
      button.hidden = true;
      state.textContent = "This browser will notify you too, while this tab is open.";
    } else if (Notification.permission === "denied") {
      state.textContent = "Notifications are blocked for this site in this browser.";
    }
  }
  document.addEventListener("htmx:afterSettle", function (event) { showNotifyState(event.detail.elt); });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-notify-browser]");
    if (!button || !("Notification" in window)) return;
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") localStorage.setItem(notifyKey(), "1");
      showNotifyState(button.closest(".card"));
    });
  });
})();
