import type { HeraldClient, PresenceEvent } from '../client/index.js';
import { find } from './dom.js';
import { FOLLOWING } from './progress.js';

/**
 * Who else is watching what the page follows: the file or query of the card it started last, as
 * `presenceChanged` reports it (the full list first, then the list after each join and leave).
 * The viewer is among them while the card's stream is open.
 */
export function setUpPresence(client: () => HeraldClient, report: (error: unknown) => void) {
  const panel = find('#presence', HTMLElement);
  const title = find('#presence-target', HTMLElement);
  const list = find('#watchers', HTMLUListElement);
  let events: AsyncIterableIterator<PresenceEvent> | null = null;

  function show(event: PresenceEvent): void {
    list.replaceChildren(
      ...event.watchers.map((watcher) => {
        const item = document.createElement('li');
        item.dataset.watcher = watcher.id;
        item.textContent = watcher.id;
        return item;
      }),
    );
  }

  async function watch(resourceId: string, name: string): Promise<void> {
    await stop();
    panel.hidden = false;
    panel.dataset.resourceId = resourceId;
    title.textContent = name;
    list.replaceChildren();
    const mine = client().presenceChanged({ resourceId });
    events = mine;
    for await (const event of mine) show(event);
  }

  async function stop(): Promise<void> {
    const previous = events;
    events = null;
    panel.hidden = true;
    await previous?.return?.();
  }

  document.addEventListener(FOLLOWING, (event) => {
    if (!(event.target instanceof HTMLElement)) return;
    const resourceId = event.target.dataset.fileId ?? event.target.dataset.queryId;
    const name = event.target.querySelector('.title')?.textContent ?? '';
    if (resourceId) watch(resourceId, name).catch(report);
  });

  return {
    /** Stops following presence, when the viewer signs in again. */
    stop,
  };
}
