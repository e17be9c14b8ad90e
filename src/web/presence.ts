import type { HeraldClient, PresenceEvent, PresenceTarget } from '../client/index.js';
import { find } from './dom.js';
import { FOLLOWING } from './progress.js';

/** One list of watchers, kept current from `presenceChanged` for one target at a time. */
function room(client: () => HeraldClient, list: HTMLUListElement) {
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

  async function stop(): Promise<void> {
    const previous = events;
    events = null;
    list.replaceChildren();
    await previous?.return?.();
  }

  return {
    stop,
    /** Follows `target` instead of the previous one; a quick succession of targets ends with the last. */
    async watch(target: PresenceTarget): Promise<void> {
      const previous = events;
      const mine = client().presenceChanged(target);
      events = mine;
      list.replaceChildren();
      await previous?.return?.();
      for await (const event of mine) if (events === mine) show(event);
    },
  };
}

/**
 * Who else is watching what the page follows: the file or query of the card it started last and,
 * when that has a project, the project, as `presenceChanged` reports them (the full list first,
 * then the list after each join and leave). The viewer is among them while the card's stream is open.
 */
export function setUpPresence(client: () => HeraldClient, report: (error: unknown) => void) {
  const panel = find('#presence', HTMLElement);
  const title = find('#presence-target', HTMLElement);
  const projectPart = find('#presence-project', HTMLElement);
  const projectName = find('#presence-project-id', HTMLElement);
  const resource = room(client, find('#watchers', HTMLUListElement));
  const project = room(client, find('#project-watchers', HTMLUListElement));

  async function stop(): Promise<void> {
    panel.hidden = true;
    await Promise.all([resource.stop(), project.stop()]);
  }

  document.addEventListener(FOLLOWING, (event) => {
    const card = event.target;
    if (!(card instanceof HTMLElement)) return;
    const resourceId = card.dataset.fileId ?? card.dataset.queryId;
    if (!resourceId) return;
    const projectId = card.dataset.projectId;
    panel.hidden = false;
    panel.dataset.resourceId = resourceId;
    title.textContent = card.querySelector('.title')?.textContent ?? '';
    projectPart.hidden = !projectId;
    projectName.textContent = projectId ?? '';
    resource.watch({ resourceId }).catch(report);
    if (projectId) project.watch({ projectId }).catch(report);
    else void project.stop();
  });

  return {
    /** Stops following presence, when the viewer signs in again. */
    stop,
  };
}
