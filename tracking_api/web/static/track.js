// The customer's tracking page: /track/{ref} with the customer's key, or /s/{token} (a share link:
// the token is the credential). Status steps, timeline, ETA, item progress and a small map, live.
"use strict";

const STEPS = ["pending", "loading", "loaded", "in_transit", "arrived", "delivered"];
const PROGRESS = { pending: "progress.loading", loading: "progress.loading", loaded: "progress.loading",
                   in_transit: "progress.on_the_way", arrived: "progress.delivered", delivered: "progress.delivered" };
const [, mode, id] = location.pathname.split("/");
// staff open a customer's shipment from the console with ?customer_id=…; the API ignores it for customers
const customer = new URLSearchParams(location.search).get("customer_id");
const base = mode === "s" ? `/v1/shared/${id}` : `/v1/shipments/${id}`;
const scoped = (path) => customer ? `${path}?customer_id=${encodeURIComponent(customer)}` : path;
const map = basemap.create("map", ["vehicle", "trail", "route", "origin", "destination", "geofence"]);
let trail = null, vehicle = null, drawn = false, fitted = false, lastFix = -Infinity, shown = null,
    live = "connecting";

function render(s) {
  shown = s; // drawn again in the other language when the switch changes
  i18n.settle({ language: s.customer_language, zone: s.time_zone });
  cargotrace.text("ref", s.external_ref);
  cargotrace.text("word", i18n.t(`status.${s.status}`)); // the consignee's words, not the internal tag
  const reached = STEPS.indexOf(s.status);
  document.getElementById("steps").replaceChildren(...STEPS.map((name, i) => {
    const li = document.createElement("li");
    li.textContent = i18n.t(`status.${name}`);
    li.dataset.status = name;
    li.className = i < reached ? "done" : i === reached ? "current" : "";
    return li;
  }));
  const items = s.items;
  cargotrace.text("progress", i18n.t(PROGRESS[s.status] || "progress.loading", {
    done: ["arrived", "delivered"].includes(s.status) ? items.delivered : items.loaded, total: items.total }));
  document.getElementById("eta-line").hidden = s.status === "delivered" || !s.eta; // no stale ETA after delivery
  const band = s.eta_p10 && s.eta_p90 ? i18n.t("eta.band", { from: i18n.clock(s.eta_p10), to: i18n.clock(s.eta_p90) }) : "";
  cargotrace.text("eta", i18n.time(s.eta) + band); // the p10–p90 band the history gives
  document.getElementById("window-line").hidden = !s.delivery_to;
  cargotrace.text("window", i18n.time(s.delivery_to));
  document.getElementById("exceptions").replaceChildren(...s.exceptions.map((x) => {
    const li = document.createElement("li");
    li.textContent = `${i18n.t(`exception.${x.type}`)} (${i18n.t(`exception.${x.state}`)})`;
    return li;
  }));
  const rows = [{ ts: s.created_at, word: i18n.t("timeline.received"), place: "" },
                ...s.timeline.map((e) => ({ ts: e.ts, word: i18n.t(`status.${e.status}`), place: e.place || "" }))];
  document.getElementById("timeline").replaceChildren(...rows.map((e) => {
    const tr = document.createElement("tr");
    for (const value of [i18n.time(e.ts), e.word, e.place]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    return tr;
  }));
  if (map && !drawn) draw(s);
  if (s.last_position) move(s.last_position);
}

function draw(s) { // once: the planned route, the two places with their names, the trail to come
  drawn = true;
  const route = basemap.line(s.planned_route);
  if (route.length) basemap.path("route", route).addTo(map);
  const extent = [...route];
  for (const kind of ["origin", "destination"]) {
    if (!s[kind]) continue;
    const area = basemap.geofence(s[kind].geofence, s[kind].name).addTo(map);
    basemap.mark(kind, basemap.centre(area)).addTo(map);
    extent.push(area.getBounds().getSouthWest(), area.getBounds().getNorthEast());
  }
  trail = basemap.path("trail", []).addTo(map);
  if (extent.length) {
    map.fitBounds(L.latLngBounds(extent).pad(0.2), { maxZoom: 16 });
    fitted = true;
  } // else the view stays until there is something to show
}

function move(p) {
  // a fix comes again with every status event (as last_position) and may cross a reconnection
  const at = Date.parse(p.ts);
  if (!map || at <= lastFix) return;
  lastFix = at;
  const position = basemap.at(p.lat, p.lon);
  trail.addLatLng(position);
  if (!vehicle) {
    vehicle = basemap.mark("vehicle", position, shown.vehicle_plate || shown.vehicle_id).addTo(map);
  }
  vehicle.setLatLng(position);
  if (!fitted) {
    map.setView(position, 14);
    fitted = true;
  }
}

async function start() {
  try {
    render(await cargotrace.get(scoped(base)));
    for (const p of (await cargotrace.get(scoped(`${base}/trail`))).positions) move(p);
  } catch (error) {
    cargotrace.text("error", String(error.message || error));
    if (mode !== "s") sessionStorage.removeItem("cargotrace.key");
    return;
  }
  cargotrace.stream(scoped(`${base}/stream`), (name, data) => {
    if (name === "status") render(data);
    else if (name === "position") move(data);
    else if (name === "exception") cargotrace.get(scoped(base)).then(render);
  }, (state) => {
    live = state.split(" ")[0];
    cargotrace.text("live", i18n.t(`live.${live}`));
  });
}

i18n.onChange = () => {
  cargotrace.text("live", i18n.t(`live.${live}`));
  if (shown) render(shown);
};
i18n.load().then(() => {
  cargotrace.text("live", i18n.t("live.connecting"));
  if (mode === "s" || cargotrace.key()) start(); else cargotrace.askKey(start);
});
