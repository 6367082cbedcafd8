/**
 * `npm run console:screenshots`: PNGs of every console page, at 1280×800 and at a phone's width,
 * into docs/console/ (the README shows them). It starts its own `twinlog serve` on a temporary
 * embedded log, fills it with a small fleet (devices over REST, two of them connected over MQTT
 * and reporting), and drives Debian's chromium with playwright-core.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  connectDevice,
  launchChromium,
  startConsoleServe,
  type ConsoleServe,
  type SimulatedDevice,
} from './consoleFixture.ts';
import { ROOT } from './serveProcess.ts';

const OUT = join(ROOT, 'docs', 'console');
const SIZES = [
  { name: 'desktop', viewport: { width: 1280, height: 800 }, fullPage: false },
  { name: 'phone', viewport: { width: 390, height: 844 }, fullPage: true },
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fillFleet(serve: ConsoleServe): Promise<SimulatedDevice[]> {
  const sites = ['berlin', 'lyon', 'porto'];
  const keys: Record<string, string> = {};
  for (let i = 1; i <= 9; i++) {
    const id = i <= 6 ? `thermostat-${i}` : `pump-${i - 6}`;
    keys[id] = await serve.createDevice(id);
    await serve.rest('PATCH', `/twins/${id}`, {
      tags: { site: sites[i % 3], model: i <= 6 ? 'T-200' : 'P-40' },
      properties: { desired: i <= 6 ? { targetTemperature: 20 + (i % 3), mode: 'eco' } : { flow: 12 } },
    });
  }
  const devices: SimulatedDevice[] = [];
  const d1 = await connectDevice(serve.served.mqttPort!, 'thermostat-1', keys['thermostat-1']!);
  devices.push(d1);
  await d1.report({ firmware: '2.4.1', temperature: 19.5 });
  await d1.report({ targetTemperature: { value: 21, ac: 200, av: 2 }, mode: 'eco' });
  await serve.rest('PATCH', '/twins/thermostat-1', { properties: { desired: { targetTemperature: 22 } } });
  await d1.waitForDesired(3);
  await d1.report({ targetTemperature: { value: 21, ac: 202, av: 3, ad: 'heating' } });
  const d2 = await connectDevice(serve.served.mqttPort!, 'thermostat-2', keys['thermostat-2']!);
  devices.push(d2);
  await d2.report({ targetTemperature: { value: 22, ac: 400, av: 2, ad: 'out of range' } });
  // converged ones
  const d3 = await connectDevice(serve.served.mqttPort!, 'thermostat-3', keys['thermostat-3']!);
  await d3.report({ targetTemperature: { value: 20, ac: 200, av: 2 }, mode: 'eco' });
  d3.close();
  // a write that lost the race (shows as a rejection on thermostat-1's timeline)
  await serve.rest('PATCH', '/twins/thermostat-1', { tags: { owner: 'facilities' } });
  await sleep(1500);
  return devices;
}

async function shoot(browser: Browser, serve: ConsoleServe): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  for (const size of SIZES) {
    const context = await browser.newContext({ viewport: size.viewport, deviceScaleFactor: 1 });
    const page: Page = await context.newPage();
    const save = async (name: string) => {
      await sleep(700); // the live indicator connects, the tables settle
      const path = join(OUT, `${name}-${size.name}.png`);
      await page.screenshot({ path, fullPage: size.fullPage });
      console.log(path);
    };
    await page.goto(`${serve.adminUrl}/ui/`);
    await page.locator('form.login').waitFor();
    await save('login');
    await page.goto(serve.loginUrl);
    await page.locator('table.fleet').waitFor();
    await save('fleet');
    await page.fill('#query', "SELECT * FROM devices WHERE tags.site = 'lyon' AND");
    await page.click('button:has-text("Run query")');
    await page.locator('#query-error [role="alert"]').waitFor();
    await save('fleet-query-error');
    await page.goto(`${serve.adminUrl}/ui/#/twin/thermostat-1`);
    await page.locator('tr[data-path="targetTemperature"]').waitFor();
    await save('twin');
    await page.click('button[aria-label="Edit desired"]');
    await page.fill('#edit-desired', JSON.stringify({ targetTemperature: 23, mode: 'comfort' }, null, 2));
    await serve.rest('PATCH', '/twins/thermostat-1', { tags: { floor: size.name === 'desktop' ? 2 : 3 } });
    await page.click('#section-desired button:has-text("Save")');
    await page.locator('#section-desired [role="alert"]').waitFor();
    await save('twin-412');
    await page.goto(`${serve.adminUrl}/ui/#/twin/thermostat-1/history`);
    await page.locator('ol.timeline li.event').first().waitFor();
    await page.focus('#as-of');
    for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowLeft');
    await save('history');
    await context.close();
  }
}

async function main(): Promise<void> {
  const serve = await startConsoleServe();
  let browser: Browser | undefined;
  let devices: SimulatedDevice[] = [];
  try {
    devices = await fillFleet(serve);
    browser = await launchChromium();
    await shoot(browser, serve);
  } finally {
    for (const d of devices) d.close();
    await browser?.close();
    await serve.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
