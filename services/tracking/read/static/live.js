/* The status page, live: notifications' stream of steps (Server-Sent Events) says when a step
   happened, and the page fetches itself again (same address: a private link's ?token= too) and
   takes the fresh #reporte, so what it shows is rendered in one place. A reconnecting
   EventSource resumes after the last step it heard (Last-Event-ID). And "Avísame": web push to
   this browser, through the service worker at /sw.js. */
(function () {
  "use strict";
  var box = document.getElementById("reporte");
  if (!box || !box.dataset.notifications || !box.dataset.folio) return;
  var base = box.dataset.notifications;
  var folio = box.dataset.folio;
  var shown = Number(box.dataset.version) || 0; // the stream version the page shows
  var heard = shown; // the latest step the stream told of
  var fetching = false;
  var tries = 0;

  function versionOf(element) {
    return element ? Number(element.dataset.version) || 0 : 0;
  }

  // Tracking's views may lag the event a moment: ask again until the page holds the step.
  function refresh() {
    if (fetching) return;
    fetching = true;
    fetch(location.href, {cache: "no-store", credentials: "same-origin",
                          headers: {Accept: "text/html"}})
      .then(function (answer) {
        if (!answer.ok) throw new Error("status " + answer.status);
        return answer.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("reporte");
        if (fresh && versionOf(fresh) > shown) {
          box.innerHTML = fresh.innerHTML;
          shown = versionOf(fresh);
          box.dataset.version = String(shown);
        }
      })
      .catch(function () {})
      .then(function () {
        fetching = false;
        if (shown >= heard) {
          tries = 0;
        } else if (tries < 20) {
          tries += 1;
          setTimeout(refresh, Math.min(250 * tries, 3000));
        }
      });
  }

  var indicator = document.getElementById("en-vivo");
  function listen() {
    var source = new EventSource(base + "/live/" + encodeURIComponent(folio) +
                                 "?after=" + Math.max(shown, heard));
    source.addEventListener("open", function () {
      if (indicator) indicator.hidden = false;
    });
    source.addEventListener("error", function () {
      if (indicator) indicator.hidden = true;
      // The browser retries a dropped stream by itself; one refused for good, we retry.
      if (source.readyState === EventSource.CLOSED) setTimeout(listen, 10000);
    });
    source.addEventListener("step", function (event) {
      heard = Math.max(heard, Number(event.lastEventId) || 0);
      tries = 0;
      if (heard > shown) refresh();
    });
  }
  if (window.EventSource) listen();

  // ---- Avísame: each step as a notification of this browser ----------------------------------

  var offer = document.getElementById("avisos-push");
  var button = document.getElementById("avisame");
  var said = document.getElementById("avisame-estado");
  if (!offer || !button || !("serviceWorker" in navigator) || !("PushManager" in window) ||
      !window.Notification || Notification.permission === "denied") return;

  function bytes(text) { // the VAPID key, base64url -> what pushManager.subscribe takes
    var raw = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
    return out;
  }

  function subscribe(key) {
    button.disabled = true;
    said.textContent = "";
    navigator.serviceWorker.register("/sw.js", {scope: "/"})
      .then(function () { return navigator.serviceWorker.ready; })
      .then(function (registration) {
        return registration.pushManager.getSubscription().then(function (existing) {
          return existing || registration.pushManager.subscribe(
            {userVisibleOnly: true, applicationServerKey: bytes(key)});
        });
      })
      .then(function (subscription) {
        // text/plain: a simple request, no CORS preflight.
        return fetch(base + "/reports/" + encodeURIComponent(folio) + "/push", {
          method: "POST", headers: {"Content-Type": "text/plain"},
          body: JSON.stringify({subscription: subscription.toJSON(), language: "es"})});
      })
      .then(function (answer) {
        if (!answer.ok) throw new Error("status " + answer.status);
        button.hidden = true;
        said.textContent = "Listo: este navegador te avisará de cada paso.";
      })
      .catch(function () {
        button.disabled = false;
        said.textContent = "No pudimos activar los avisos en este navegador. Intenta de nuevo.";
      });
  }

  fetch(base + "/push/key")
    .then(function (answer) { return answer.ok ? answer.json() : {}; })
    .then(function (answer) {
      if (!answer || typeof answer.key !== "string" || !answer.key) return;
      button.addEventListener("click", function () { subscribe(answer.key); });
      offer.hidden = false;
    })
    .catch(function () {});
})();
