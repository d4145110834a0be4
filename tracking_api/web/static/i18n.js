// The pages' words in Simplified Chinese and English, from messages.json: the user's choice (the
// language switch, remembered), else the browser's languages, else the customer's configured language,
// else Chinese. Times in 24-hour form in the site's time zone (Asia/Shanghai unless the site says
// otherwise), the zone shown.
"use strict";

const i18n = {
  messages: null,
  lang: "zh-CN",
  decided: false, // by the user's choice or the browser's languages, which the customer's setting does not override
  zone: "Asia/Shanghai",
  onChange: () => {},

  async load() {
    i18n.messages = await (await fetch("/static/messages.json")).json();
    const decided = localStorage.getItem("cargotrace.lang") || i18n.fromBrowser();
    i18n.decided = Boolean(decided);
    i18n.lang = decided || "zh-CN";
    const select = document.getElementById("lang");
    if (select) select.addEventListener("change", () => i18n.choose(select.value));
    i18n.apply();
  },

  fromBrowser() {
    for (const language of navigator.languages || []) {
      const tag = language.toLowerCase();
      if (tag.startsWith("zh")) return "zh-CN";
      if (tag.startsWith("en")) return "en";
    }
    return null;
  },

  // What the shipment says: the customer's language (used when nothing else decided) and the zone.
  settle({ language, zone }) {
    const lang = !i18n.decided && i18n.messages[language] ? language : i18n.lang;
    const changed = lang !== i18n.lang || (zone && zone !== i18n.zone);
    i18n.lang = lang;
    i18n.zone = zone || i18n.zone;
    if (changed) i18n.apply();
    return changed;
  },

  t(key, values = {}) { // "key.one" where the language has a singular form for values.total
    const words = i18n.messages[i18n.lang];
    const form = values.total === undefined ? null : new Intl.PluralRules(i18n.lang).select(values.total);
    const text = words[`${key}.${form}`] ?? words[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
  },

  choose(lang) {
    localStorage.setItem("cargotrace.lang", lang);
    i18n.lang = lang;
    i18n.decided = true;
    i18n.apply();
    i18n.onChange();
  },

  apply() {
    document.documentElement.lang = i18n.lang;
    for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = i18n.t(element.dataset.i18n);
    const select = document.getElementById("lang");
    if (select) select.value = i18n.lang;
  },

  clock(iso) { // the hour and minute alone, in the same zone
    return new Intl.DateTimeFormat("en-GB", { timeZone: i18n.zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .format(new Date(iso));
  },

  time(iso) {
    if (!iso) return "—";
    const format = new Intl.DateTimeFormat(i18n.lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: i18n.zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23" });
    if (i18n.zone === "Asia/Shanghai") return `${format.format(new Date(iso))} ${i18n.t("zone")}`;
    const zoneName = new Intl.DateTimeFormat(i18n.lang, { timeZone: i18n.zone, timeZoneName: "short" })
      .formatToParts(new Date(iso)).find((part) => part.type === "timeZoneName").value;
    return `${format.format(new Date(iso))} ${zoneName}`;
  },
};
