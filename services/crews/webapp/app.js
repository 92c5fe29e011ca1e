// The crews' field app: the member's jobs as a list and on a map, the next step of each, photos,
// materials and the end of the work. What the member records goes to the outbox first
// (queue.js) and shows at once, moved on by the report's own lifecycle (config.json's `steps`,
// from shared/contracts/lifecycle.py); the outbox sends it whenever there is a network.

import { completeSignIn, currentSession, renew, signIn } from "./signin.js";
import { Outbox, keep, kept, pending } from "./queue.js";
import { $, WHAT, clock, say, state } from "./state.js";
import { fillCatalog, render } from "./view.js";
import { wire } from "./actions.js";

// ---- talking to the service ------------------------------------------------------------------

async function token() {
  const session = currentSession();
  if (!session) return null;
  if (!session.expired) return session.access_token;
  const renewed = await renew(state.config);
  return renewed ? renewed.access_token : null;
}

async function read(path) {
  const bearer = await token();
  if (!bearer) return { status: 401 };
  try {
    return await fetch(`${state.config.api_base}${path}`, {
      headers: { Authorization: `Bearer ${bearer}` }, cache: "no-store" });
  } catch {
    return null;
  }
}

function sessionEnded() {
  say("aviso", "Tu sesión terminó: vuelve a iniciar sesión para enviar lo pendiente.");
  showSignIn(false);
}

async function loadJobs() {
  if (!navigator.onLine) return;
  const [jobs, catalog] = [await read("/field/jobs"), await read("/materials")];
  if (!jobs) return;
  if (jobs.status === 401) return sessionEnded();
  if (!jobs.ok) return say("aviso", `No se pudo leer la lista de trabajos (${jobs.status}).`);
  const body = await jobs.json();
  for (const job of body.jobs) {
    // The list follows tracking's events a moment behind: a step the service already answered
    // for is newer than a list that does not show it yet.
    const seen = state.seen[job.folio];
    if (seen && seen.version > job.version) {
      Object.assign(job, { step: seen.step, next_steps: null });
    } else {
      delete state.seen[job.folio];
    }
  }
  Object.assign(state, { jobs: body.jobs, crew: body.crew, jobsAt: Date.now() });
  await keep("jobs", body);
  if (catalog && catalog.ok) {
    state.materials = (await catalog.json()).materials;
    await keep("materials", state.materials);
    fillCatalog();
  }
  say("aviso", "");
}

// How the last try to send ended, in the member's words.
const OUTCOMES = {
  done: "Todo enviado",
  offline: "Sin conexión: se enviará al volver la red",
  network: "El servicio no contesta: se reintentará",
  server: "El servicio tuvo un problema: se reintentará",
  auth: "Falta iniciar sesión para enviar",
};

async function send() {
  const outcome = await state.outbox.drain();
  state.queue = await pending();
  say("envio", `${OUTCOMES[outcome]} (${clock.format(new Date())}).`);
  if (outcome === "auth") sessionEnded();
  if (outcome === "done") await loadJobs();
  render();
}

const hooks = {
  token,
  changed: async () => { state.queue = await pending(); render(); },
  applied: (item, report) => {
    const job = state.jobs.find((j) => j.folio === item.folio);
    if (!job || !report || !report.step) return;
    state.seen[job.folio] = { step: report.step, version: report.version };
    Object.assign(job, { step: report.step, next_steps: null });
    if (report.url && !(job.photos || []).includes(report.url)) {
      job.photos = [...(job.photos || []), report.url];
    }
  },
  refused: (item, why) => {
    const what = item.kind === "photo" ? "Foto" : WHAT[item.body.step];
    state.refused.push({ folio: item.folio, what, ...why });
    keep("refused", state.refused);
  },
};

// ---- start -----------------------------------------------------------------------------------

function showSignIn(only = true) {
  $("entrada").hidden = false;
  $("principal").hidden = only;
  $("entrar").hidden = !state.config.oidc;
  $("entrar-demo").hidden = !state.config.demo_url;
  $("entrar-demo").href = state.config.demo_url || "demo";
}

async function start() {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch(() => {});
  state.config = await (await fetch("config.json")).json();
  $("entrar").addEventListener("click", () => signIn(state.config).catch((error) => {
    say("entrada-error", `No se pudo iniciar sesión: ${error.message}`);
  }));
  try {
    await completeSignIn(state.config);
  } catch (error) {
    say("entrada-error", `No se pudo iniciar sesión: ${error.message}`);
  }
  const session = currentSession();
  if (!session) return showSignIn();
  $("salir").hidden = false;
  $("principal").hidden = false;
  const [jobs, materials, refused] = [await kept("jobs"), await kept("materials"),
                                      await kept("refused")];
  if (jobs) Object.assign(state, { jobs: jobs.value.jobs, crew: jobs.value.crew, jobsAt: jobs.at });
  state.materials = (materials && materials.value) || [];
  state.refused = (refused && refused.value) || [];
  fillCatalog();
  state.outbox = new Outbox(state.config.api_base, hooks);
  state.queue = await pending();
  wire(send);
  render();
  await send();
}

start().catch((error) => say("aviso", `La aplicación no pudo arrancar: ${error.message}`));
