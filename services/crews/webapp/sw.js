// The field app's service worker: keeps the app's own files (its shell) so that the app opens
// with no network. Only those: the API's answers (jobs, catalog, steps, photos) always go to the
// network and are never kept here; the app keeps its own last copy of the jobs and the catalog,
// and shows them as read at that time, never as fresh.

const CACHE = "cuadrillas-shell-v1";
const SHELL = ["./", "app.js", "state.js", "view.js", "actions.js", "queue.js", "map.js",
               "signin.js", "style.css", "config.json", "manifest.webmanifest", "icon.svg",
               "icon-192.png", "icon-512.png"];
const HOME = new URL("./", self.location.href);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((name) => name !== CACHE)
                                      .map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

/** The cache key of a request for one of the shell's files, or null for anything else. */
function shellKey(request) {
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== HOME.origin
      || !url.pathname.startsWith(HOME.pathname)) return null;
  const name = url.pathname.slice(HOME.pathname.length) || "./";
  return SHELL.includes(name) ? new URL(name, HOME).href : null;
}

self.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (key) event.respondWith(networkElseKept(event.request, key));
  // Anything else is not answered here: the browser sends it to the network as usual.
});

// The network first, so that a new version arrives as soon as it is deployed; the kept copy
// only when there is no network.
async function networkElseKept(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const answer = await fetch(request);
    if (answer.ok) await cache.put(key, answer.clone());
    return answer;
  } catch (error) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw error;
  }
}
