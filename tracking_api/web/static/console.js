// The dispatcher console: the shipment list (filtered, each linking to its page), live map of
// vehicles with planned routes and destination geofences, the exception queue with evidence,
// acknowledge and resolve with a note; live over SSE.
"use strict";

const map = basemap.create("map", ["vehicle", "route", "destination", "geofence"]);
const markers = new Map(); // vehicle id → circle marker
let shapes = null, sites = null, live = "connecting";

function cell(row, value) {
  const td = document.createElement("td");
  if (value instanceof Node) td.append(value); else td.textContent = value ?? "";
  row.append(td);
  return td;
}

function act(x, verb) {
  const button = document.createElement("button");
  button.textContent = i18n.t(`action.${verb}`);
  button.dataset.action = `${verb}-${x.id}`;
  button.addEventListener("click", async () => {
    const note = window.prompt(i18n.t("note.prompt", { action: i18n.t(`action.${verb}`), id: x.id }), "") ?? undefined;
    try {
      await cargotrace.post(`/v1/exceptions/${x.id}/${verb}`, note ? { note } : {});
    } catch (error) {
      cargotrace.text("error", String(error.message || error));
    }
    loadQueue(); // the stream brings it too; this answers the click at once
  });
  return button;
}

function emptyRow(text, columns) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  cell(tr, text).colSpan = columns;
  return tr;
}

let shipmentsAsked = 0; // filters change faster than answers come: only the last question's answer is drawn

async function loadShipments() {
  const asked = ++shipmentsAsked;
  const query = new URLSearchParams({ limit: "200" });
  for (const [name, id] of [["status", "f-status"], ["customer_id", "f-customer"], ["attention", "f-attention"]]) {
    const value = document.getElementById(id).value.trim();
    if (value) query.set(name, value);
  }
  const { shipments } = await cargotrace.get(`/v1/shipments?${query}`);
  if (asked !== shipmentsAsked) return;
  document.getElementById("shipments").replaceChildren(...(shipments.length ? shipments.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.shipment = `${s.customer_id}/${s.external_ref}`;
    const link = document.createElement("a");
    link.href = `/track/${encodeURIComponent(s.external_ref)}?customer_id=${encodeURIComponent(s.customer_id)}`;
    link.textContent = s.external_ref;
    cell(tr, s.customer_id);
    cell(tr, link);
    cell(tr, i18n.t(`status.${s.status}`));
    cell(tr, s.vehicle_id);
    cell(tr, s.eta && !["arrived", "delivered"].includes(s.status) ? i18n.time(s.eta) : "");
    cell(tr, s.delivery_to ? i18n.time(s.delivery_to) : "");
    return tr;
  }) : [emptyRow(i18n.t("shipments.empty"), 6)]));
}

async function loadQueue() {
  const state = document.getElementById("state").value;
  const { exceptions } = await cargotrace.get(`/v1/exceptions?state=${state}&limit=200`);
  if (!exceptions.length) {
    document.getElementById("queue").replaceChildren(emptyRow(i18n.t("queue.empty", { state: i18n.t(`state.${state}`) }), 7));
    return;
  }
  document.getElementById("queue").replaceChildren(...exceptions.map((x) => {
    const tr = document.createElement("tr");
    tr.dataset.exception = x.id;
    tr.className = `state-${x.state}`;
    cell(tr, x.id);
    cell(tr, i18n.t(`exception.${x.type}`));
    cell(tr, x.external_ref ? `${x.customer_id} / ${x.external_ref}` : "");
    cell(tr, x.vehicle_id);
    cell(tr, i18n.time(x.opened_at));
    const evidence = document.createElement("pre");
    evidence.textContent = JSON.stringify(x.evidence, null, 1) + (x.note ? `\nnote: ${x.note}` : "");
    cell(tr, evidence);
    const actions = cell(tr, "");
    if (x.state === "open") actions.append(act(x, "acknowledge"));
    if (x.state !== "resolved") actions.append(act(x, "resolve"));
    return tr;
  }));
}

function place(vehicleId, p, plate) {
  if (!p) return;
  const row = document.querySelector(`#vehicles tr[data-vehicle="${CSS.escape(vehicleId)}"]`);
  if (row) {
    row.dataset.fix = `${p.lat},${p.lon}`;
    row.lastChild.textContent = i18n.time(p.ts);
  }
  if (!map) return;
  let marker = markers.get(vehicleId);
  if (!marker) {
    const label = plate ? `${vehicleId} ${plate}` : vehicleId;
    marker = basemap.mark("vehicle", basemap.at(p.lat, p.lon), label).addTo(map);
    markers.set(vehicleId, marker);
  }
  marker.setLatLng(basemap.at(p.lat, p.lon));
}

async function loadSites() { // every site's geofence with its name, once: sites seldom change
  if (!map || sites) return;
  const all = [];
  for (let after = ""; after !== null;) {
    const page = await cargotrace.get(`/v1/sites?limit=500&after=${encodeURIComponent(after)}`);
    all.push(...page.sites);
    after = page.next_after;
  }
  sites = L.layerGroup(all.map((site) => basemap.geofence(site.geofence, site.name))).addTo(map);
}

async function loadVehicles() {
  const { vehicles } = await cargotrace.get("/v1/vehicles");
  document.getElementById("vehicles").replaceChildren(...vehicles.map((v) => {
    const tr = document.createElement("tr");
    tr.dataset.vehicle = v.id;
    cell(tr, v.id);
    cell(tr, v.trips.map((t) => `${t.external_ref} (${i18n.t(`status.${t.status}`)})`).join(", "));
    cell(tr, i18n.t("no_fix"));
    return tr;
  }));
  for (const v of vehicles) place(v.id, v.last_position, v.plate);
  if (!map) return;
  if (shapes) shapes.remove();
  shapes = L.layerGroup().addTo(map);
  const extent = [];
  for (const v of vehicles) {
    if (v.last_position) extent.push(basemap.at(v.last_position.lat, v.last_position.lon));
    for (const t of v.trips) {
      const route = basemap.line(t.planned_route);
      if (route.length) basemap.path("route", route).addTo(shapes);
      const { lat, lon, radius_m: radius, site_id: site } = t.destination;
      if (lat != null) {
        basemap.mark("destination", basemap.at(lat, lon)).addTo(shapes);
        if (!site) basemap.geofence({ lat, lon, radius_m: radius || 300 }).addTo(shapes); // a site's is drawn
      }
      extent.push(...route);
    }
  }
  // one point: a street's view; nothing (briefly, between trips): the view stays as it was
  if (extent.length) map.fitBounds(L.latLngBounds(extent).pad(0.2), { maxZoom: 15 });
}

if (map) { // a point picked on the map, in WGS-84 whatever the tiles' datum: for geofences and support calls
  map.on("click", (e) => {
    const [lat, lon] = basemap.toWgs(e.latlng.lat, e.latlng.lng);
    L.popup().setLatLng(e.latlng).setContent(i18n.t("map.point", { lat: lat.toFixed(6), lon: lon.toFixed(6) }))
      .openOn(map);
  });
}

async function start() {
  try {
    await Promise.all([loadShipments(), loadQueue(), loadVehicles(), loadSites()]);
  } catch (error) { // a refused key: say so and ask again, the form stays usable
    cargotrace.text("error", String(error.message || error));
    live = "not_connected";
    cargotrace.text("live", i18n.t("live.not_connected"));
    sessionStorage.removeItem("cargotrace.key");
    cargotrace.askKey(start);
    return;
  }
  cargotrace.text("error", "");
  document.getElementById("state").addEventListener("change", loadQueue);
  const filter = document.getElementById("shipment-filter");
  filter.addEventListener("change", loadShipments);
  filter.addEventListener("submit", (e) => { e.preventDefault(); loadShipments(); });
  cargotrace.stream("/v1/stream", (name, data) => {
    if (name === "position") place(data.vehicle_id, data);
    else if (name === "exception") { loadQueue(); loadShipments(); }
    else if (name === "status") { loadVehicles(); loadShipments(); }
  }, (state) => {
    live = state.split(" ")[0];
    cargotrace.text("live", i18n.t(`live.${live}`));
  });
}

i18n.onChange = () => { // the tables again in the other language; the map's labels are ids
  cargotrace.text("live", i18n.t(`live.${live}`));
  if (cargotrace.key() && live !== "not_connected") Promise.all([loadShipments(), loadQueue(), loadVehicles()]).catch(() => {});
};
i18n.load().then(() => {
  cargotrace.text("live", i18n.t("live.connecting"));
  if (cargotrace.key()) start(); else cargotrace.askKey(start);
});
