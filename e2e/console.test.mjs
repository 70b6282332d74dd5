// The web console in a real browser (issue 15): Playwright (playwright-core, pinned, which
// downloads no browser) drives Debian's Chromium, headless, against a real mailgate on
// loopback. An owner logs in, creates a mailbox, gives a member "Send as", sees why she can
// read it, adds her to a work team that holds Read, revokes the direct grant, and finds it in
// the audit log. Locators are by role and label only. A failing step leaves a screenshot in
// target/e2e/.
//
// Run from the repository after a build (`cargo build` or `cargo test`): node --test e2e/
// MAILGATE_BIN names another binary; CHROMIUM another browser.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BINARY = process.env.MAILGATE_BIN ?? join(ROOT, "target", "debug", "mailgate");
const BROWSER = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(ROOT, "target", "e2e");
const NEW_PASSWORD = "a new owner password";

/** Starts mailgate with every listener on a free port; resolves once it serves. */
function startServer(dir) {
  const config = join(dir, "mailgate.toml");
  writeFileSync(
    config,
    [
      'hostname = "mail.test"',
      "[imap]", 'listen = ["127.0.0.1:0"]', 'listen_tls = ["127.0.0.1:0"]',
      "[smtp]", 'listen = ["127.0.0.1:0"]',
      "[submission]", 'listen = ["127.0.0.1:0"]', 'listen_tls = ["127.0.0.1:0"]',
      "[admin]", 'listen = ["127.0.0.1:0"]', "verify_domains = false",
      "[limits]", "shutdown_grace_seconds = 2", "",
    ].join("\n"),
  );
  assert.ok(existsSync(BINARY), `${BINARY} is missing: cargo build first`);
  const child = spawn(BINARY, ["serve", "--config", config, "--data", join(dir, "data")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const found = { child, password: null, admin: null };
    const timer = setTimeout(() => reject(new Error("mailgate did not start within 60 s")), 60_000);
    child.on("exit", (code) => reject(new Error(`mailgate exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const password = line.match(/password:\s+(\S+)/);
      if (password) found.password = password[1];
      const admin = line.match(/admin \(HTTP\) listening on ([\d.]+):(\d+)/);
      if (admin) found.admin = `http://${admin[1]}:${admin[2]}`;
      if (line.startsWith("mailgate: data in")) {
        clearTimeout(timer);
        resolve(found);
      }
    });
  });
}

/** A call to the admin API; the parsed answer. */
async function api(base, method, path, token, body) {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The owner's password changed from the printed one; a domain; Lucie, a collaborator. */
async function seed(server) {
  const base = server.admin;
  let { token } = await api(base, "POST", "/session", null, {
    login: "owner@localhost",
    password: server.password,
  });
  await api(base, "POST", "/me/password", token, {
    current_password: server.password,
    new_password: NEW_PASSWORD,
  });
  ({ token } = await api(base, "POST", "/session", null, {
    login: "owner@localhost",
    password: NEW_PASSWORD,
  }));
  const me = await api(base, "GET", "/me", token);
  const org = me.organizations[0];
  await api(base, "POST", `/orgs/${org.id}/domains`, token, { name: "acme.example" });
  const invitation = await api(base, "POST", `/orgs/${org.id}/invitations`, token, {
    email: "lucie@acme.example",
    role: "collaborator",
  });
  assert.ok(invitation.accept_path, "the invitation's link (no mail delivered here)");
  await fetch(`${base}${invitation.accept_path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ password: "lucie's password 1" }),
  }).then(async (r) => assert.ok(r.ok, `accepting: ${r.status} ${await r.text()}`));
  return org;
}

let dir, server, org, browser;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mailgate-e2e-"));
  server = await startServer(dir);
  org = await seed(server);
  assert.ok(existsSync(BROWSER), `${BROWSER} is missing: apt-get install chromium`);
  browser = await chromium.launch({
    executablePath: BROWSER,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    // Playwright gives each launch a fresh, empty profile (its own --user-data-dir).
  });
});

after(async () => {
  await browser?.close();
  server?.child.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs `steps` in a new page; a failure leaves a screenshot named after `name`. */
async function inPage(name, steps) {
  const context = await browser.newContext();
  const page = await context.newPage();
  // A script or style the Content-Security-Policy blocks shows here: none may.
  const errors = [];
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  try {
    await steps(page);
    assert.deepEqual(errors, [], "the browser's console shows no error");
  } catch (error) {
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true }).catch(() => {});
    throw error;
  } finally {
    await context.close();
  }
}

const contact = "contact@acme.example";
const lucie = "lucie@acme.example";

test("an owner gives access, sees why, revokes it, and finds it in the audit log", async () => {
  await inPage("console-flow", async (page) => {
    // Log in.
    await page.goto(`${server.admin}/console/login`);
    await page.getByLabel("Login", { exact: true }).fill("owner@localhost");
    await page.getByLabel("Password", { exact: true }).fill(NEW_PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Your organizations" }).waitFor();

    // Create a mailbox: its password is shown once.
    await page.getByRole("cell").getByRole("link", { name: org.name }).click();
    await page.getByLabel("Address").fill(contact);
    await page.getByRole("button", { name: "Create mailbox" }).click();
    await page.getByRole("heading", { name: `Mailbox ${contact} created` }).waitFor();

    // Give Lucie "Send as": her row says why.
    await page.getByRole("link", { name: `Who can read ${contact}` }).click();
    await page.getByRole("link", { name: "Give someone access" }).click();
    await page.getByLabel("To", { exact: true }).selectOption({ label: `${lucie} (collaborator)` });
    await page.getByRole("radio", { name: "Send as" }).check();
    await page.getByRole("button", { name: "Give access" }).click();
    const row = page.getByRole("row", { name: new RegExp(lucie) });
    await row.getByRole("listitem").filter({ hasText: "direct grant" }).waitFor();
    assert.match(await row.textContent(), /send as/);

    // A work team that holds Read, with Lucie in it: the reason "team" appears.
    await page.getByRole("link", { name: "Work teams" }).click();
    await page.getByLabel("Name", { exact: true }).fill("Readers");
    await page.getByRole("button", { name: "Create team" }).click();
    await page.getByRole("heading", { name: "Readers" }).waitFor();
    await page.getByRole("link", { name: "Mailboxes" }).click();
    await page.getByRole("link", { name: `Who can read ${contact}` }).click();
    await page.getByRole("link", { name: "Give someone access" }).click();
    await page.getByLabel("To", { exact: true }).selectOption({ label: "work team Readers" });
    await page.getByRole("radio", { name: "Read", exact: true }).check();
    await page.getByRole("button", { name: "Give access" }).click();
    await page.getByRole("link", { name: "Work teams" }).click();
    await page.getByLabel("Add to Readers").selectOption({ label: lucie });
    await page.getByRole("button", { name: "Add" }).click();
    await page.getByRole("table", { name: "Members of Readers" }).getByRole("cell", { name: lucie, exact: true }).waitFor();
    await page.getByRole("link", { name: "Mailboxes" }).click();
    await page.getByRole("link", { name: `Who can read ${contact}` }).click();
    await row.getByRole("listitem").filter({ hasText: "work team Readers" }).waitFor();
    if (process.env.SCREENSHOT) {
      // The README's picture of the console (SCREENSHOT=1 node --test e2e/).
      await page.screenshot({ path: join(ROOT, "e2e", "console-access.png"), fullPage: true });
    }

    // Revoke the direct grant: the team's reason stays, the grant's goes.
    await page.getByRole("button", { name: `Remove the direct grant of ${lucie}` }).click();
    await row.getByRole("listitem").filter({ hasText: "work team Readers" }).waitFor();
    assert.doesNotMatch(await row.textContent(), /direct grant/);

    // The audit log shows the revocation.
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByLabel(/^Action/).fill("grant.delete");
    await page.getByRole("button", { name: "Filter" }).click();
    const events = page.getByRole("table", { name: "Events, newest first" });
    await events.getByRole("cell", { name: "grant.delete" }).waitFor();
    assert.match(await events.textContent(), /owner@localhost/);
  });
});

test("a page needs a session, and every answer carries the content security policy", async () => {
  await inPage("console-refusals", async (page) => {
    const answer = await page.goto(`${server.admin}/console/orgs/${org.id}/mailboxes`);
    assert.equal(new URL(page.url()).pathname, "/console/login");
    assert.equal(answer.status(), 200);
    const csp = answer.headers()["content-security-policy"];
    assert.match(csp, /script-src 'self'/);
  });
});
