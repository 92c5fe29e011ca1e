// What the member does: each step, photo, materials entry or end of work stamped with its own
// key and this phone's time, put in the outbox, shown at once, and sent when possible.

import { enqueue, keep, pending } from "./queue.js";
import { signOut } from "./signin.js";
import { $, AMOUNT, el, say, selectedJob, state } from "./state.js";
import { render } from "./view.js";

const RETRY_MS = 20000;
let sendNow = () => {}; // the app's send(), given to wire()

// ---- what the member does --------------------------------------------------------------------

function here() {
  if (state.me && Date.now() - state.me.at < 120000) {
    return Promise.resolve({ lat: state.me.lat, long: state.me.long });
  }
  if (!navigator.geolocation) return Promise.resolve(null);
  return new Promise((resolve) => navigator.geolocation.getCurrentPosition((fix) => {
    state.me = { lat: fix.coords.latitude, long: fix.coords.longitude, at: Date.now() };
    resolve({ lat: state.me.lat, long: state.me.long });
  }, () => resolve(null), { enableHighAccuracy: true, timeout: 5000, maximumAge: 60000 }));
}

let recording = false; // a second tap while the first waits for the position records nothing

async function queue(kind, body, more = {}) {
  const job = selectedJob();
  if (!job || recording) return;
  recording = true;
  try {
    const stamped = { step_id: crypto.randomUUID(), occurred_at: new Date().toISOString(),
                      ...body };
    if (["en_route", "arrived"].includes(body.step)) {
      const place = await here();
      if (place) stamped.position = place;
    }
    await enqueue({ kind, folio: job.folio, body: stamped, ...more });
    state.queue = await pending();
  } finally {
    recording = false;
  }
  say("detalle-error", "");
  render();
  sendNow();
}

function refuse(message) { say("detalle-error", message); }

async function shrink(file) {
  // A phone's photo can be many megabytes: sent smaller (and kept smaller while offline).
  if (file.size <= 1_500_000 || !/^image\/(jpeg|png|webp)$/.test(file.type)) return file;
  try {
    const image = await createImageBitmap(file);
    const scale = Math.min(1, 2048 / Math.max(image.width, image.height));
    const canvas = el("canvas", { width: Math.round(image.width * scale),
                                  height: Math.round(image.height * scale) });
    canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve) => canvas.toBlob((blob) => resolve(blob || file),
                                                        "image/jpeg", 0.85));
  } catch {
    return file;
  }
}

export function wire(send) {
  sendNow = send;
  $("paso-dispatched").addEventListener("click", () => queue("step", { step: "dispatched" }));
  $("paso-arrived").addEventListener("click", () => queue("step", { step: "arrived" }));
  $("paso-en_route").addEventListener("click", () => {
    const minutes = $("eta-minutos").value.trim();
    if (!minutes) return queue("step", { step: "en_route" });
    const count = Number(minutes);
    if (!Number.isInteger(count) || count < 1 || count > 600) {
      return refuse("La llegada estimada va en minutos enteros, de 1 a 600.");
    }
    $("eta-minutos").value = "";
    return queue("step", { step: "en_route",
                           eta: new Date(Date.now() + count * 60000).toISOString() });
  });
  const addItem = () => {
    const quantity = $("material-cantidad").value.trim().replace(",", ".");
    if (!$("material-codigo").value) return refuse("Elige un material del catálogo.");
    if (!AMOUNT.test(quantity) || Number(quantity) <= 0) {
      return refuse("La cantidad es un número, por ejemplo 0.5");
    }
    state.items.push({ code: $("material-codigo").value, quantity });
    $("material-cantidad").value = "";
    render();
    return true;
  };
  $("material-agregar").addEventListener("click", addItem);
  $("form-materiales").addEventListener("submit", (event) => {
    event.preventDefault();
    if ($("material-cantidad").value.trim() && addItem() !== true) return;
    if (!state.items.length) return refuse("Agrega al menos un material con su cantidad.");
    const items = state.items.splice(0);
    queue("step", { step: "materials", items });
  });
  $("form-terminar").addEventListener("submit", (event) => {
    event.preventDefault();
    const notes = $("notas").value.trim();
    if (!notes) return refuse("Escribe qué se hizo.");
    $("notas").value = "";
    return queue("step", { step: "work_completed", notes });
  });
  $("form-foto").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("foto-archivo").files[0];
    if (!file || !file.type.startsWith("image/")) return refuse("Toma o elige una foto.");
    const caption = $("foto-pie").value.trim();
    if (!caption) return refuse("Describe en pocas palabras lo que muestra la foto.");
    const photo = await shrink(file);
    const body = { caption, stage: $("foto-etapa").value };
    $("form-foto").reset();
    return queue("photo", body, { photo, name: photo === file && file.name || "foto.jpg" });
  });
  $("volver").addEventListener("click", () => { state.selected = null; render(); });
  $("actualizar").addEventListener("click", send);
  $("sincronizar").addEventListener("click", send);
  $("rechazos-visto").addEventListener("click", () => {
    state.refused = [];
    keep("refused", []);
    render();
  });
  $("salir").addEventListener("click", () => {
    const left = state.queue.length;
    if (left && !confirm(`Hay ${left} registro(s) sin enviar; se enviarán cuando alguien `
                         + "vuelva a entrar en este teléfono. ¿Salir?")) return;
    signOut();
    location.reload();
  });
  window.addEventListener("online", send);
  window.addEventListener("offline", render);
  setInterval(send, RETRY_MS);
  if (navigator.geolocation) {
    navigator.geolocation.watchPosition((fix) => {
      state.me = { lat: fix.coords.latitude, long: fix.coords.longitude, at: Date.now() };
      render();
    }, () => {}, { enableHighAccuracy: true, maximumAge: 60000 });
  }
}
