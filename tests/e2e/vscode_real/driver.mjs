// Drives a real VS Code (code-server) in Debian's headless chromium for
// tests/e2e/test_vscode_real.py. One process per test module: it reads one JSON request per
// line on stdin (`{"id": 1, "op": "statusBar", "args": {...}}`) and answers one JSON line on
// stdout (`{"id": 1, "ok": true, "value": ...}` or `{"id": 1, "ok": false, "error": "..."}`).
// The operations are what a person does and sees: press keys, run a palette command, read
// the status bar, the notifications, the editor, the webview panel. The assertions live in
// Python. puppeteer-core never downloads a browser: the executable is given.
import { createInterface } from 'node:readline';
import puppeteer from 'puppeteer-core';

const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--window-size=1400,900',
];

let browser;
let page;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns a truthy value (or throw `what` after `timeout` ms). */
async function until(fn, timeout, what) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = `error: ${err.message}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
    await sleep(150);
  }
}

/** "Preferences: Open Remote Settings (JSON) (<remote name>)": the title names the remote. */
async function remoteSettingsJsonTitle() {
  await ops.escape();
  await page.keyboard.press('F1');
  const input = await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 10000 });
  await input.type('>Preferences: Open Remote Settings (JSON)', { delay: 5 });
  const label = await until(
    () =>
      page.evaluate(() =>
        [...document.querySelectorAll('.quick-input-widget .monaco-list-row .label-name')]
          .map((el) => el.innerText.replace(/\u00a0/g, ' ').trim())
          .find((t) => t.startsWith('Preferences: Open Remote Settings (JSON)')),
      ),
    10000,
    'the Remote settings (JSON) command',
  );
  await ops.escape();
  return label;
}

const rowLabel = (el) => (el.querySelector('.label-name')?.innerText ?? '').replace(/\u00a0/g, ' ').trim();

/**
 * Accept the quick input row labelled exactly `label`: Enter once it is the focused row (the
 * list re-renders while it filters, so a click can land on a row that is being replaced);
 * if another row keeps the focus, a click on ours.
 */
async function clickQuickInputRow(label, what) {
  const focused = await until(
    () => page.evaluate((l) => {
      const row = document.querySelector('.quick-input-widget .monaco-list-row.focused');
      return !!row && (row.querySelector('.label-name')?.innerText ?? '').replace(/\u00a0/g, ' ').trim() === l;
    }, label),
    4000,
    what,
  ).catch(() => false);
  if (focused) {
    await page.keyboard.press('Enter');
    return;
  }
  await until(
    async () => {
      for (const r of await page.$$('.quick-input-widget .monaco-list-row')) {
        try {
          if ((await r.evaluate(rowLabel)) !== label) continue;
          await r.click();
          return true;
        } catch {
          return false; // detached by a re-render: look again
        }
      }
      return false;
    },
    10000,
    what,
  );
}

const clean = (s) => (s ?? '').replace(/\u00a0/g, ' ');

const ops = {
  async launch({ executable, userDataDir, url }) {
    browser = await puppeteer.launch({
      executablePath: executable,
      headless: true,
      userDataDir,
      args: CHROMIUM_FLAGS,
      defaultViewport: { width: 1400, height: 900 },
      protocolTimeout: 60000,
    });
    page = (await browser.pages())[0] ?? (await browser.newPage());
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 120000 });
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 120000 });
    return true;
  },

  async reload({ url }) {
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 120000 });
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 120000 });
    return true;
  },

  /** Text and tooltip of the status bar items whose text or id matches `pattern`. */
  async statusBar() {
    return page.evaluate(() =>
      [...document.querySelectorAll('.part.statusbar .statusbar-item')].map((el) => ({
        id: el.id,
        text: el.innerText.replace(/\u00a0/g, ' ').trim(),
        label: el.getAttribute('aria-label') ?? el.querySelector('[aria-label]')?.getAttribute('aria-label') ?? '',
      })),
    );
  },

  async waitStatus({ id, pattern, timeout = 60000 }) {
    const re = new RegExp(pattern);
    return until(
      async () => {
        const items = await ops.statusBar();
        const item = items.find((i) => i.id === id);
        return item && re.test(item.text) ? item : false;
      },
      timeout,
      `status item ${id} matching /${pattern}/`,
    );
  },

  async press({ keys }) {
    for (const k of keys) {
      const parts = k.split('+');
      const main = parts.pop();
      for (const m of parts) await page.keyboard.down(m);
      await page.keyboard.press(main);
      for (const m of parts.reverse()) await page.keyboard.up(m);
      await sleep(80);
    }
    return true;
  },

  async type({ text }) {
    await page.keyboard.type(text, { delay: 10 });
    return true;
  },

  /** F1, the command's title, then a click on exactly that entry: the palette as a person uses it. */
  async command({ title }) {
    await ops.escape();
    await page.keyboard.press('F1');
    const input = await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 10000 });
    await input.type(`>${title}`, { delay: 5 });
    await clickQuickInputRow(title, `palette entry "${title}"`);
    return true;
  },

  /**
   * Replace a settings.json through VS Code, as a person would: open it from the palette
   * (User or Remote), select all, insert the new text, save, close.
   */
  async editSettingsJson({ scope, text }) {
    const title = scope === 'remote' ? await remoteSettingsJsonTitle() : 'Preferences: Open User Settings (JSON)';
    await ops.command({ title });
    const expected = scope === 'remote' ? 'Machine' : 'User';
    await until(
      () => page.evaluate((dir) => /settings\.json/.test(document.querySelector('.editor-group-container.active .tab.active')?.innerText ?? '') && [...document.querySelectorAll('.monaco-breadcrumbs')].some((b) => b.innerText.includes(dir)), expected),
      15000,
      `${expected}/settings.json open`,
    );
    await page.waitForSelector('.editor-group-container.active .editor-instance .monaco-editor textarea', { timeout: 10000 });
    await page.click('.editor-group-container.active .editor-instance .monaco-editor .view-lines');
    await page.keyboard.down('Control');
    await page.keyboard.press('a');
    await page.keyboard.up('Control');
    await page.keyboard.press('Delete');
    // insertText: one input event, so no auto-closed brackets or quotes get added.
    await page.keyboard.sendCharacter(text);
    await page.keyboard.down('Control');
    await page.keyboard.press('s');
    await page.keyboard.up('Control');
    await until(() => page.evaluate(() => !document.querySelector('.editor-group-container.active .tab.active')?.classList.contains('dirty')), 10000, 'settings.json saved');
    await ops.command({ title: 'View: Close Editor' });
    return true;
  },

  /** Escape, only when a quick input is open (in the editor it would drop the selection). */
  async escape() {
    const open = await page.evaluate(() => {
      const w = document.querySelector('.quick-input-widget');
      return !!w && w.style.display !== 'none' && w.offsetParent !== null;
    });
    if (open) {
      await page.keyboard.press('Escape');
      await sleep(100);
    }
    return true;
  },

  /** Ctrl+P, the file name, Enter; waits until its tab is active. */
  async openFile({ name }) {
    await ops.escape();
    await page.keyboard.down('Control');
    await page.keyboard.press('p');
    await page.keyboard.up('Control');
    const input = await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 10000 });
    await input.type(name, { delay: 5 });
    await clickQuickInputRow(name, `quick open entry ${name}`);
    await until(() => page.evaluate((n) => document.querySelector('.editor-group-container.active .tab.active')?.innerText.includes(n), name), 15000, `active tab ${name}`);
    await page.waitForSelector('.editor-group-container.active .editor-instance .monaco-editor .view-lines', { timeout: 15000 });
    await page.click('.editor-group-container.active .editor-instance .monaco-editor .view-lines');
    return true;
  },

  /** Ctrl+G line[:column], 1-based, as typed by a person. */
  async gotoLine({ line, column }) {
    await page.keyboard.down('Control');
    await page.keyboard.press('g');
    await page.keyboard.up('Control');
    const input = await page.waitForSelector('.quick-input-widget:not([style*="display: none"]) input', { timeout: 10000 });
    await input.type(column ? `${line}:${column}` : `${line}`, { delay: 5 });
    await sleep(200);
    await page.keyboard.press('Enter');
    await sleep(200);
    return true;
  },

  /** The visible lines of the active editor, top to bottom. */
  async editorLines() {
    return page.evaluate(() => {
      const editor = document.querySelector('.editor-group-container.active .editor-instance .monaco-editor');
      if (!editor) return null;
      const lines = [...editor.querySelectorAll('.view-lines .view-line')].map((el) => ({
        top: parseFloat(el.style.top || '0'),
        text: el.innerText.replace(/\u00a0/g, ' '),
      }));
      lines.sort((a, b) => a.top - b.top);
      return lines.map((l) => l.text);
    });
  },

  async waitEditorText({ pattern, timeout = 30000 }) {
    const re = new RegExp(pattern, 'm');
    return until(
      async () => {
        const lines = await ops.editorLines();
        return lines && re.test(lines.join('\n')) ? lines : false;
      },
      timeout,
      `editor text matching /${pattern}/`,
    );
  },

  /** Ghost text (inline completion) shown in the active editor. */
  async ghostText() {
    return page.evaluate(() =>
      [...document.querySelectorAll('.editor-group-container.active .monaco-editor .ghost-text-decoration, .editor-group-container.active .monaco-editor .ghost-text')]
        .map((el) => el.innerText.replace(/\u00a0/g, ' '))
        .join(''),
    );
  },

  /** Squiggles by severity in the active editor. */
  async squiggles() {
    return page.evaluate(() => ({
      error: document.querySelectorAll('.editor-group-container.active .squiggly-error').length,
      warning: document.querySelectorAll('.editor-group-container.active .squiggly-warning').length,
    }));
  },

  /** Notification toasts: message, source, buttons, progress shown. */
  async notifications() {
    return page.evaluate(() =>
      [...document.querySelectorAll('.notification-toast-container .notification-list-item, .notifications-center .notification-list-item')].map((n) => ({
        message: n.querySelector('.notification-list-item-message')?.innerText ?? '',
        source: n.querySelector('.notification-list-item-source')?.innerText ?? '',
        buttons: [...n.querySelectorAll('.notification-list-item-buttons-container .monaco-button')].map((b) => b.innerText.trim()),
        progress: !!n.querySelector('.monaco-progress-container.active, .progress-bit:not([style*="display: none"])'),
      })),
    );
  },

  async waitNotification({ pattern, timeout = 30000 }) {
    const re = new RegExp(pattern);
    return until(async () => (await ops.notifications()).find((n) => re.test(n.message)), timeout, `notification /${pattern}/`);
  },

  async waitNoNotification({ pattern, timeout = 30000 }) {
    const re = new RegExp(pattern);
    return until(async () => !(await ops.notifications()).some((n) => re.test(n.message)), timeout, `no notification /${pattern}/`);
  },

  /** Click a button of the notification whose message matches. */
  async clickNotificationButton({ pattern, button }) {
    const re = new RegExp(pattern);
    const handles = await page.$$('.notification-toast-container .notification-list-item');
    for (const h of handles) {
      const message = await h.$eval('.notification-list-item-message', (el) => el.innerText).catch(() => '');
      if (!re.test(message)) continue;
      for (const b of await h.$$('.notification-list-item-buttons-container .monaco-button')) {
        if ((await b.evaluate((el) => el.innerText.trim())) === button) {
          await b.click();
          return true;
        }
      }
    }
    throw new Error(`no notification /${pattern}/ with a "${button}" button`);
  },

  /** Ctrl+. at the cursor: the titles of the code actions in the light-bulb menu. */
  async codeActions({ timeout = 20000 }) {
    await ops.escape();
    await page.keyboard.down('Control');
    await page.keyboard.press('.');
    await page.keyboard.up('Control');
    return until(
      () =>
        page.evaluate(() => {
          const rows = [...document.querySelectorAll('.action-widget .monaco-list-row.action')];
          return rows.length > 0 ? rows.map((r) => r.innerText.replace(/\u00a0/g, ' ').trim()) : false;
        }),
      timeout,
      'the code action menu',
    );
  },

  /** Pick the code action whose title contains `title` (the menu must be open). */
  async pickCodeAction({ title }) {
    const rows = await page.$$('.action-widget .monaco-list-row.action');
    for (const r of rows) {
      const text = await r.evaluate((el) => el.innerText);
      if (text.includes(title)) {
        await r.click();
        return text.trim();
      }
    }
    throw new Error(`no code action "${title}"`);
  },

  /** Editor tab titles, and which is active. */
  async tabs() {
    return page.evaluate(() =>
      [...document.querySelectorAll('.tabs-container .tab')].map((t) => ({
        title: t.innerText.replace(/\u00a0/g, ' ').trim(),
        active: t.classList.contains('active'),
      })),
    );
  },

  /** The webview panel whose page has our #content: its header, text, footer, Stop button. */
  async panel() {
    for (const frame of page.frames()) {
      try {
        const v = await frame.evaluate(() => {
          const content = document.getElementById('content');
          const footer = document.getElementById('footer');
          const stop = document.getElementById('stop');
          const h1 = document.querySelector('header h1');
          if (!content || !footer || !stop) return null;
          return {
            title: h1 ? h1.innerText : '',
            text: content.innerText,
            footer: footer.innerText,
            stopVisible: !stop.hidden,
            streaming: content.classList.contains('cursor'),
            visible: document.visibilityState === 'visible',
          };
        });
        if (v) return v;
      } catch {
        // a frame being torn down
      }
    }
    return null;
  },

  async panels() {
    const out = [];
    for (const frame of page.frames()) {
      try {
        const v = await frame.evaluate(() => (document.getElementById('content') ? document.querySelector('header h1')?.innerText ?? '' : null));
        if (v !== null) out.push(v);
      } catch {
        // ignore
      }
    }
    return out;
  },

  async waitPanel({ field, pattern, timeout = 30000 }) {
    const re = new RegExp(pattern, 's');
    return until(async () => {
      const p = await ops.panel();
      return p && re.test(clean(p[field])) ? p : false;
    }, timeout, `panel ${field} matching /${pattern}/`);
  },

  /** Text of any frame (a Markdown preview, a webview) matching `pattern`. */
  async waitFrameText({ pattern, timeout = 20000 }) {
    const re = new RegExp(pattern, 's');
    return until(async () => {
      for (const frame of page.frames()) {
        try {
          const text = clean(await frame.evaluate(() => document.body?.innerText ?? ''));
          if (re.test(text)) return text.slice(0, 3000);
        } catch {
          // a frame being torn down
        }
      }
      return false;
    }, timeout, `a frame with text matching /${pattern}/`);
  },

  async clickPanel({ id }) {
    for (const frame of page.frames()) {
      const el = await frame.$(`#${id}`).catch(() => null);
      if (el && (await frame.$('#content').catch(() => null))) {
        await el.click();
        return true;
      }
    }
    throw new Error(`no panel button #${id}`);
  },

  /** The Settings editor: its selected tab (User, Remote [...], Workspace), search text, rows. */
  async settingsEditor({ row = '', timeout = 15000 }) {
    const re = new RegExp(row);
    return until(
      async () => {
        const v = await page.evaluate(() => {
          const editor = document.querySelector('.settings-editor');
          if (!editor) return false;
          const rows = [...editor.querySelectorAll('.setting-item-contents')].map((r) => {
            const input = r.querySelector('input, textarea');
            return `${r.querySelector('.setting-item-label')?.innerText ?? ''}: ${input ? input.value : ''}`;
          });
          if (rows.length === 0) return false;
          const tab = editor.querySelector('.settings-tabs-widget .action-label.checked, .settings-tabs-widget .action-item.checked .action-label');
          const query = editor.querySelector('.settings-header .suggest-input-container .view-lines')?.innerText ?? '';
          return { tab: (tab?.innerText ?? '').replace(/\u00a0/g, ' ').trim(), query: query.replace(/\u00a0/g, ' '), rows };
        });
        return v && v.rows.some((r) => re.test(r)) ? v : false;
      },
      timeout,
      `the Settings editor with a row matching /${row}/`,
    );
  },

  /** The focused row of the suggest widget (label and detail), or ''. */
  async suggestFocused() {
    return page.evaluate(() => (document.querySelector('.suggest-widget .monaco-list-row.focused')?.innerText ?? '').replace(/\u00a0/g, ' '));
  },

  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: false });
    return path;
  },

  async close() {
    await browser?.close();
    return true;
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  try {
    const fn = ops[req.op];
    if (!fn) throw new Error(`unknown op ${req.op}`);
    const value = await fn(req.args ?? {});
    process.stdout.write(JSON.stringify({ id: req.id, ok: true, value }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ id: req.id, ok: false, error: String(err?.stack ?? err) }) + '\n');
  }
  if (req.op === 'close') process.exit(0);
});
rl.on('close', async () => {
  await browser?.close().catch(() => {});
  process.exit(0);
});
