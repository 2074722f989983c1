// The cairn console: everything here comes from the agent's REST API
// (docs/api.md). No framework, no build step; data goes into the page
// through textContent only.
"use strict";

let timer = null;
const state = { status: null, repos: [], snaps: {}, stats: {}, history: [], peers: [],
	vm: null, wasRunning: false, slowAt: 0 };

function el(tag, attrs, ...kids) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (k === "class") e.className = v;
		else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
		else if (k === "dataset") Object.assign(e.dataset, v);
		else e.setAttribute(k, v);
	}
	for (const kid of kids)
		if (kid !== null && kid !== undefined)
			e.append(kid instanceof Node ? kid : String(kid));
	return e;
}

async function api(path, opts) {
	opts = opts || {};
	const init = { method: opts.method || "GET", credentials: "same-origin",
		headers: { "X-Cairn-Request": "1" } };
	if (init.method === "POST") {
		init.headers["Content-Type"] = "application/json";
		init.body = JSON.stringify(opts.body || {});
	}
	const r = await fetch(path, init);
	if (r.status === 401 && path !== "/api/v1/login") {
		showLogin();
		throw new Error("not logged in");
	}
	const type = r.headers.get("Content-Type") || "";
	const data = type.startsWith("application/json") ? await r.json() : await r.text();
	if (!r.ok) throw new Error((data && data.error) || ("HTTP " + r.status));
	return data;
}

function bytes(n) {
	const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
	let i = 0;
	while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
	return (i ? n.toFixed(1) : n) + " " + u[i];
}

function ago(iso) {
	if (!iso) return "never";
	const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
	if (s < 0) return "in " + span(-s);
	return span(s) + " ago";
}

function span(s) {
	if (s < 90) return s + " s";
	if (s < 5400) return Math.round(s / 60) + " min";
	if (s < 129600) return Math.round(s / 3600) + " h";
	return Math.round(s / 86400) + " d";
}

function short(t) { return t ? t.replace("T", " ").replace("Z", "") : "-"; }

function notice(msg, bad) {
	const n = el("div", { class: "notice" + (bad ? " bad" : "") }, msg);
	document.body.append(n);
	setTimeout(() => n.remove(), 6000);
}

// ---- login ----

function showLogin() {
	clearInterval(timer);
	timer = null;
	document.getElementById("app").hidden = true;
	document.getElementById("logout").hidden = true;
	document.getElementById("login").hidden = false;
}

async function login(ev) {
	ev.preventDefault();
	const token = document.getElementById("token").value;
	try {
		await api("/api/v1/login", { method: "POST", body: { token } });
		document.getElementById("token").value = "";
		document.getElementById("login").hidden = true;
		start();
	} catch (e) {
		document.getElementById("login-error").textContent = e.message;
	}
}

async function logout() {
	await api("/api/v1/logout", { method: "POST" }).catch(() => {});
	showLogin();
}

// ---- loading ----

async function loadSlow() {
	state.repos = await api("/api/v1/repositories");
	for (const r of state.repos) {
		try {
			state.snaps[r.name] = await api(`/api/v1/repositories/${encodeURIComponent(r.name)}/snapshots`);
			state.stats[r.name] = await api(`/api/v1/repositories/${encodeURIComponent(r.name)}/stats`);
		} catch (e) {
			state.snaps[r.name] = [];
			state.stats[r.name] = { error: e.message };
		}
	}
	state.peers = await api("/api/v1/peers").catch(() => []);
	state.slowAt = Date.now();
}

async function refresh() {
	try {
		state.status = await api("/api/v1/status");
		state.history = await api("/api/v1/history");
		const running = !!state.status.running || state.status.verify_tests.some(v => v.state === "running");
		if ((state.wasRunning && !running) || Date.now() - state.slowAt > 30000)
			await loadSlow();
		state.wasRunning = running;
		render();
	} catch (e) {
		if (e.message !== "not logged in") notice(e.message, true);
	}
}

// ---- fleet ----

// Every VM: those of this host's and its peers' jobs, and every VM with a
// snapshot in a repository of this host.
function fleet() {
	const vms = new Map();
	const add = (host, job, v) => vms.set(host + "/" + v.vm, { host, job: job.name, vm: v.vm,
		rpo: v.rpo, last: v.last_success, ok: v.ok, message: v.message });
	for (const j of state.status.jobs) for (const v of j.vms) add(state.status.host, j, v);
	for (const p of state.peers)
		if (p.status) for (const j of p.status.jobs) for (const v of j.vms) add(p.status.host, j, v);
	for (const [repo, snaps] of Object.entries(state.snaps))
		for (const s of snaps) {
			const known = [...vms.values()].find(v => v.vm === s.name);
			if (known) { known.repo = repo; continue; }
			const key = s.host + "/" + s.name;
			const had = vms.get(key);
			if (!had || had.last < s.time)
				vms.set(key, { host: s.host, vm: s.name, rpo: "none", last: s.time, repo, ok: true });
		}
	return [...vms.values()].sort((a, b) => (a.host + a.vm).localeCompare(b.host + b.vm));
}

function renderFleet() {
	const box = document.getElementById("fleet");
	box.replaceChildren(...fleet().map(v => el("div", {
		class: "card rpo-" + v.rpo, dataset: { vm: v.vm, rpo: v.rpo }, tabindex: "0",
		onclick: () => { state.vm = v.vm; render(); document.getElementById("vm-detail").scrollIntoView(); },
	}, el("strong", {}, v.vm), el("span", { class: "muted" }, v.host),
		el("span", {}, "last backup " + ago(v.last)),
		v.job ? el("span", { class: "muted" }, "job " + v.job) : null,
		v.ok === false ? el("span", { class: "error" }, v.message) : null)));
}

// ---- jobs ----

function jobRow(host, j, local) {
	const running = local && state.status.running && state.status.running.job === j.name;
	const queued = local && state.status.queue.includes(j.name);
	const failed = !!j.error || j.vms.some(v => !v.ok);
	const st = running ? "running: " + state.status.running.progress : queued ? "queued"
		: !j.last_run ? "never ran" : j.error ? "failed: " + j.error : failed ? "failed" : "ok";
	const button = local ? el("button", { class: "run", dataset: { job: j.name },
		onclick: () => runJob(j.name) }, "Run now") : null;
	if (button && (running || queued)) button.disabled = true;
	return el("tr", { dataset: { job: j.name, state: running ? "running" : queued ? "queued" : failed ? "failed" : "ok" } },
		el("td", {}, host), el("td", {}, j.name), el("td", {}, j.schedule), el("td", {}, j.repository),
		el("td", {}, short(j.last_run)), el("td", {}, short(j.next_run)),
		el("td", { class: "state" + (failed && !running ? " error" : "") }, st), el("td", {}, button));
}

function renderJobs() {
	const rows = state.status.jobs.map(j => jobRow(state.status.host, j, true));
	for (const p of state.peers) {
		if (p.status) rows.push(...p.status.jobs.map(j => jobRow(p.status.host, j, false)));
		else rows.push(el("tr", {}, el("td", {}, p.name), el("td", { colspan: "7", class: "error" },
			"peer " + p.url + ": " + p.error)));
	}
	document.querySelector("#jobs tbody").replaceChildren(...rows);
	const r = state.status.running;
	document.getElementById("running").textContent = r ? `running ${r.job}: ${r.progress}` : "idle";
	document.getElementById("host").textContent = state.status.host;
}

async function runJob(name) {
	try {
		await api(`/api/v1/jobs/${encodeURIComponent(name)}/run`, { method: "POST" });
		notice(`job ${name} queued`);
		state.wasRunning = true;
		refresh();
	} catch (e) { notice(e.message, true); }
}

// ---- one VM: timeline and snapshots ----

function vmSnapshots(name) {
	const out = [];
	for (const [repo, snaps] of Object.entries(state.snaps))
		for (const s of snaps) if (s.name === name) out.push({ repo, ...s });
	return out.sort((a, b) => a.time_ns - b.time_ns);
}

function verState(s) { return s.verification ? s.verification.result : "none"; }

function timeline(snaps) {
	const NS = "http://www.w3.org/2000/svg", w = 800, h = 60;
	const svg = document.createElementNS(NS, "svg");
	svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
	svg.setAttribute("class", "timeline");
	const t0 = Math.min(...snaps.map(s => Date.parse(s.time)), Date.now() - 3600000);
	const x = t => 20 + (w - 40) * (t - t0) / Math.max(1, Date.now() - t0);
	const line = document.createElementNS(NS, "line");
	Object.entries({ x1: 20, x2: w - 20, y1: 30, y2: 30, class: "axis" }).forEach(([k, v]) => line.setAttribute(k, v));
	svg.append(line);
	for (const s of snaps) {
		const c = document.createElementNS(NS, "circle");
		Object.entries({ cx: x(Date.parse(s.time)), cy: 30, r: s.kind === "full" ? 7 : 5,
			class: "snap ver-" + verState(s) }).forEach(([k, v]) => c.setAttribute(k, v));
		const title = document.createElementNS(NS, "title");
		title.textContent = `${short(s.time)} ${s.kind} ${bytes(s.new_bytes)} stored`;
		c.append(title);
		svg.append(c);
	}
	for (const [t, label] of [[t0, short(new Date(t0).toISOString())], [Date.now(), "now"]]) {
		const tx = document.createElementNS(NS, "text");
		Object.entries({ x: x(t), y: 55, class: "label", "text-anchor": t === t0 ? "start" : "end" })
			.forEach(([k, v]) => tx.setAttribute(k, v));
		tx.textContent = label;
		svg.append(tx);
	}
	return svg;
}

function snapshotRow(s) {
	const v = s.verification;
	const verified = v ? el("a", { href: "#", class: "verification ver-" + v.result, dataset: { snap: s.id },
		onclick: ev => { ev.preventDefault(); showVerification(s); } },
		v.result === "ok" ? `ok ${v.boot_seconds.toFixed(0)} s` : "FAILED") : "-";
	return el("tr", { dataset: { snap: s.id, repo: s.repo } },
		el("td", {}, short(s.time)), el("td", {}, s.repo), el("td", { class: "mono" }, s.id.slice(0, 12)),
		el("td", {}, s.kind),
		el("td", {}, s.consistency || "-"), el("td", {}, bytes(s.size)), el("td", {}, bytes(s.new_bytes)),
		el("td", {}, s.tags.join(", ")), el("td", {}, s.protected ? "yes" : "no"), el("td", {}, verified),
		el("td", {}, el("button", { class: "boot", dataset: { snap: s.id }, onclick: () => bootTest(s) }, "Boot test"),
			el("button", { class: "protect", onclick: () => protect(s, !s.protected) },
				s.protected ? "Unprotect" : "Protect")));
}

function renderVm() {
	const sec = document.getElementById("vm-detail");
	sec.hidden = !state.vm;
	if (!state.vm) return;
	const snaps = vmSnapshots(state.vm);
	document.getElementById("vm-name").textContent = state.vm;
	document.getElementById("timeline").replaceChildren(snaps.length ? timeline(snaps) : "no snapshots");
	document.querySelector("#snapshots tbody").replaceChildren(...snaps.slice().reverse().map(snapshotRow));
}

async function bootTest(s) {
	const expect = document.getElementById("expect").value.trim();
	const body = { repository: s.repo, snapshot: s.id };
	if (expect) body.expect_console = expect;
	try {
		await api("/api/v1/verify", { method: "POST", body });
		notice(`boot test of ${s.id.slice(0, 12)} started`);
		state.wasRunning = true;
		refresh();
	} catch (e) { notice(e.message, true); }
}

async function protect(s, on) {
	try {
		await api(`/api/v1/repositories/${encodeURIComponent(s.repo)}/snapshots/${s.id}/${on ? "protect" : "unprotect"}`,
			{ method: "POST" });
		await loadSlow();
		render();
	} catch (e) { notice(e.message, true); }
}

async function showVerification(s) {
	const v = s.verification;
	document.getElementById("verification").hidden = false;
	document.getElementById("ver-snap").textContent = `${s.name} ${s.id.slice(0, 12)}`;
	document.getElementById("ver-result").textContent =
		`${v.result} (${v.method}, ${v.boot_seconds.toFixed(1)} s on ${v.host}, ${short(v.time)}): ${v.detail}`;
	document.getElementById("ver-result").className = v.result === "ok" ? "" : "error";
	const pre = document.getElementById("ver-console");
	try {
		pre.textContent = await api(`/api/v1/repositories/${encodeURIComponent(s.repo)}/snapshots/${s.id}/console`);
	} catch (e) {
		pre.textContent = "(no console lines on this host: " + e.message + ")";
	}
	document.getElementById("verification").scrollIntoView();
}

// ---- repositories: size and dedupe over time ----

function chart(points) {
	const NS = "http://www.w3.org/2000/svg", w = 600, h = 160;
	const svg = document.createElementNS(NS, "svg");
	svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
	svg.setAttribute("class", "chart");
	if (points.length === 0) return svg;
	const max = Math.max(...points.map(p => p.logical_bytes), 1);
	const t = points.map(p => Date.parse(p.time)), t0 = t[0], t1 = Math.max(t[t.length - 1], t0 + 1);
	const x = i => 40 + (w - 60) * (points.length === 1 ? 1 : (t[i] - t0) / (t1 - t0));
	const y = b => h - 20 - (h - 40) * b / max;
	for (const [key, cls] of [["logical_bytes", "logical"], ["stored_bytes", "stored"]]) {
		const pl = document.createElementNS(NS, "polyline");
		pl.setAttribute("points", points.map((p, i) => `${x(i)},${y(p[key])}`).join(" "));
		pl.setAttribute("class", cls);
		svg.append(pl);
	}
	const label = document.createElementNS(NS, "text");
	Object.entries({ x: 40, y: 14, class: "label" }).forEach(([k, v]) => label.setAttribute(k, v));
	label.textContent = bytes(max) + " backed up (blue) against stored (green)";
	svg.append(label);
	return svg;
}

function renderRepos() {
	document.getElementById("repos").replaceChildren(...state.repos.map(r => {
		const st = state.stats[r.name] || {};
		return el("div", { class: "repo", dataset: { repo: r.name } },
			el("h3", {}, r.name, " ", el("span", { class: "muted" }, r.url)),
			st.error ? el("p", { class: "error" }, st.error) : el("p", {},
				`${st.snapshots} snapshots, ${bytes(st.logical_bytes)} of disks in ${bytes(st.stored_bytes)} stored; ` +
				`dedupe ${st.dedupe_ratio.toFixed(2)}x, compression ${st.compression_ratio.toFixed(2)}x`),
			st.history ? chart(st.history) : null);
	}));
}

function renderHistory() {
	document.querySelector("#history tbody").replaceChildren(...state.history.slice(0, 50).map(h =>
		el("tr", { class: h.ok ? "" : "failed" }, el("td", {}, short(h.end)), el("td", {}, h.job),
			el("td", {}, h.vm), el("td", { class: h.ok ? "" : "error" }, h.ok ? "ok" : "FAILED"),
			el("td", {}, h.seconds.toFixed(1) + " s"), el("td", {}, bytes(h.bytes_stored)),
			el("td", {}, h.message))));
}

function render() {
	renderFleet();
	renderJobs();
	renderVm();
	renderRepos();
	renderHistory();
	document.getElementById("app").hidden = false;
	document.getElementById("logout").hidden = false;
}

async function start() {
	try {
		state.status = await api("/api/v1/status");
	} catch (e) {
		return; // the login form is up
	}
	await loadSlow().catch(e => notice(e.message, true));
	await refresh();
	if (!timer) timer = setInterval(refresh, 2000);
}

document.getElementById("login-form").addEventListener("submit", login);
document.getElementById("logout").addEventListener("click", logout);
start();
