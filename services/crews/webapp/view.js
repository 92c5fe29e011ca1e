// Drawing the app from its state: the outbox, the jobs (list and map), the chosen job.

import { claimsOf, currentSession } from "./signin.js";
import { distance, drawMap } from "./map.js";
import {
  $, MOVES, STAGES, WHAT, allowed, clock, day, el, label, nextSteps, say, selectedJob, shownStep,
  state, waiting, waitingSteps,
} from "./state.js";

// ---- drawing ---------------------------------------------------------------------------------

function describe(item) {
  const what = item.kind === "photo" ? `Foto (${STAGES[item.body.stage] || item.body.stage})`
    : WHAT[item.body.step];
  return `${item.folio} · ${what} · ${clock.format(new Date(item.body.occurred_at))}`;
}

export function render() {
  $("pendientes").textContent = String(state.queue.length);
  $("cola").classList.toggle("hay", state.queue.length > 0);
  $("lista-pendientes").replaceChildren(...state.queue.map((item) => el("li", {
    textContent: describe(item), className: `pendiente-${item.kind}` })));
  $("rechazos").hidden = !state.refused.length;
  $("rechazados").replaceChildren(...state.refused.map((r) => el("li", {
    textContent: `${r.folio} · ${r.what}: ${r.message || "rechazado"} (${r.code})` })));
  $("estado-red").textContent = navigator.onLine ? "En línea" : "Sin conexión";
  $("estado-red").classList.toggle("fuera", !navigator.onLine);
  who();
  renderJobs();
  renderDetail();
  drawMap($("mapa"), state.jobs.map((job) => ({ ...job, shown: shownStep(job) })), state.me, {
    tiles: state.config.tiles, selected: state.selected, pick: select });
}

function renderJobs() {
  const when = state.jobsAt ? clock.format(new Date(state.jobsAt)) : "—";
  say("trabajos-estado", state.jobs.length
    ? `${state.jobs.length} trabajo(s) abiertos (${when})` : `Sin trabajos abiertos (${when})`);
  $("trabajos").replaceChildren(...state.jobs.map((job) => {
    const step = shownStep(job);
    const away = state.me && job.location && Number.isFinite(job.location.lat)
      ? `a ${(distance(state.me, job.location) / 1000).toFixed(1)} km` : null;
    const count = waiting(job.folio).length;
    const open = el("button", { type: "button", className: "abrir" },
      el("strong", { textContent: job.folio }), " ",
      el("span", { className: "paso", textContent: label(step) }),
      el("span", { className: "servicio", textContent: job.service_name || job.service_code }),
      el("span", { className: "lugar", textContent: (job.location || {}).address || "" }),
      away && el("span", { className: "distancia", textContent: away }),
      count ? el("span", { className: "espera", textContent: `${count} por enviar` }) : null);
    open.addEventListener("click", () => select(job.folio));
    const item = el("li", { id: `trabajo-${job.folio}`, className: "trabajo" }, open);
    item.dataset.step = step;
    return item;
  }));
}

function who() {
  const session = currentSession();
  const claims = session ? claimsOf(session.access_token) : {};
  const crew = state.crew ? `${state.crew.code} · ${state.crew.name}` : claims.crew_id;
  const name = claims.name || claims.preferred_username || claims.sub;
  $("sesion").textContent = [name, crew && `Cuadrilla ${crew}`]
    .filter(Boolean).join(" · ");
}

function renderDetail() {
  const job = selectedJob();
  $("detalle").hidden = !job;
  $("lista").hidden = Boolean(job);
  if (!job) return;
  const step = shownStep(job);
  const next = nextSteps(job);
  $("detalle-folio").textContent = job.folio;
  $("detalle-servicio").textContent = job.service_name || job.service_code || "";
  $("detalle-direccion").textContent = (job.location || {}).address || "sin dirección";
  $("detalle-descripcion").textContent = job.description || "";
  $("detalle-paso").textContent = label(step);
  $("detalle-paso").dataset.step = step;
  const count = waitingSteps(job.folio).length;
  $("detalle-pendiente").textContent = count ? `(${count} paso(s) por enviar)` : "";
  $("detalle-vence").textContent = job.due_at ? `Fecha límite: ${day.format(new Date(job.due_at))}`
    : "";
  $("detalle-fotos").replaceChildren(...(job.photos || []).map((url) => el("img", {
    src: url, alt: "Foto del reporte", loading: "lazy" })));
  for (const move of MOVES) $(`paso-${move}`).hidden = !next.includes(move);
  $("eta").hidden = !next.includes("en_route");
  $("form-materiales").hidden = !next.includes("materials");
  $("form-terminar").hidden = !next.includes("work_completed");
  $("form-foto").hidden = !allowed(step, "photo");
  $("material-lista").replaceChildren(...state.items.map((item, i) => {
    const material = state.materials.find((m) => m.code === item.code);
    const drop = el("button", { type: "button", className: "discreto", textContent: "Quitar" });
    drop.addEventListener("click", () => { state.items.splice(i, 1); render(); });
    return el("li", { textContent: `${item.quantity} ${material ? material.unit : ""} · `
      + `${material ? material.description : item.code} ` }, drop);
  }));
}

export function fillCatalog() {
  const select = $("material-codigo");
  const chosen = select.value;
  select.replaceChildren(...state.materials.map((m) => el("option", {
    value: m.code, textContent: `${m.description} (${m.unit})` })));
  if (chosen) select.value = chosen;
}

export function select(folio) {
  state.selected = folio;
  state.items = [];
  say("detalle-error", "");
  render();
  window.scrollTo(0, 0);
}
