// The customer's tracking page: /track/{ref} with the customer's key, or /s/{token} (a share link:
// the token is the credential). Status steps, timeline, ETA, item progress and a small map, live.
"use strict";

const STEPS = [["pending", "Order received"], ["loading", "Loading"], ["loaded", "Loaded"],
               ["in_transit", "In transit"], ["arrived", "At destination"], ["delivered", "Delivered"]];
const [, mode, id] = location.pathname.split("/");
const base = mode === "s" ? `/v1/shared/${id}` : `/v1/shipments/${id}`;
const map = cargotrace.map("map");
let trail = null, vehicle = null, drawn = false, lastFix = -Infinity;

function render(s) {
  cargotrace.text("ref", s.external_ref);
  cargotrace.text("word", s.status_word);
  const reached = STEPS.findIndex(([name]) => name === s.status);
  document.getElementById("steps").replaceChildren(...STEPS.map(([name, label], i) => {
    const li = document.createElement("li");
    li.textContent = label;
    li.dataset.status = name;
    li.className = i < reached ? "done" : i === reached ? "current" : "";
    return li;
  }));
  const items = s.items;
  cargotrace.text("progress", ["pending", "loading", "loaded"].includes(s.status)
    ? `${items.loaded}/${items.total} pallets loaded` : `${items.delivered}/${items.total} pallets delivered`);
  cargotrace.text("eta", cargotrace.time(s.eta));
  cargotrace.text("window", cargotrace.time(s.delivery_to));
  document.getElementById("exceptions").replaceChildren(...s.exceptions.map((x) => {
    const li = document.createElement("li");
    li.textContent = `Exception: ${x.type.replace("_", " ")} (${x.state})`;
    return li;
  }));
  document.getElementById("timeline").replaceChildren(...s.timeline.map((e) => {
    const tr = document.createElement("tr");
    for (const value of [cargotrace.time(e.ts), e.status.replace("_", " "), e.place || ""]) {
      const td = document.createElement("td");
      td.textContent = value;
      tr.append(td);
    }
    return tr;
  }));
  if (map && !drawn) {
    drawn = true;
    const route = cargotrace.lineOf(s.planned_route);
    if (route.length) L.polyline(route, { color: "#7a8896", dashArray: "6 6" }).addTo(map);
    if (s.destination_lat != null) {
      L.circle([s.destination_lat, s.destination_lon], { radius: s.destination_radius_m || 300 }).addTo(map);
    }
    trail = L.polyline([], { color: "#1d5b2c", weight: 4 }).addTo(map);
    const extent = route.length ? route : s.destination_lat != null ? [[s.destination_lat, s.destination_lon]] : [];
    if (extent.length) map.fitBounds(L.latLngBounds(extent).pad(0.2));
  }
  if (s.last_position) move(s.last_position);
}

function move(p) {
  // a fix comes again with every status event (as last_position) and may cross a reconnection
  const at = Date.parse(p.ts);
  if (!map || at <= lastFix) return;
  lastFix = at;
  trail.addLatLng([p.lat, p.lon]);
  if (!vehicle) vehicle = L.circleMarker([p.lat, p.lon], { radius: 7, color: "#a31515" }).addTo(map);
  vehicle.setLatLng([p.lat, p.lon]);
}

async function start() {
  try {
    render(await cargotrace.get(base));
    for (const p of (await cargotrace.get(`${base}/trail`)).positions) move(p);
  } catch (error) {
    cargotrace.text("error", String(error.message || error));
    if (mode !== "s") sessionStorage.removeItem("cargotrace.key");
    return;
  }
  cargotrace.stream(`${base}/stream`, (name, data) => {
    if (name === "status") render(data);
    else if (name === "position") move(data);
    else if (name === "exception") cargotrace.get(base).then(render);
  }, (state) => cargotrace.text("live", state));
}

if (mode === "s" || cargotrace.key()) start(); else cargotrace.askKey(start);
