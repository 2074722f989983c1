// The console's page in headless Chromium (puppeteer-core against the
// system's /usr/bin/chromium), run by t_console.sh against a live agent:
// log in with the token, see the VM and its recovery-point state and the
// peer's job, run the job from its button and watch it finish, open a
// verification and see the guest's console lines, boot-test a snapshot
// from its button and see its result. Screenshots go to ARTDIR.
//   node console_page.js URL TOKEN VM ARTDIR
"use strict";
const puppeteer = require("puppeteer-core");
const [url, token, vm, art] = process.argv.slice(2);

function fail(msg) { throw new Error(msg); }

async function main() {
	const browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true,
		args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
	const errors = [];
	try {
		const page = await browser.newPage();
		page.on("pageerror", e => errors.push(e.message));
		await page.setViewport({ width: 1280, height: 900 });
		await page.goto(url, { waitUntil: "load" });

		console.log("the login form, since the browser has no session");
		await page.waitForSelector("#login:not([hidden])", { timeout: 10000 });
		await page.screenshot({ path: `${art}/login.png` });
		await page.type("#token", "wrong-token");
		await page.click("#login-form button");
		await page.waitForFunction(() => document.getElementById("login-error").textContent.length > 0);
		await page.$eval("#token", e => { e.value = ""; });
		await page.type("#token", token);
		await page.click("#login-form button");

		console.log("the fleet shows the VM with its recovery point state");
		const card = `.card[data-vm="${vm}"]`;
		await page.waitForSelector(card, { timeout: 20000 });
		const rpo = await page.$eval(card, e => e.dataset.rpo);
		if (rpo !== "ok") fail(`VM ${vm}: recovery point ${rpo}, expected ok`);
		const color = await page.$eval(card, e => getComputedStyle(e).borderLeftColor);
		if (color !== "rgb(46, 158, 85)") fail(`an ok VM's card is ${color}, not green`);
		await page.waitForSelector(".repo svg.chart polyline");
		await page.waitForSelector('tr[data-job="peerjob"]', { timeout: 10000 }); // the [peer]'s job
		await page.screenshot({ path: `${art}/fleet.png`, fullPage: true });

		console.log("run the job from its button and watch it finish");
		const rowsBefore = await page.$$eval("#history tbody tr", r => r.length);
		await page.click('button.run[data-job="nightly"]');
		await page.waitForSelector('tr[data-job="nightly"][data-state="running"], tr[data-job="nightly"][data-state="queued"]',
			{ timeout: 20000 });
		await page.screenshot({ path: `${art}/running.png` });
		await page.waitForFunction(n => document.querySelectorAll("#history tbody tr").length > n &&
			document.querySelector('tr[data-job="nightly"]').dataset.state === "ok", { timeout: 150000 }, rowsBefore);
		const result = await page.$eval("#history tbody tr td:nth-child(4)", e => e.textContent);
		if (result !== "ok") fail(`the new run's result is ${result}`);

		console.log("open the VM's snapshots and its verification: the console lines");
		await page.click(card);
		await page.waitForFunction(() => document.querySelectorAll("#snapshots tbody tr").length >= 2, { timeout: 30000 });
		await page.waitForSelector("#timeline svg circle.ver-ok");
		await page.click("a.verification.ver-ok");
		await page.waitForFunction(() => document.getElementById("ver-console").textContent.includes("cairn-guest: ready"),
			{ timeout: 10000 });
		const shown = await page.$eval("#ver-result", e => e.textContent);
		if (!shown.startsWith("ok (console")) fail(`verification shows: ${shown}`);
		await page.screenshot({ path: `${art}/verification.png`, fullPage: true });

		console.log("boot-test the newest snapshot from its button and see the result");
		const newest = await page.$eval('#snapshots tbody tr[data-repo="local"]', e => e.dataset.snap);
		const row = `#snapshots tbody tr[data-repo="local"][data-snap="${newest}"]`;
		await page.type("#expect", "cairn-guest: ready");
		await page.click(`${row} button.boot`);
		await page.waitForSelector(`${row} a.verification.ver-ok`, { timeout: 150000 });
		await page.click(`${row} a.verification`);
		await page.waitForFunction(() => document.getElementById("ver-console").textContent.includes("cairn-guest: ready"),
			{ timeout: 10000 });
		await page.screenshot({ path: `${art}/boot-test.png`, fullPage: true });
		if (errors.length) fail("errors in the page: " + errors.join("; "));
		console.log("page test ok");
	} finally {
		await browser.close();
	}
}

main().catch(e => { console.error("page test: " + e.message); process.exit(1); });
