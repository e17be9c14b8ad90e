/**
 * The live page: sign in with a token, then watch documents being processed, answers streaming in
 * and notifications arriving, all over one `herald/client` connection that reconnects and resumes
 * by itself. Served at `/` (see src/web/page.ts); every element it uses is in index.html.
 */
import { createHeraldClient, MeDocument, type HeraldClient, type MeQuery } from '../client/index.js';
import { setUpAnswers } from './answers.js';
import { showConnection } from './connection.js';
import { setUpDocuments } from './documents.js';
import { find, messageOf, onSubmit } from './dom.js';
import { setUpJobs } from './jobs.js';
import { setUpNotifications } from './notifications.js';
import { setUpPresence } from './presence.js';
import { setUpQueues } from './queues.js';

/** Where the token is kept, for this tab only, so a reload stays signed in. */
const TOKEN_KEY = 'herald.token';
/** Ping interval: how soon the latency shows, and how soon a dead connection is noticed. */
const KEEP_ALIVE_MS = 5_000;

const tokenInput = find('#token', HTMLInputElement);
const viewer = find('#viewer', HTMLElement);
const errorLine = find('#error', HTMLElement);
let current: HeraldClient | null = null;

const report = (error: unknown) => (errorLine.textContent = messageOf(error));
const client = (): HeraldClient => {
  if (!current) throw new Error('Connect with a token first.');
  return current;
};
const setSignedIn = (signedIn: boolean) => {
  for (const fieldset of document.querySelectorAll('main fieldset'))
    if (fieldset instanceof HTMLFieldSetElement) fieldset.disabled = !signedIn;
};

setUpDocuments(client, report);
setUpAnswers(client, report);
const notifications = setUpNotifications(client, report);
const queues = setUpQueues(client, report);
const jobs = setUpJobs(client, report);
const presence = setUpPresence(client, report);

/** The graphql-ws endpoint of the server that served this page. */
function endpoint(): string {
  const url = new URL('/graphql', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** Drops the previous session, if any, and starts one with `token`. */
async function connect(token: string): Promise<void> {
  errorLine.textContent = '';
  setSignedIn(false);
  viewer.textContent = '';
  await current?.dispose();
  notifications.reset();
  queues.hide();
  jobs.hide();
  await presence.stop();
  for (const cards of document.querySelectorAll('.cards')) cards.replaceChildren();
  const herald = createHeraldClient({ url: endpoint(), getToken: () => token, keepAliveMs: KEEP_ALIVE_MS });
  current = herald;
  showConnection(herald);
  let me: MeQuery['me'];
  try {
    ({ me } = await herald.query(MeDocument));
  } catch (error) {
    if (current !== herald) return; // a newer sign-in took over
    report(error);
    sessionStorage.removeItem(TOKEN_KEY);
    current = null;
    await herald.dispose();
    return;
  }
  viewer.textContent = `Signed in as ${me.id}`;
  sessionStorage.setItem(TOKEN_KEY, token);
  setSignedIn(true);
  await Promise.all([notifications.watch(herald).catch(report), queues.show(me.roles).catch(report), jobs.show().catch(report)]);
}

onSubmit(find('#sign-in', HTMLFormElement), report, () => connect(tokenInput.value.trim()));

// A token from this tab's last sign-in, or the one the server put in the field (dev only).
const token = sessionStorage.getItem(TOKEN_KEY) ?? tokenInput.value;
if (token) {
  tokenInput.value = token;
  void connect(token);
}
