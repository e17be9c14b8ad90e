import { StartQueryDocument, type HeraldClient, type QueryUpdate } from '../client/index.js';
import { find, isRecord, onSubmit } from './dom.js';
import { addCard, follow } from './progress.js';

/** One passage the `done` update cites in `data.sources`. */
interface Source {
  fileId: string;
  sentenceIndex: number;
  score: number;
  text: string;
}

function sourcesOf(data: unknown): Source[] {
  if (!isRecord(data) || !Array.isArray(data.sources)) return [];
  return data.sources.filter(
    (s): s is Source =>
      isRecord(s) &&
      typeof s.fileId === 'string' &&
      typeof s.sentenceIndex === 'number' &&
      typeof s.score === 'number' &&
      typeof s.text === 'string',
  );
}

/**
 * Draws an answer as its tokens arrive, then its sources. The answer is a live region marked busy
 * until the end, so a screen reader reads it once, whole, rather than word by word.
 */
function renderAnswer(card: HTMLElement): (update: QueryUpdate) => void {
  const answer = find('.answer', HTMLElement, card);
  const sources = find('.sources', HTMLOListElement, card);
  const detail = find('.detail', HTMLElement, card);
  return (update) => {
    if (update.text !== null) answer.textContent = update.text;
    if (update.status === 'PROCESSING' || update.status === 'QUEUED') return;
    answer.setAttribute('aria-busy', 'false');
    if (update.event !== 'done' || !isRecord(update.data)) return;
    const { tokens, latencyMs } = update.data;
    detail.textContent = `${String(tokens)} tokens in ${String(latencyMs)} ms`;
    sources.replaceChildren(
      ...sourcesOf(update.data).map((source) => {
        const item = document.createElement('li');
        const where = document.createElement('span');
        where.className = 'muted';
        where.textContent = ` (file ${source.fileId.slice(0, 8)}, sentence ${source.sentenceIndex + 1}, score ${source.score.toFixed(2)})`;
        item.append(source.text, where);
        return item;
      }),
    );
  };
}

/** The question form: starts a query over all of the viewer's processed files and streams its answer into a new card. */
export function setUpAnswers(client: () => HeraldClient, report: (error: unknown) => void): void {
  const form = find('#question-form', HTMLFormElement);
  const question = find('#question', HTMLInputElement);
  const cards = find('#answers', HTMLElement);
  onSubmit(form, report, async () => {
    const herald = client();
    const input = { question: question.value.trim() };
    const { startQuery } = await herald.mutate(StartQueryDocument, { input });
    form.reset();
    const card = addCard(cards, 'answer-card', input.question);
    card.dataset.queryId = startQuery.queryId;
    await follow(card, herald.queryProgress(startQuery.queryId, startQuery.cursor), renderAnswer(card));
  });
}
