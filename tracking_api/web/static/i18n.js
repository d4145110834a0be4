// The pages' words in Simplified Chinese and English, from messages.json: the user's choice (the
// language switch, remembered), else the browser's languages, else Chinese. Times in 24-hour form in
// the sites' time zone (Asia/Shanghai), the zone shown.
"use strict";

const i18n = {
  messages: null,
  lang: "zh-CN",
  zone: "Asia/Shanghai",
  onChange: () => {},

  async load() {
    i18n.messages = await (await fetch("/static/messages.json")).json();
    i18n.lang = localStorage.getItem("cargotrace.lang") || i18n.fromBrowser();
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
    return "zh-CN";
  },

  t(key, values = {}) {
    const text = i18n.messages[i18n.lang][key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
  },

  choose(lang) {
    localStorage.setItem("cargotrace.lang", lang);
    i18n.lang = lang;
    i18n.apply();
    i18n.onChange();
  },

  apply() {
    document.documentElement.lang = i18n.lang;
    for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = i18n.t(element.dataset.i18n);
    const select = document.getElementById("lang");
    if (select) select.value = i18n.lang;
  },

  time(iso) {
    if (!iso) return "—";
    const format = new Intl.DateTimeFormat(i18n.lang === "en" ? "en-GB" : "zh-CN", {
      timeZone: i18n.zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23" });
    return `${format.format(new Date(iso))} ${i18n.t("zone")}`;
  },
};
