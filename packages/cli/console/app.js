// The console's entry point: checks the session, then routes on the URL's hash.
//   #/fleet?q=…            the fleet page
//   #/twin/<id>            a twin
//   #/twin/<id>/history    its history
/* global URLSearchParams, document, history, location, window -- provided by the browser */
import { api, ApiError } from './api.js';
import { h, notice, replace } from './dom.js';
import { fleetPage } from './fleet.js';
import { historyPage } from './history.js';
import { stopFollowing } from './live.js';
import { twinPage } from './twin.js';

const main = document.getElementById('main');

function loginPage(refused) {
  stopFollowing();
  document.getElementById('session').hidden = true;
  replace(
    main,
    h('h1', { tabindex: '-1' }, 'Log in to the twinlog console'),
    refused
      ? notice('error', 'That token was refused (wrong, expired, or from an earlier run of twinlog serve).')
      : null,
    h(
      'p',
      {},
      'Open the URL that ',
      h('code', {}, 'twinlog serve'),
      ' logged at start (the line ',
      h('code', {}, 'console: open this URL to log in'),
      '), or paste its token, or a service SAS token signed with the iothubowner key:',
    ),
    h(
      'form',
      { method: 'post', action: '/ui/login', class: 'login' },
      h('label', { for: 'token' }, 'Login token or SharedAccessSignature'),
      h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true }),
      h('button', { type: 'submit', class: 'primary' }, 'Log in'),
    ),
  );
}

async function route() {
  const hash = location.hash.replace(/^#/, '') || '/fleet';
  const [path, query = ''] = hash.split('?');
  const parts = path.split('/').filter((p) => p !== '');
  document.querySelectorAll('.site-nav a').forEach((a) => a.removeAttribute('aria-current'));
  try {
    if (parts[0] === 'twin' && parts[1] !== undefined) {
      const id = decodeURIComponent(parts[1]);
      document.title = `${id} · twinlog console`;
      if (parts[2] === 'history') await historyPage(main, id);
      else await twinPage(main, id);
    } else {
      document.title = 'Fleet · twinlog console';
      document.getElementById('nav-fleet').setAttribute('aria-current', 'page');
      await fleetPage(main, new URLSearchParams(query));
    }
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return loginPage(false);
    replace(main, h('h1', { tabindex: '-1' }, 'Something went wrong'), notice('error', e.message));
  }
  main.querySelector('h1')?.focus({ preventScroll: true });
}

async function start() {
  if (new URLSearchParams(location.search).get('login') === 'refused') {
    history.replaceState(null, '', '/ui/');
    return loginPage(true);
  }
  const session = await api.session();
  if (!session.loggedIn) return loginPage(false);
  document.getElementById('session').hidden = false;
  document.getElementById('hub-name').textContent = session.hubName;
  window.addEventListener('hashchange', () => void route());
  await route();
}

start().catch((e) => replace(main, notice('error', e.message)));
