// Shared by the pages: the API key, JSON calls and a fetch()-based Server-Sent Events reader
// (EventSource cannot send an Authorization header). The map is basemap.js's.
"use strict";

const cargotrace = {
  key() { return sessionStorage.getItem("cargotrace.key"); },

  askKey(onKey) {
    const form = document.getElementById("key-form");
    form.hidden = false;
    form.onsubmit = (e) => { // onsubmit, not a listener: asking again after a refused key must not call twice
      e.preventDefault();
      sessionStorage.setItem("cargotrace.key", document.getElementById("key").value.trim());
      form.hidden = true;
      onKey();
    };
  },

  headers() { // the API's error texts in the page's language, not only the browser's
    const key = cargotrace.key();
    const language = typeof i18n === "undefined" ? {} : { "Accept-Language": i18n.lang };
    return key ? { ...language, Authorization: "Bearer " + key } : language;
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

  // A Server-Sent Events parser following the WHATWG rules, fed text chunks cut anywhere (lines end
  // in \n, \r or \r\n). Calls onEvent(name, data, lastId) per event, onRetry(ms) when the server
  // sets the reconnection delay; lastId survives reconnections, so it starts from the previous one.
  sse(onEvent, onRetry = () => {}, lastId = "") {
    let buffer = "", name = "", data = [], idBuffer = lastId;
    const line = (text) => {
      if (text === "") { // a blank line dispatches the event
        lastId = idBuffer;
        if (data.length) onEvent(name || "message", data.join("\n"), lastId);
        name = "";
        data = [];
        return;
      }
      if (text.startsWith(":")) return; // a comment (keep-alive)
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) idBuffer = value;
      else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
    };
    return {
      push(chunk) {
        buffer += chunk;
        // a \r at the very end may be the first half of \r\n: it waits for the next chunk
        const end = /\r\n|\r(?!$)|\n/g;
        let from = 0, match;
        while ((match = end.exec(buffer))) {
          line(buffer.slice(from, match.index));
          from = end.lastIndex;
        }
        buffer = buffer.slice(from);
      },
      get lastId() { return lastId; },
    };
  },

  // Calls onEvent(name, data) for every event; after a drop it reconnects with Last-Event-ID (the
  // server also sends the current state first, so nothing needed is lost across the gap). A refusal
  // (4xx other than 429: bad key, unknown or expired link) ends it.
  async stream(path, onEvent, onState) {
    let lastId = "", delay = 2000;
    for (;;) {
      const parser = cargotrace.sse((name, data) => {
        try {
          onEvent(name, JSON.parse(data));
        } catch (error) {
          console.warn("live updates: event skipped:", error);
        }
      }, (ms) => { delay = ms; }, lastId);
      try {
        const headers = { ...cargotrace.headers(), Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(path, { headers, cache: "no-store" });
        if (response.status >= 400 && response.status < 500 && response.status !== 429) {
          onState(`stopped (${response.status})`);
          return;
        }
        if (!response.ok) throw new Error("stream answered " + response.status);
        onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
        }
      } catch (error) {
        console.warn("live updates:", error);
      }
      lastId = parser.lastId;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  },

  text(id, value) { document.getElementById(id).textContent = value; },
};
