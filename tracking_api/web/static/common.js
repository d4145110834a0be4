// Shared by the pages: the API key, JSON calls, a fetch()-based Server-Sent Events reader
// (EventSource cannot send an Authorization header) and the blank map.
"use strict";

const cargotrace = {
  key() { return sessionStorage.getItem("cargotrace.key"); },

  askKey(onKey) {
    const form = document.getElementById("key-form");
    form.hidden = false;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem("cargotrace.key", document.getElementById("key").value.trim());
      form.hidden = true;
      onKey();
    });
  },

  headers() {
    const key = cargotrace.key();
    return key ? { Authorization: "Bearer " + key } : {};
  },

  async get(path, options = {}) {
    const response = await fetch(path, { ...options, headers: { ...cargotrace.headers(), ...(options.headers || {}) } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || body.title || response.status);
    return body;
  },

  post(path, body) {
    return cargotrace.get(path, { method: "POST", body: JSON.stringify(body),
                                  headers: { "Content-Type": "application/json" } });
  },

  // Calls onEvent(name, data) for every event; reconnects after a drop (the server sends the
  // current state first, so nothing needed is lost across the gap).
  async stream(path, onEvent, onState) {
    for (;;) {
      try {
        const response = await fetch(path, { headers: { ...cargotrace.headers(), Accept: "text/event-stream" } });
        if (!response.ok) throw new Error("stream answered " + response.status);
        onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            }
            if (data.length) onEvent(name, JSON.parse(data.join("\n")));
          }
        }
      } catch (error) {
        console.warn("live updates:", error);
      }
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  },

  // A map without tiles: the vectors (routes, geofences, trails, vehicles) are the content.
  map(element) {
    if (!window.L) return null; // the vendored Leaflet is missing (npm ci not run): pages work without the map
    return L.map(element, { attributionControl: false }).setView([31.23, 121.47], 11);
  },

  lineOf(route) { // GeoJSON LineString [lon, lat] → Leaflet [lat, lon]
    return route && route.coordinates ? route.coordinates.map(([lon, lat]) => [lat, lon]) : [];
  },

  text(id, value) { document.getElementById(id).textContent = value; },

  time(iso) { return iso ? new Date(iso).toLocaleString() : "—"; },
};
