/* Compliance dashboard: refreshes [data-poll-url] regions and auto-submits filter forms.
 *
 * Plain ES2017, no dependencies, no inline handlers (CSP script-src 'self').
 *
 *   <div data-poll-url="/compliance/?X" data-poll-interval="300">...</div>
 *   <span data-updated-at></span>   <span data-poll-status class="poll-status"></span>
 *   <form data-auto-submit> <select name="repo">...</select> </form>
 *
 * Every data-poll-interval seconds (default 300) the region's URL is fetched with the header
 * "X-Fragment: 1"; a 200 (not redirected: a login page counts as failure) replaces the region's
 * content and stamps every [data-updated-at] with the local time. Failures back off
 * exponentially (interval x 2^failures, at most 30 min, +-10 % jitter) and are reported in every
 * [data-poll-status] element. Polling pauses while the tab is hidden and catches up on return.
 * Only window.opsportalPoller.pollNow() is exposed (for tests); it returns a Promise.
 */
(function () {
  "use strict";

  var DEFAULT_INTERVAL_S = 300;
  var MAX_DELAY_MS = 30 * 60 * 1000;
  var JITTER = 0.1;
  var REQUEST_TIMEOUT_MS = 60 * 1000;

  var pollers = [];

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function localTimestamp(d) {
    return (
      d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds())
    );
  }

  function describeDelay(ms) {
    var seconds = Math.round(ms / 1000);
    if (seconds < 90) {
      return seconds + " s";
    }
    return Math.round(seconds / 60) + " min";
  }

  function setStatus(text, isError) {
    var nodes = document.querySelectorAll("[data-poll-status]");
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = text;
      nodes[i].classList.toggle("error", isError);
    }
  }

  function stampUpdatedAt(now) {
    var nodes = document.querySelectorAll("[data-updated-at]");
    var text = localTimestamp(now);
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = text;
      if (nodes[i].tagName === "TIME") {
        nodes[i].setAttribute("datetime", now.toISOString());
      }
    }
  }

  function Poller(element) {
    var seconds = parseFloat(element.getAttribute("data-poll-interval"));
    this.element = element;
    this.url = element.getAttribute("data-poll-url");
    this.intervalMs = (isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_INTERVAL_S) * 1000;
    this.failures = 0;
    this.dueAt = Date.now() + this.intervalMs;
    this.timer = null;
    this.inFlight = null;
  }

  Poller.prototype.schedule = function (delayMs) {
    this.dueAt = Date.now() + delayMs;
    this.arm();
  };

  /* (Re)start the timer for dueAt; while the page is hidden no timer runs at all. */
  Poller.prototype.arm = function () {
    var self = this;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (document.hidden || this.inFlight) {
      return;
    }
    this.timer = setTimeout(function () {
      self.timer = null;
      if (!document.hidden) {
        self.poll();
      }
    }, Math.max(0, this.dueAt - Date.now()));
  };

  Poller.prototype.pause = function () {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  };

  /* Back on the page: poll at once if the wait has elapsed, else wait out the rest. */
  Poller.prototype.resume = function () {
    if (this.inFlight) {
      return;
    }
    if (Date.now() >= this.dueAt) {
      this.poll();
    } else {
      this.arm();
    }
  };

  Poller.prototype.poll = function () {
    var self = this;
    if (this.inFlight) {
      return this.inFlight;
    }
    this.pause();
    this.inFlight = this.fetchOnce()
      .then(
        function (html) {
          self.onSuccess(html);
        },
        function (err) {
          self.onFailure(err);
        }
      )
      .then(function () {
        self.inFlight = null;
        self.arm();
      });
    return this.inFlight;
  };

  Poller.prototype.fetchOnce = async function () {
    var controller = typeof AbortController === "function" ? new AbortController() : null;
    var timeout = controller
      ? setTimeout(function () {
          controller.abort();
        }, REQUEST_TIMEOUT_MS)
      : null;
    this.element.setAttribute("aria-busy", "true");
    try {
      var response;
      try {
        response = await fetch(this.url, {
          method: "GET",
          credentials: "same-origin",
          cache: "no-store",
          headers: { "X-Fragment": "1", Accept: "text/html" },
          signal: controller ? controller.signal : undefined
        });
      } catch (err) {
        throw new Error(err && err.name === "AbortError" ? "timed out" : "network error");
      }
      if (response.redirected) {
        throw new Error("redirected, signed out?");
      }
      if (response.status !== 200) {
        throw new Error("HTTP " + response.status);
      }
      return await response.text();
    } finally {
      if (timeout !== null) {
        clearTimeout(timeout);
      }
      this.element.removeAttribute("aria-busy");
    }
  };

  Poller.prototype.onSuccess = function (html) {
    this.failures = 0;
    this.element.innerHTML = html;
    stampUpdatedAt(new Date());
    setStatus("", false);
    this.dueAt = Date.now() + this.intervalMs;
  };

  Poller.prototype.onFailure = function (err) {
    this.failures += 1;
    var base = Math.min(this.intervalMs * Math.pow(2, this.failures), MAX_DELAY_MS);
    var delay = Math.round(base * (1 - JITTER + Math.random() * 2 * JITTER));
    var reason = err && err.message ? err.message : "error";
    setStatus("Update failed (" + reason + "); retrying in " + describeDelay(delay), true);
    this.dueAt = Date.now() + delay;
  };

  function onVisibilityChange() {
    for (var i = 0; i < pollers.length; i++) {
      if (document.hidden) {
        pollers[i].pause();
      } else {
        pollers[i].resume();
      }
    }
  }

  /* Delegated, so forms inside a refreshed region keep working. */
  function onChange(event) {
    var target = event.target;
    if (!target || target.tagName !== "SELECT" || !target.form) {
      return;
    }
    var form = target.form;
    if (!form.hasAttribute("data-auto-submit")) {
      return;
    }
    if (typeof form.requestSubmit === "function") {
      form.requestSubmit();
    } else {
      form.submit();
    }
  }

  function init() {
    var nodes = document.querySelectorAll("[data-poll-url]");
    for (var i = 0; i < nodes.length; i++) {
      var poller = new Poller(nodes[i]);
      pollers.push(poller);
      poller.arm();
    }
    document.addEventListener("visibilitychange", onVisibilityChange);
    document.addEventListener("change", onChange);
  }

  window.opsportalPoller = Object.freeze({
    pollNow: function () {
      return Promise.all(
        pollers.map(function (p) {
          return p.poll();
        })
      );
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
