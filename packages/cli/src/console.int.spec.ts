/**
 * The console in a real browser (Debian's chromium, driven by playwright-core) against a real
 * `twinlog serve` process on the embedded log, with a device simulated over MQTT: log in with the
 * URL serve printed, query the fleet (and see a syntax error where it is), open a twin, edit
 * desired with its etag, watch the delta go from pending to converged when the device reports,
 * see a 412 when someone else wrote first, move the history slider back to an older value, and
 * end with no errors in the browser's console. It never skips: without chromium it fails and says
 * how to install it.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectDevice,
  launchChromium,
  startConsoleServe,
  type ConsoleServe,
  type SimulatedDevice,
} from '../../../test/support/consoleFixture.ts';

/** Page assertions retry for a while: the pipeline runs in another process, on a busy machine. */
const eventually = <T>(probe: () => Promise<T>) => expect.poll(probe, { timeout: 20_000, interval: 100 });

describe('the console in chromium', () => {
  let serve: ConsoleServe;
  let browser: Browser | undefined;
  let device: SimulatedDevice | undefined;

  beforeAll(async () => {
    serve = await startConsoleServe();
  }, 60_000);

  afterAll(async () => {
    device?.close();
    await browser?.close();
    await serve?.stop();
  });

  it(
    'shows the fleet, a twin, its delta going from pending to converged, and its history',
    { timeout: 150_000 },
    async () => {
      browser = await launchChromium();
      // three twins, one of which (thermo-1) is a device connected over MQTT
      const key = await serve.createDevice('thermo-1');
      await serve.createDevice('thermo-2');
      await serve.createDevice('pump-1');
      expect(
        (await serve.rest('PATCH', '/twins/thermo-1', { tags: { site: 'b' }, properties: { desired: { target: 21 } } }))
          .status,
      ).toBe(200);
      expect((await serve.rest('PATCH', '/twins/thermo-2', { tags: { site: 'a' } })).status).toBe(200);
      device = await connectDevice(serve.served.mqttPort!, 'thermo-1', key);

      const page: Page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));

      // the API refuses a browser without a session
      const anonymous = await fetch(`${serve.adminUrl}/ui/api/fleet`);
      expect(anonymous.status).toBe(401);

      // log in: the token leaves the address bar, the cookie is HttpOnly
      await page.goto(serve.loginUrl);
      expect(page.url()).toBe(`${serve.adminUrl}/ui/`);
      const cookies = await page.context().cookies();
      expect(cookies.find((c) => c.name === 'twinlog_console')).toMatchObject({
        httpOnly: true,
        sameSite: 'Strict',
        path: '/ui',
      });

      // the fleet: every twin, the delta counts, live
      await page.locator('table.fleet tbody tr').first().waitFor();
      await eventually(() => page.locator('table.fleet tbody tr').count()).toBe(3);
      await eventually(() => page.locator('#live-state').getAttribute('data-state')).toBe('live');
      await eventually(() => page.locator('.counts [data-status="pending"] .count').textContent()).toBe('1');

      // a syntax error, shown where it is
      await page.fill('#query', 'SELECT * FROM devices WHERE');
      await page.click('button[type="submit"]:has-text("Run query")');
      await page.locator('#query-error [role="alert"]').waitFor();
      expect(await page.locator('#query-error').textContent()).toContain('column 28');
      expect(await page.locator('#query-error pre.caret').textContent()).toBe(
        `SELECT * FROM devices WHERE\n${' '.repeat(27)}^`,
      );

      // a query
      await page.fill('#query', "SELECT * FROM devices WHERE tags.site = 'b'");
      await page.keyboard.press('Enter');
      await eventually(() => page.locator('table.fleet tbody tr').count()).toBe(1);
      expect(await page.locator('#query-error').textContent()).toBe('');
      expect(await page.locator('table.fleet tbody tr').first().getAttribute('data-twin')).toBe('thermo-1');
      expect(await page.locator('table.fleet tbody tr td').nth(1).textContent()).toBe('connected');

      // the twin
      await page.click('table.fleet a:has-text("thermo-1")');
      await page.locator('#twin-etag').waitFor();
      expect(await page.locator('#section-desired').textContent()).toContain('target: 21');
      expect(await page.locator('#section-tags').textContent()).toContain('site: "b"');
      // $metadata on hover, and on keyboard focus
      const targetKey = page.locator('#section-desired li.prop[data-key="target"]');
      await targetKey.locator('.key').focus();
      expect(await targetKey.locator('.tip').isVisible()).toBe(true);
      expect(await targetKey.locator('.tip').textContent()).toMatch(/^updated \S+Z, in version 2$/);
      await eventually(() => page.locator('tr[data-path="target"]').getAttribute('data-status')).toBe('pending');

      // edit desired: a conditional write with the etag shown
      const etagBefore = await page.locator('#twin-etag').textContent();
      await page.click('button[aria-label="Edit desired"]');
      await page.fill('#edit-desired', JSON.stringify({ target: 23, mode: 'eco' }, null, 2));
      await page.click('#section-desired button:has-text("Save")');
      await page.locator('#twin-message .notice-ok').waitFor();
      expect(await page.locator('#twin-message').textContent()).toContain(`etag ${etagBefore}`);
      await eventually(() => page.locator('#twin-etag').textContent()).not.toBe(etagBefore);
      await eventually(() => page.locator('tr[data-path="target"] td').nth(2).textContent()).toBe('23');
      expect(await page.locator('tr[data-path="target"]').getAttribute('data-status')).toBe('pending');

      // the device hears it and reports: pending → converged, live
      const desired = await device.waitForDesired(3);
      expect(desired).toMatchObject({ target: 23, mode: 'eco', $version: 3 });
      await device.report({ target: { value: 23, ac: 200, av: 3 }, mode: 'eco' });
      await eventually(() => page.locator('tr[data-path="target"]').getAttribute('data-status')).toBe('converged');
      await eventually(() => page.locator('tr[data-path="mode"]').getAttribute('data-status')).toBe('converged');
      await eventually(() => page.locator('#section-reported').textContent()).toContain('mode: "eco"');

      // someone else writes first: the save is refused with 412, and said so
      await page.click('button[aria-label="Edit tags"]');
      expect((await serve.rest('PATCH', '/twins/thermo-1', { tags: { owner: 'ops' } })).status).toBe(200);
      await page.fill('#edit-tags', JSON.stringify({ site: 'c' }));
      await page.click('#section-tags button:has-text("Save")');
      await page.locator('#section-tags [role="alert"]').waitFor();
      expect(await page.locator('#section-tags [role="alert"]').textContent()).toContain('412 Precondition failed');
      await page.click('#section-tags button:has-text("Cancel")');

      // history: the timeline, and the slider back to the twin before the edit
      await page.click('a.tab:has-text("History")');
      await page.locator('ol.timeline li.event').first().waitFor();
      await eventually(() => page.locator('ol.timeline li.event:not(.problem)').count()).toBe(6); // create, tags, desired 21, desired 23, reported, tags owner
      expect(await page.locator('ol.timeline').textContent()).toContain('twinlog-console');
      await eventually(() => page.locator('ol.timeline li.problem').count()).toBe(1); // the refused save
      expect(await page.locator('ol.timeline li.problem').textContent()).toContain('PRECONDITION_FAILED');
      expect(await page.locator('#as-of-twin').textContent()).toContain('target: 23');
      await page.focus('#as-of');
      let pressed = 0;
      while (!((await page.locator('#as-of-twin').textContent()) ?? '').includes('target: 21') && pressed < 10) {
        await page.keyboard.press('ArrowLeft');
        pressed++;
      }
      expect(await page.locator('#as-of-twin').textContent()).toContain('target: 21');
      expect(await page.locator('#as-of-twin').textContent()).not.toContain('mode');
      expect(await page.locator('#as-of-text').textContent()).toMatch(/^Event 3 of 6: .*desired/);
      // the difference between the first and the last event
      await page.selectOption('#diff-from', '0');
      await page.selectOption('#diff-to', '5');
      expect(await page.locator('#diff-result').textContent()).toContain('desired.target');

      // accessible basics on every page, at 1280×800 and at a phone's width: every field labelled,
      // the focus on the heading, a skip link first, nothing wider than the screen
      // (page scripts as strings: the tests' type check knows Node's globals, not the DOM's)
      const unlabelled = () =>
        page.evaluate<string[]>(
          "[...document.querySelectorAll('input, select, textarea')].filter((el) => el.labels.length === 0 && !el.hasAttribute('aria-label')).map((el) => el.outerHTML)",
        );
      const pages = ['#/fleet', '#/twin/thermo-1', '#/twin/thermo-1/history'];
      for (const viewport of [
        { width: 1280, height: 800 },
        { width: 390, height: 844 },
      ]) {
        await page.setViewportSize(viewport);
        for (const hash of pages) {
          await page.goto(`${serve.adminUrl}/ui/${hash}`);
          await page.locator('main h1').waitFor();
          await page
            .locator(hash === '#/fleet' ? 'table.fleet' : hash.endsWith('history') ? 'ol.timeline li' : 'tr[data-path]')
            .first()
            .waitFor();
          expect(await unlabelled(), hash).toEqual([]);
          expect(
            await page.evaluate<number>('document.documentElement.scrollWidth'),
            `${hash} at ${viewport.width}`,
          ).toBeLessThanOrEqual(viewport.width);
          // after each navigation the page's heading has the focus; before it, only the skip link
          expect(await page.evaluate<string>('document.activeElement.tagName')).toBe('H1');
          expect(
            await page.evaluate<string>(
              "document.querySelector('a[href], button, input, select, textarea').textContent",
            ),
          ).toBe('Skip to content');
        }
      }

      // nothing went wrong in the page: the browser logs only the two refusals it was asked to show
      expect(errors).toEqual([
        'Failed to load resource: the server responded with a status of 400 (Bad Request)', // the syntax error
        'Failed to load resource: the server responded with a status of 412 (Precondition Failed)', // the stale etag
      ]);
    },
  );

  it('logs in on its own page with a service SAS token, and refuses a wrong token', { timeout: 60_000 }, async () => {
    browser ??= await launchChromium();
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${serve.adminUrl}/ui/`);
    await page.fill('#token', 'not-a-token');
    await page.click('form.login button[type="submit"]');
    await page.locator('main [role="alert"]').waitFor();
    expect(await page.locator('main [role="alert"]').textContent()).toContain('That token was refused');
    await page.fill('#token', serve.serviceSas());
    await page.click('form.login button[type="submit"]');
    await page.locator('#hub-name').waitFor();
    expect(await page.locator('#hub-name').textContent()).toBe('localhost');
    await page.locator('main h1').waitFor();
    expect(await page.locator('main h1').textContent()).toBe('Fleet');
    // logging out ends the session
    await page.click('button:has-text("Log out")');
    await page.locator('form.login').waitFor();
    expect(errors).toEqual([]);
    await context.close();
  });

  it('resumes the live feed from Last-Event-ID', { timeout: 30_000 }, async () => {
    await serve.createDevice('fan-1');
    const login = await fetch(serve.loginUrl, { redirect: 'manual' });
    const cookie = /twinlog_console=[^;]+/.exec(login.headers.get('set-cookie') ?? '')![0];
    const open = async (lastEventId?: string) => {
      const controller = new AbortController();
      const res = await fetch(`${serve.adminUrl}/ui/api/events?device=fan-1`, {
        headers: { cookie, ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }) },
        signal: controller.signal,
      });
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const until = async (pattern: RegExp): Promise<string> => {
        while (!pattern.test(text)) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`stream ended before ${pattern}: ${text}`);
          text += value;
        }
        return text;
      };
      return { until, close: () => controller.abort() };
    };
    const first = await open();
    const ready = await first.until(/event: ready\n/);
    const id = /^id: (.+)$/m.exec(ready)![1]!;
    first.close();
    // written while nobody listens
    expect((await serve.rest('PATCH', '/twins/fan-1', { properties: { desired: { fan: 'auto' } } })).status).toBe(200);
    const second = await open(id);
    const resumed = await second.until(/event: change\n.*"fan":"auto"/);
    expect(resumed).toContain('"resumed":true');
    second.close();
  });
});
