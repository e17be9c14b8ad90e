import { MyJobsDocument, RetryJobDocument, type HeraldClient, type MyJobsQuery } from '../client/index.js';
import { find, fromTemplate, refreshedPanel } from './dom.js';
import { STATUS_CHANGED } from './progress.js';

/** How often the panel reads the viewer's jobs again, for jobs started elsewhere. */
const REFRESH_MS = 10_000;
/** How many of the newest jobs it lists. */
const FIRST = 20;

type Job = MyJobsQuery['myJobs']['edges'][number]['node'];

/**
 * The viewer's own jobs, newest first, with their kind, state and progress, and Retry for those
 * that failed or were cancelled. It reads again whenever a card of this page changes status, and
 * every REFRESH_MS for the rest.
 */
export function setUpJobs(client: () => HeraldClient, report: (error: unknown) => void) {
  const panel = find('#jobs', HTMLElement);
  const list = find('#job-list', HTMLOListElement);
  const empty = find('#jobs-empty', HTMLElement);

  function item(job: Job): HTMLElement {
    const row = fromTemplate('job-item');
    row.dataset.jobId = job.id;
    row.dataset.state = job.state;
    find('.kind', HTMLElement, row).textContent = job.kind === 'FILE' ? 'Document' : 'Question';
    find('.job-id', HTMLElement, row).textContent = job.id;
    find('.state', HTMLElement, row).textContent = job.state;
    find('progress', HTMLProgressElement, row).value = job.progress ?? 0;
    const retry = find('.retry', HTMLButtonElement, row);
    retry.hidden = job.state !== 'FAILED' && job.state !== 'CANCELLED';
    retry.addEventListener('click', () => {
      void client().mutate(RetryJobDocument, { id: job.id }).then(refresh).catch(report);
    });
    return row;
  }

  async function refresh(): Promise<void> {
    const { myJobs } = await client().query(MyJobsDocument, { first: FIRST });
    list.replaceChildren(...myJobs.edges.map((edge) => item(edge.node)));
    empty.hidden = myJobs.edges.length > 0;
  }

  const shown = refreshedPanel(panel, refresh, REFRESH_MS, report);
  document.addEventListener(STATUS_CHANGED, () => {
    if (shown.shown) void refresh().catch(report);
  });

  return {
    hide: shown.hide,
    /** Shows the panel and keeps it current until `hide`. */
    show: shown.show,
  };
}
