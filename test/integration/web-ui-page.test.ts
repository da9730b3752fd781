// The slot's page in the real Web UI, read as an operator reads it: headless Chromium
// opens the workflow page the UI serves and takes the rendered text. Every instruction
// reads as written: the code's form `<code>#<state>` is shown, not eaten as HTML.
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../workers/dev-server';
import { obtainTemporalCli } from '../../workers/temporal-binaries';
import { uniqueName } from '../harness';
import { launchChromium, obtainChromium } from '../peers/chromium';
import { availableOrSkip, freePort } from '../peers/observability';
import { startSlotRig, stateOf, waitForPrompt, type SlotRig } from '../slot-fixtures';

const chromium = await availableOrSkip('Chromium (Debian package chromium)', obtainChromium);

describe.skipIf(!chromium.ok)(`the slot's page in the Web UI${chromium.ok ? '' : ` (skipped: ${chromium.reason})`}`, () => {
  let server: DevServer;
  let rig: SlotRig;
  let browser: Browser;
  let ui: string;

  beforeAll(async () => {
    if (!chromium.ok) return;
    server = await startDevServer({ executable: await obtainTemporalCli({ build: false }), uiPort: await freePort() });
    ui = server.uiUrl as string;
    rig = await startSlotRig({}, { address: server.address });
    browser = await launchChromium(chromium.value);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await rig?.close();
    await server?.stop();
  });

  /** The page's text once `ready` appears in it (the UI fetches the details after the page loads). */
  async function pageText(workflowId: string, ready: string | RegExp): Promise<string> {
    const page = await browser.newPage();
    try {
      await page.setViewport({ width: 1280, height: 1600 });
      await page.goto(`${ui}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`, { waitUntil: 'networkidle2', timeout: 60_000 });
      // The current details are on the workflow page's "User Metadata" tab ("Current Details").
      await page.locator('a::-p-text(User Metadata)').click();
      let text = '';
      for (let i = 0; i < 100; i++) {
        // The UI renders the details in a frame of their own: the text of every frame, in order.
        const texts = await Promise.all(page.frames().map((frame) => frame.evaluate('document.body ? document.body.innerText : ""').then(String, () => '')));
        text = texts.join('\n');
        if (typeof ready === 'string' ? text.includes(ready) : ready.test(text)) return text;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      throw new Error(`the page never showed ${String(ready)}; it shows:\n${text}`);
    } finally {
      await page.close();
    }
  }

  it('shows the code form and the refusal of a malformed code as written', { timeout: 180_000 }, async () => {
    const slotId = uniqueName('uipage');
    await rig.slots.provision({ slotId, provider: 'claude', host: rig.workers.hostName });
    const waiting = await waitForPrompt(rig.slots, slotId);
    const state = stateOf(waiting.prompt.url);
    const text = await pageText(`slot:${slotId}`, 'Next step');
    const sentence = `1. Open the login page, sign in, and copy the code it shows (<code>#<state>, where <state> is the one in the current login URL (…${state.slice(-6)}); copy the whole code from the browser).`;
    // innerText drops the list's numbers: the sentence as an operator reads it, less "1. ".
    expect(text).toContain(sentence.slice(3));
    expect(text).toContain('Send a Signal (this page) → signal name submitCode, input {"code": "<the code you copied>"}.');
    // Each fact on its own line, not run together.
    expect(text).toMatch(/^Login page: claude\.com\/cai\/oauth\/authorize$/m);
    expect(text).toMatch(/^Answer before: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
    expect(text).toMatch(new RegExp(`^A new URL instead: slotctl relogin ${slotId}, or Send a Signal`, 'm'));

    // The Web UI's signal form with a code of the wrong form: the page says why, placeholders included.
    await rig.slots.client.workflow.getHandle(`slot:${slotId}`).signal('submitCode', { code: 'no-hash' });
    const refused = await pageText(`slot:${slotId}`, 'Problem:');
    expect(refused).toMatch(/^Problem: a submitted code was not used: code does not have the expected form: <code>#<state>, where <state> is the one in the current login URL/m);
    expect(refused).not.toContain('no-hash');
  });
});
