// The phone's outbox. Every update goes into IndexedDB first, with its own key (step_id) and
// the moment it happened by this phone's clock, and leaves in the order it was made: the steps
// in a row as one /field/sync batch, each photo (its file kept in IndexedDB) through the photo
// door. The service records a step_id once, so sending again after a lost answer is harmless.
// A refusal (4xx) is the crew's to see and leaves the queue; a network error or a 5xx keeps
// everything for the next try; an expired session keeps everything until the member signs in.

const DB_NAME = "expediente-cuadrillas";
const MAX_BATCH = 200; // what /field/sync takes at once

let opened = null;

function database() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => {
      request.result.createObjectStore("queue", { keyPath: "id", autoIncrement: true });
      request.result.createObjectStore("kept", { keyPath: "key" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

async function run(store, mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const request = work(tx.objectStore(store));
    tx.oncomplete = () => resolve(request && request.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** Put an update in the queue: {kind: "step" | "photo", folio, body, photo?}. */
export function enqueue(item) {
  return run("queue", "readwrite", (store) => store.add({ ...item, queued_at: Date.now() }));
}

/** What waits to be sent, oldest first. */
export function pending() {
  return run("queue", "readonly", (store) => store.getAll());
}

function removeAll(ids) {
  return run("queue", "readwrite", (store) => { ids.forEach((id) => store.delete(id)); });
}

/** The app's own last copy of something the service answered (jobs, the catalog), with when
 * it was read: shown as such offline, never as if it were fresh. */
export function keep(key, value) {
  return run("kept", "readwrite", (store) => store.put({ key, value, at: Date.now() }));
}

export function kept(key) {
  return run("kept", "readonly", (store) => store.get(key));
}

function refusal(status, body) {
  const error = (body && body.error) || {};
  const fields = body && body.errors ? Object.values(body.errors).flat(Infinity) : [];
  return { status, code: error.code || String(status),
           message: error.message || fields.filter((f) => typeof f === "string").join("; ") };
}

/** Drains the queue: `drain()` runs one pass at a time and says how it ended ("done",
 * "offline", "network", "server" or "auth"). `hooks`: token() -> a bearer token or null,
 * applied(item, report), refused(item, refusal), changed(). */
export class Outbox {
  constructor(apiBase, hooks) {
    this.apiBase = apiBase;
    this.hooks = hooks;
    this.running = null;
    this.again = false;
  }

  drain() {
    if (this.running) {
      this.again = true; // an update queued as the pass ends goes out now, not at the next try
      return this.running;
    }
    this.running = (async () => {
      let outcome;
      do {
        this.again = false;
        outcome = await this.pass();
      } while (this.again && outcome === "done");
      return outcome;
    })().finally(() => { this.running = null; this.hooks.changed(); });
    return this.running;
  }

  async pass() {
    if (!navigator.onLine) return "offline";
    for (;;) {
      const items = await pending();
      if (!items.length) return "done";
      const steps = [];
      for (const item of items) {
        if (item.kind !== "step" || steps.length === MAX_BATCH) break;
        steps.push(item);
      }
      const outcome = steps.length ? await this.sendSteps(steps) : await this.sendPhoto(items[0]);
      this.hooks.changed();
      if (outcome !== "sent") return outcome;
    }
  }

  async post(path, body, headers = {}) {
    const token = await this.hooks.token();
    if (!token) return { status: 401, body: null };
    let answer;
    try {
      answer = await fetch(`${this.apiBase}${path}`, {
        method: "POST", body, headers: { ...headers, Authorization: `Bearer ${token}` } });
    } catch {
      return null; // no network: the item stays
    }
    return { status: answer.status, body: await answer.json().catch(() => null) };
  }

  /** What a non-2xx answer means for the queue: wait (network, server, auth) or refused. */
  static trouble(answer) {
    if (!answer) return "network";
    if (answer.status === 401) return "auth";
    if (answer.status >= 500 || answer.status === 429 || answer.status === 408) return "server";
    return null;
  }

  async sendSteps(items) {
    const updates = items.map((item) => ({ folio: item.folio, ...item.body }));
    const answer = await this.post("/field/sync", JSON.stringify({ updates }),
                                   { "Content-Type": "application/json" });
    const trouble = Outbox.trouble(answer);
    if (trouble) return trouble;
    if (answer.status !== 200) {
      // The batch as a whole was refused (one update the service will not read): send the
      // first alone, so that only what is wrong is refused.
      return items.length > 1 ? this.sendOneStep(items[0]) : this.settle(items[0], answer);
    }
    const byKey = new Map(items.map((item) => [`${item.folio} ${item.body.step_id}`, item]));
    const done = [];
    let outcome = "sent";
    // In the order they were applied (the moment each happened): after one that must be
    // retried, the later ones are kept too (sent again, each is recorded once).
    for (const result of answer.body.results) {
      const item = byKey.get(`${result.folio} ${result.step_id}`);
      if (!item) continue;
      const status = result.status;
      if (outcome === "sent" && status >= 200 && status < 300) {
        this.hooks.applied(item, result.report);
        done.push(item.id);
      } else if (outcome === "sent" && !Outbox.trouble({ status })) {
        this.hooks.refused(item, refusal(status, { error: result.error }));
        done.push(item.id);
      } else {
        outcome = Outbox.trouble({ status }) || outcome;
      }
    }
    await removeAll(done);
    return outcome;
  }

  async sendOneStep(item) {
    const answer = await this.post(`/field/reports/${encodeURIComponent(item.folio)}/steps`,
                                   JSON.stringify(item.body),
                                   { "Content-Type": "application/json" });
    return Outbox.trouble(answer) || this.settle(item, answer);
  }

  async sendPhoto(item) {
    const form = new FormData();
    form.append("photo", item.photo, item.name || "foto.jpg");
    for (const [field, value] of Object.entries(item.body)) form.append(field, value);
    const answer = await this.post(`/field/reports/${encodeURIComponent(item.folio)}/photos`,
                                   form);
    return Outbox.trouble(answer) || this.settle(item, answer);
  }

  async settle(item, answer) {
    if (answer.status >= 200 && answer.status < 300) {
      this.hooks.applied(item, answer.body);
    } else {
      this.hooks.refused(item, refusal(answer.status, answer.body));
    }
    await removeAll([item.id]);
    return "sent";
  }
}
