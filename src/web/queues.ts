import {
  JobQueuesDocument,
  RemoveJobDocument,
  RetryJobDocument,
  type HeraldClient,
  type JobQueuesQuery,
} from '../client/index.js';
import { find, fromTemplate, refreshedPanel } from './dom.js';

/** How often an open dashboard reads the queues again. */
const REFRESH_MS = 5_000;

const STATES = ['waiting', 'active', 'delayed', 'failed', 'completed'] as const;

type JobQueue = JobQueuesQuery['jobQueues'][number];

/**
 * The operators' dashboard, shown to admins only: each queue's workers and jobs per state, and
 * its failed jobs with their reasons, each with Retry and Remove. It reads and acts only through
 * the admin-only `jobQueues`, `retryJob` and `removeJob`, so the server refuses anyone else
 * whatever this page shows.
 */
export function setUpQueues(client: () => HeraldClient, report: (error: unknown) => void) {
  const panel = find('#queues', HTMLElement);
  const rows = find('#queue-counts tbody', HTMLTableSectionElement);
  const failedList = find('#failed-jobs', HTMLOListElement);
  const failedEmpty = find('#failed-empty', HTMLElement);

  function countRow(queue: JobQueue): HTMLTableRowElement {
    const row = document.createElement('tr');
    row.dataset.queue = queue.name;
    const cells = [queue.name, String(queue.workers), ...STATES.map((state) => String(queue.counts[state]))];
    row.replaceChildren(
      ...cells.map((text, i) => {
        const cell = document.createElement(i === 0 ? 'th' : 'td');
        cell.textContent = text;
        if (i >= 2) cell.dataset.state = STATES[i - 2];
        return cell;
      }),
    );
    return row;
  }

  function failedItem(queue: JobQueue, job: JobQueue['failed'][number]): HTMLElement {
    const item = fromTemplate('failed-job');
    item.dataset.jobId = job.id;
    find('.job-id', HTMLElement, item).textContent = `${queue.name} · ${job.id}`;
    find('.owner', HTMLElement, item).textContent = `started by ${job.ownerId}, ${job.attemptsMade} attempts`;
    find('.reason', HTMLElement, item).textContent = job.failedReason ?? '';
    const act = (run: () => Promise<unknown>) => () => void run().then(refresh).catch(report);
    find('.retry', HTMLButtonElement, item).addEventListener(
      'click',
      act(() => client().mutate(RetryJobDocument, { id: job.id })),
    );
    find('.remove', HTMLButtonElement, item).addEventListener(
      'click',
      act(() => client().mutate(RemoveJobDocument, { id: job.id })),
    );
    return item;
  }

  async function refresh(): Promise<void> {
    const { jobQueues } = await client().query(JobQueuesDocument, { failedFirst: 20 });
    rows.replaceChildren(...jobQueues.map(countRow));
    const failed = jobQueues.flatMap((queue) => queue.failed.map((job) => failedItem(queue, job)));
    failedList.replaceChildren(...failed);
    failedEmpty.hidden = failed.length > 0;
  }

  const shown = refreshedPanel(panel, refresh, REFRESH_MS, report);
  return {
    hide: shown.hide,
    /** Shows the dashboard and keeps it current, for an admin; hides it for anyone else. */
    async show(roles: readonly string[]): Promise<void> {
      if (roles.includes('admin')) await shown.show();
      else shown.hide();
    },
  };
}
