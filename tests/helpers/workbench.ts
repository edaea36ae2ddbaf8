// Drives VS Code's workbench (code-server in Debian's Chromium, through playwright-core) the way a
// person does: the command palette, quick open, the keyboard, and reading what is on screen —
// status bar items, ghost text, notifications and the output panel. Each step's screenshot is kept
// and all of them are written out when a step fails.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { waitUntil } from './wait';

export const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
// Playwright refuses --user-data-dir here; it makes a fresh profile itself.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Fails (never skips) with what to install when there is no Chromium to drive. */
export function requireChromium(): void {
  if (existsSync(CHROMIUM)) return;
  throw new Error(
    `The end-to-end tests drive VS Code (code-server) in Chromium and found none at ${CHROMIUM}.\n` +
      'Install it: sudo apt-get update && sudo apt-get install -y chromium  (Debian; .ci/run does this), ' +
      'or point KILN_CHROMIUM at a Chromium binary.',
  );
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

export interface StatusItem {
  /** The visible text, icons left out (e.g. `38 ms · 312 MB · CPU`). */
  text: string;
  /** Codicon names shown in the item (e.g. `zap`, `circle-slash`). */
  icons: string[];
}

export class Workbench {
  private constructor(readonly page: Page) {}

  /** Opens `url` in a new page and waits for the workbench to render. */
  static async open(browser: Browser, url: string): Promise<Workbench> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(url);
    await page.waitForSelector('.monaco-workbench .part.statusbar', { timeout: 90_000 });
    return new Workbench(page);
  }

  /** A status bar item by its id (`<extension id>.<item id>`), or undefined while it is not shown. */
  async statusItem(id: string): Promise<StatusItem | undefined> {
    const item = this.page.locator(`[id="${id}"]`);
    if ((await item.count()) === 0) return undefined;
    // Runs in the page (the project's types have no DOM): codicons are spans with class `codicon-NAME`.
    const { text, classes } = await item.evaluate((el) => ({
      text: el.textContent ?? '',
      classes: Array.from(el.querySelectorAll('.codicon'), (c) => (c as unknown as { className: string }).className),
    }));
    const icons = classes.flatMap((c) =>
      c
        .split(/\s+/)
        .filter((k) => k.startsWith('codicon-') && k !== 'codicon-modifier-spin')
        .map((k) => k.slice('codicon-'.length)),
    );
    return { text: text.trim(), icons };
  }

  /** The inline suggestion shown in the editor, with the editor's U+00A0 spaces turned back into spaces. */
  async ghostText(): Promise<string> {
    const parts = await this.page.locator('.ghost-text-decoration').allTextContents();
    return parts.join('').replace(/\u00a0/g, ' ');
  }

  /** Messages of the notification toasts on screen. */
  notifications(): Promise<string[]> {
    return this.page.locator('.notifications-toasts .notification-list-item-message').allTextContents();
  }

  /** Clicks the button `label` of the toast whose message contains `message`. */
  async clickNotificationButton(message: string, label: string): Promise<void> {
    const toast = this.page.locator('.notifications-toasts .notification-list-item', { has: this.page.locator('.notification-list-item-message', { hasText: message }) }).first();
    const button = toast.locator('.notification-list-item-buttons-container .monaco-button', { hasText: label }).first();
    await button.waitFor({ state: 'visible', timeout: 15_000 });
    await button.click();
  }

  /** Labels of the buttons on the toast whose message contains `message` (waits for the toast). */
  async notificationButtons(message: string): Promise<string[]> {
    const toast = this.page.locator('.notifications-toasts .notification-list-item', { has: this.page.locator('.notification-list-item-message', { hasText: message }) }).first();
    await toast.waitFor({ state: 'visible', timeout: 15_000 });
    return (await toast.locator('.notification-list-item-buttons-container .monaco-button').allTextContents()).map((t) => t.trim());
  }

  /**
   * The command palette's rows for `query`, read once the row `present` shows (so the list is
   * filled); the palette is closed again.
   */
  async paletteCommands(query: string, present: string): Promise<string[]> {
    await this.page.keyboard.press('F1');
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.pressSequentially(query);
    await this.page
      .locator('.quick-input-list .monaco-list-row', { has: this.page.locator('.label-name', { hasText: present }) })
      .first()
      .waitFor({ state: 'visible', timeout: 20_000 });
    const labels = await this.page.locator('.quick-input-list .monaco-list-row .label-name').allTextContents();
    await this.closeQuickInput();
    return labels.map((l) => l.trim());
  }

  /** The text of the output panel's editor (the lines it renders). */
  async outputText(): Promise<string> {
    const lines = await this.page.locator('.part.panel .output-view .view-line').allTextContents();
    return lines.join('\n').replace(/\u00a0/g, ' ');
  }

  async quickInputVisible(): Promise<boolean> {
    return this.page.locator('.quick-input-widget').isVisible();
  }

  /** Runs a palette command by its full title, e.g. `Kiln: Show Stats`. */
  async runCommand(title: string): Promise<void> {
    await this.pickFromQuickInput('F1', title, title);
  }

  /** Opens a workspace file through quick open (Ctrl+P) and waits until its editor is ready for typing. */
  async openFile(name: string): Promise<void> {
    await this.pickFromQuickInput('Control+p', name, name);
    await this.page.waitForSelector(`.tabs-container .tab.active[aria-label*="${name}"]`, { timeout: 20_000 });
    await this.page.waitForSelector('.editor-instance .monaco-editor.focused', { timeout: 20_000 });
    // VS Code creates the editor's inline-suggestion controller "eventually": in an idle callback
    // (or 5 s after the editor opened). Keystrokes before that trigger no suggestion. Idle callbacks
    // run in the order they were asked for, so once ours has run, the controller exists.
    await this.page.evaluate(
      () =>
        new Promise<void>((resolve) =>
          (globalThis as unknown as { requestIdleCallback(cb: () => void, o: { timeout: number }): void }).requestIdleCallback(() => resolve(), { timeout: 6000 }),
        ),
    );
  }

  /** Presses Escape until the quick input is gone (a picker that is still loading can reopen once). */
  async closeQuickInput(): Promise<void> {
    await waitUntil(
      'the quick input to close',
      async () => {
        const visible = await this.quickInputVisible();
        if (visible) await this.page.keyboard.press('Escape');
        return visible;
      },
      (visible) => !visible,
      10_000,
    );
  }

  /** Opens a quick input with `key`, types `query`, waits for a row labelled `label` and picks it. */
  private async pickFromQuickInput(key: string, query: string, label: string): Promise<void> {
    await this.page.keyboard.press(key);
    const input = this.page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.pressSequentially(query);
    const row = this.page.locator('.quick-input-list .monaco-list-row', { has: this.page.locator('.label-name', { hasText: label }) }).first();
    await row.waitFor({ state: 'visible', timeout: 20_000 });
    await waitUntil(
      `"${label}" to be the selected row`,
      () => this.page.locator('.quick-input-list .monaco-list-row.focused .label-name').first().textContent(),
      (t) => t?.trim() === label,
      10_000,
    );
    const picked = await input.inputValue();
    await this.page.keyboard.press('Enter');
    // Done when the picker has gone, or the same widget shows what the pick opened (a file dialog).
    await waitUntil(
      'the pick to be taken',
      async () => !(await this.quickInputVisible()) || (await input.inputValue()) !== picked,
      (done) => done,
      10_000,
    );
  }
}

/** Screenshots after every step; all of them (and any logs) are written to `dir` when a step fails. */
export class StepRecorder {
  private readonly shots: { name: string; png: Buffer }[] = [];

  constructor(
    private readonly dir: string,
    private readonly page: () => Page | undefined,
    private readonly logs: () => Record<string, string> = () => ({}),
  ) {
    rmSync(dir, { recursive: true, force: true }); // screenshots of an earlier run would mislead
  }

  async step<T>(name: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      await this.shoot(name);
      return result;
    } catch (err) {
      await this.shoot(`${name} (failed)`);
      this.write();
      throw err;
    }
  }

  private async shoot(name: string): Promise<void> {
    const page = this.page();
    const png = await page?.screenshot({ timeout: 10_000 }).catch(() => undefined);
    if (png) this.shots.push({ name, png });
  }

  private write(): void {
    mkdirSync(this.dir, { recursive: true });
    for (const [i, s] of this.shots.entries()) writeFileSync(join(this.dir, `${String(i + 1).padStart(2, '0')}-${s.name.replace(/[^\w.-]+/g, '-')}.png`), s.png);
    for (const [name, text] of Object.entries(this.logs())) writeFileSync(join(this.dir, name), text);
  }
}
