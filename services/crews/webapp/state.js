// What the app holds (the jobs as last read, the outbox's items, the catalog …) and the report's
// lifecycle as config.json gives it (shared/contracts/lifecycle.py): a job's shown step is the
// service's, moved on by the steps still waiting to be sent.

export const $ = (id) => document.getElementById(id);
export const AMOUNT = /^\d{1,9}(\.\d{1,6})?$/; // a decimal quantity, as the field API reads it
export const MOVES = ["dispatched", "en_route", "arrived"];
export const WHAT = { dispatched: "Salida", en_route: "En camino", arrived: "Llegada",
               materials: "Materiales", work_completed: "Trabajo terminado" };
export const STAGES = { before: "antes", during: "durante", after: "después" };
export const clock = new Intl.DateTimeFormat("es-MX", { hour: "2-digit", minute: "2-digit",
                                                      second: "2-digit" });
export const day = new Intl.DateTimeFormat("es-MX", { dateStyle: "medium", timeStyle: "short" });

export const state = {
  config: null, crew: null, jobs: [], jobsAt: null, materials: [], queue: [], refused: [],
  selected: null, items: [], me: null, outbox: null,
  seen: {}, // folio -> the step and version the service last answered for it
};

export function el(tag, props = {}, ...children) {
  const element = Object.assign(document.createElement(tag), props);
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

export function say(id, text) {
  $(id).textContent = text || "";
  if (id === "aviso") $(id).hidden = !text;
}

// ---- the lifecycle, for what waits to be sent --------------------------------------------------

export function ruleOf(fieldStep) { return state.config.steps[fieldStep]; }
export function allowed(step, fieldStep) { return ruleOf(fieldStep).allowed_in.includes(step); }
export function stepAfter(step, fieldStep) {
  const rule = ruleOf(fieldStep);
  return rule.moves_to && rule.moves_from.includes(step) ? rule.moves_to : step;
}
export function waiting(folio) { return state.queue.filter((item) => item.folio === folio); }
export function waitingSteps(folio) {
  return waiting(folio).filter((item) => item.kind === "step");
}
export function shownStep(job) {
  return waitingSteps(job.folio).reduce((step, item) => stepAfter(step, item.body.step), job.step);
}
export function nextSteps(job) {
  if (!waitingSteps(job.folio).length && Array.isArray(job.next_steps)) return job.next_steps;
  const step = shownStep(job);
  return Object.keys(WHAT).filter((fieldStep) => allowed(step, fieldStep));
}
export function label(step) { return state.config.step_labels[step] || step; }
export function selectedJob() {
  return state.jobs.find((job) => job.folio === state.selected) || null;
}
