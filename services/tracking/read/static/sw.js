/* The status page's service worker (served at /sw.js, scope /): "Avísame" subscribed this
   browser to a report's steps; notifications pushes each as {"title", "body"}, shown here, and a
   tap opens the report's status page. */
"use strict";

var FOLIO = /[A-Z]{2,5}-[0-9]{4}-[0-9]{4,9}/;

function pageOf(text) {
  // The body ends with the status page's address; if it is not ours, the folio makes one.
  var link = (text.match(/https?:\/\/\S+/) || [])[0];
  if (link && link.indexOf(self.location.origin + "/") === 0) return link;
  var folio = (text.match(FOLIO) || [])[0];
  return folio ? "/seguimiento/" + folio : "/";
}

self.addEventListener("push", function (event) {
  var message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = {body: event.data ? event.data.text() : ""};
  }
  var title = String(message.title || "Tu reporte");
  var body = String(message.body || "");
  event.waitUntil(self.registration.showNotification(title, {
    body: body, lang: "es", data: {url: pageOf(title + " " + body)}}));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.openWindow(url));
});
