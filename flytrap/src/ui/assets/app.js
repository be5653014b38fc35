// FlyTrap audit page: one script, no framework, no network but this server's /api.
// Views are hash routes (#/view?param=value) so every view and filter can be linked to.
"use strict";

let info = null;

// ------------------------------------------------------------------ helpers

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtTime(t) {
  if (t === null || t === undefined) return "";
  return new Date(Number(t) * 1000).toISOString().replace(".000Z", "Z");
}

async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v) q.set(k, v);
  const url = "/api/" + path + (q.toString() ? "?" + q : "");
  const r = await fetch(url);
  const body = await r.json().catch(() => ({ error: "the server's answer is not JSON" }));
  if (r.status === 503 && /catching up/.test(body.error || "")) {
    // The index fell behind (a long burst of blocks): show the progress, then ask again.
    await waitIndexed();
    return api(path, params);
  }
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// Polls /api/status until the server's index has caught up with the chain, showing how far
// it got (a long chain takes a while the first time the page's server starts).
async function waitIndexed() {
  const box = document.getElementById("progress");
  for (;;) {
    const r = await fetch("/api/status");
    const s = await r.json().catch(() => null);
    if (s && s.ready) break;
    if (s) {
      const done = s.loaded_block === null ? 0 : s.loaded_block + 1;
      const total = Math.max(1, s.head + 1);
      box.hidden = false;
      box.querySelector("progress").max = total;
      box.querySelector("progress").value = done;
      box.querySelector("span").textContent = "Reading the chain: block " + done + " of " + total + " (" +
        Math.floor((100 * done) / total) + " %)" + (s.error ? " — " + s.error : "");
    }
    await sleep(300);
  }
  box.hidden = true;
}

function txLink(tx) {
  const href = info && info.explorer ? info.explorer + "/tx/" + tx : "/api/tx/" + tx;
  return el("a", { href, class: "tx", title: tx }, tx.slice(0, 10) + "…");
}

function blockLink(n) {
  const href = info && info.explorer ? info.explorer + "/block/" + n : "/api/block/" + n;
  return el("a", { href, class: "block" }, String(n));
}

function addrList(list) {
  if (!list || list.length === 0) return el("span", { class: "no" }, "none");
  return el("ul", { class: "addrs" }, list.map((a) => el("li", {}, a)));
}

function yes(b) {
  return el("span", { class: b ? "yes" : "no" }, b ? "yes" : "no");
}

function table(id, headers, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) =>
      c && c.td ? el("td", { class: c.cls }, c.td) : el("td", {}, c))))));
}

const mono = (v) => ({ td: v || "-", cls: "addr" });

function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [name, query] = h.split("?");
  return { name: name || "topics", params: new URLSearchParams(query || "") };
}

function go(name, values) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v) q.set(k, v);
  const hash = "#/" + name + (q.toString() ? "?" + q : "");
  if (location.hash === hash) render();
  else location.hash = hash;
}

// A filter form: fields [name, label, kind] where kind is "text", "wide" or a list of options.
function form(view, params, fields) {
  const inputs = {};
  const f = el("form", { id: view + "-form" }, fields.map(([name, label, kind, hint]) => {
    let input;
    if (Array.isArray(kind)) {
      input = el("select", { name }, kind.map((o) => el("option", { value: o }, o || "any")));
      input.value = params.get(name) || "";
    } else {
      input = el("input", { name, class: kind === "wide" ? "wide" : null, placeholder: hint || "" });
      input.value = params.get(name) || "";
    }
    inputs[name] = input;
    return el("label", {}, label, input);
  }), el("button", { type: "submit" }, "Show"));
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = {};
    for (const [k, i] of Object.entries(inputs)) values[k] = i.value.trim();
    go(view, values);
  });
  return f;
}

const TIME_HINT = "2026-01-31T12:00Z or Unix s";
const windowFields = [["since", "since (UTC)", "text", TIME_HINT], ["until", "until (UTC)", "text", TIME_HINT]];

function status(text) {
  document.getElementById("status").textContent = text;
}

function shown(r, what) {
  return r.total + " " + what + (r.total > r.records.length ? " (newest " + r.records.length + " shown)" : "");
}

// ------------------------------------------------------------------ views

const views = {
  async topics(main, p) {
    const PAGE = Math.min(1000, Math.max(1, Number(p.get("limit")) || 50));
    main.append(form("topics", p, [["query", "search", "wide", "part of a name, or an address"]]));
    const offset = Math.max(0, Number(p.get("offset")) || 0);
    const r = await api("topics", { query: p.get("query"), offset: String(offset), limit: String(PAGE) });
    const last = offset + r.topics.length;
    status(r.total === 0 ? "no topics" + (r.query ? " match" : "") :
      "topics " + (offset + 1) + "–" + last + " of " + r.total + (r.query ? " matching (" + r.all + " in all)" : ""));
    const page = (o) => go("topics", { query: p.get("query"), offset: o ? String(o) : "", limit: p.get("limit") });
    const prev = el("button", { id: "topics-prev", type: "button", disabled: offset === 0 }, "← previous");
    const next = el("button", { id: "topics-next", type: "button", disabled: last >= r.total }, "next →");
    prev.addEventListener("click", () => page(Math.max(0, offset - PAGE)));
    next.addEventListener("click", () => page(offset + PAGE));
    main.append(el("div", { class: "pager" }, prev, next));
    main.append(table("topics", ["Topic", "Owner", "Countries", "Publish fee", "Subscribe fee", "Sensitive",
      "Publishers", "Subscribers"], r.topics.map((t) => [
      el("a", { href: "#/changes?topic=" + encodeURIComponent(t.name) }, t.name),
      mono(t.owner),
      t.countries.length ? t.countries.join(" ") : "anywhere",
      t.pub_fee.text, t.sub_fee.text, yes(t.sensitive),
      addrList(t.publishers), addrList(t.subscribers),
    ])));
  },

  async changes(main, p) {
    main.append(form("changes", p, [["topic", "topic", "text"], ["address", "address", "wide", "0x…"],
      ["action", "action", ["", "pub", "sub"]],
      ["change", "change", ["", "created", "grant", "revoke", "join", "updated"]], ...windowFields]));
    const r = await api("changes", Object.fromEntries(p));
    status(shown(r, "changes"));
    main.append(table("changes", ["Time", "Change", "Topic", "Action", "Target", "By", "Reason", "Block", "Tx"],
      r.records.map((c) => [fmtTime(c.time), c.change, c.topic, c.action || "-", mono(c.target), mono(c.source),
        c.reason, blockLink(c.block), txLink(c.tx)])));
  },

  async failures(main, p) {
    main.append(form("failures", p, [...windowFields, ["address", "client address", "wide", "0x…"]]));
    const r = await api("failures", Object.fromEntries(p));
    status(shown(r, "records"));
    main.append(el("div", { class: "cards", id: "failure-counts" },
      el("div", { class: "card" }, el("b", { id: "count-connect-failed" }, r.counts.connect_failed), "failed connections"),
      el("div", { class: "card" }, el("b", { id: "count-wrong-country" }, r.counts.wrong_country), "wrong-country attempts"),
      el("div", { class: "card" }, el("b", { id: "count-bans" }, r.counts.bans), "bans")));
    main.append(el("h2", {}, "Over time"), chart(r.timeline));
    main.append(el("h2", {}, "Wrong-country attempts by country"),
      table("by-country", ["Country", "Attempts"], r.by_country.map((c) => [c.country, c.count])));
    main.append(el("h2", {}, "Failed connections by reason"),
      table("by-reason", ["Reason", "Count"], r.by_reason.map((c) =>
        ["0x" + c.reason.toString(16).padStart(2, "0") + " " + c.reason_text, c.count])));
    main.append(el("h2", {}, "Records"), table("failures", ["Time", "Kind", "IP", "Client", "Detail", "Block", "Tx"],
      r.records.map((x) => [fmtTime(x.time), x.kind, x.ip, mono(x.client), detail(x), blockLink(x.block), txLink(x.tx)])));
  },

  async client(main, p) {
    main.append(form("client", p, [["address", "client address", "wide", "0x…"], ...windowFields]));
    if (!p.get("address")) {
      status("Enter a client's address.");
      return;
    }
    const r = await api("client/" + encodeURIComponent(p.get("address")),
      { since: p.get("since"), until: p.get("until") });
    status(r.topics.length + " topics, " + shown(r, "records"));
    main.append(el("h2", {}, "Topics " + r.address + " may use"),
      table("client-topics", ["Topic", "Publish", "Subscribe", "Owner", "Countries", "Sensitive"],
        r.topics.map((t) => [t.topic, yes(t.publish), yes(t.subscribe), yes(t.owner),
          t.countries.length ? t.countries.join(" ") : "anywhere", yes(t.sensitive)])));
    main.append(el("h2", {}, "Audit records naming it"),
      table("client-records", ["Time", "Kind", "Topic", "Detail", "Block", "Tx"],
        r.records.map((x) => [fmtTime(x.time), x.kind, x.topic || "-", detail(x), blockLink(x.block), txLink(x.tx)])));
  },

  async sensitive(main, p) {
    main.append(form("sensitive", p, [...windowFields, ["topic", "topic", "text"]]));
    const r = await api("sensitive", Object.fromEntries(p));
    status(shown(r, "reports") + " over " + (r.window.since_text || "the beginning") + " … " +
      (r.window.until_text || "now"));
    main.append(el("h2", {}, "Aggregated over the window"),
      table("sensitive-agg", ["Topic", "Reports", "Covering", "Published", "Received"],
        r.aggregate.map((a) => [a.topic, a.reports, fmtTime(a.from) + " … " + fmtTime(a.to),
          addrList(a.publishers), addrList(a.receivers)])));
    main.append(el("h2", {}, "Reports"),
      table("sensitive-reports", ["Time", "Topic", "From", "To", "Published", "Received", "Block", "Tx"],
        r.records.map((x) => [fmtTime(x.time), x.topic, fmtTime(x.from), fmtTime(x.to),
          addrList(x.publishers), addrList(x.receivers), blockLink(x.block), txLink(x.tx)])));
  },
};

function detail(x) {
  switch (x.kind) {
    case "connect-failed": return "reason 0x" + x.reason.toString(16).padStart(2, "0") + " " + x.reason_text;
    case "wrong-country": return "from " + x.country + " on topic " + x.topic;
    case "ban": return x.lift ? "ban lifted by an operator"
      : "banned until " + fmtTime(x.until) + " after " + x.failures + " failures";
    case "sensitive-report": return "published " + x.publishers.length + ", received " + x.receivers.length;
    case "acl-change": return x.change + " " + (x.action || "") + " target " + x.target;
    default: return "";
  }
}

// Stacked bars per time bucket: failed connections, wrong-country attempts, bans.
function chart(t) {
  const W = 760, H = 220, L = 40, B = 30, T = 10;
  const series = [["connect_failed", "var(--cf)", "failed connections"],
    ["wrong_country", "var(--wc)", "wrong country"], ["bans", "var(--ban)", "bans"]];
  const max = Math.max(1, ...t.buckets.map((b) => b.connect_failed + b.wrong_country + b.bans));
  const s = svg("svg", { class: "chart", id: "chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
    role: "img", "aria-label": "failures and bans over time" });
  const bw = (W - L - 10) / t.buckets.length;
  const y = (v) => T + (H - B - T) * (1 - v / max);
  s.append(svg("line", { x1: L, y1: H - B, x2: W - 5, y2: H - B, stroke: "#999" }));
  s.append(svg("text", { x: L - 6, y: y(max) + 4, "text-anchor": "end", "font-size": 11 }, String(max)));
  s.append(svg("text", { x: L - 6, y: H - B + 4, "text-anchor": "end", "font-size": 11 }, "0"));
  t.buckets.forEach((b, i) => {
    let acc = 0;
    for (const [k, color, label] of series) {
      if (!b[k]) continue;
      const r = svg("rect", { x: L + i * bw + 1, y: y(acc + b[k]), width: Math.max(1, bw - 2),
        height: y(acc) - y(acc + b[k]), fill: color, class: "bar " + k });
      r.append(svg("title", {}, `${fmtTime(b.start)}: ${b[k]} ${label}`));
      s.append(r);
      acc += b[k];
    }
  });
  const last = t.buckets.length - 1;
  for (const i of new Set([0, Math.floor(t.buckets.length / 2), last])) {
    const anchor = i === 0 ? "start" : i === last ? "end" : "middle";
    const x = i === 0 ? L : i === last ? W - 5 : L + i * bw + bw / 2;
    s.append(svg("text", { x, y: H - B + 16, "text-anchor": anchor, "font-size": 10 },
      fmtTime(t.buckets[i].start).slice(0, 16).replace("T", " ")));
  }
  const legend = el("div", { class: "legend" }, series.map(([, color, label]) =>
    el("span", {}, el("i", { style: "background:" + color }), label)));
  return el("div", {}, s, legend, el("div", { class: "muted" }, "bucket " + t.bucket_s + " s"));
}

// ------------------------------------------------------------------ main

async function render() {
  const { name, params } = route();
  const main = document.getElementById("view");
  const error = document.getElementById("error");
  document.body.removeAttribute("data-ready");
  main.replaceChildren();
  error.hidden = true;
  status("Loading…");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === name);
  try {
    await waitIndexed();
    if (!info) {
      info = await api("info");
      document.getElementById("chain").textContent = "chain " + info.chain_id + " · contract " + info.contract +
        " · indexed to block " + info.indexed_block;
    }
    const view = views[name];
    if (!view) throw new Error("no such view: " + name);
    await view(main, params);
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
    status("");
  }
  // Tests wait for this: the view has what the API answered.
  document.body.dataset.ready = name;
}

window.addEventListener("hashchange", render);
render();
