import { StartFileProcessingDocument, type FileUpdate, type HeraldClient } from '../client/index.js';
import { find, isRecord, onSubmit } from './dom.js';
import { addCard, follow } from './progress.js';

/** One sentence of a `sentence_classification` update's `data.sentences`. */
interface ClassifiedSentence {
  index: number;
  text: string;
  class: string;
}

function sentencesOf(data: unknown): ClassifiedSentence[] {
  if (!isRecord(data) || !Array.isArray(data.sentences)) return [];
  return data.sentences.filter(
    (s): s is ClassifiedSentence =>
      isRecord(s) && typeof s.index === 'number' && typeof s.text === 'string' && typeof s.class === 'string',
  );
}

/** "12 sentences: 3 question, 2 definition, …" from `processing_completed`'s summary. */
function summaryOf(data: unknown): string | null {
  if (!isRecord(data) || typeof data.sentences !== 'number' || !isRecord(data.classes)) return null;
  const classes = Object.entries(data.classes).map(([name, count]) => `${String(count)} ${name}`);
  return `${data.sentences} sentences: ${classes.join(', ')}`;
}

/** Draws what a document's updates add to its card: the classified sentences, then a summary. */
function renderDocument(card: HTMLElement): (update: FileUpdate) => void {
  const sentences = find('.sentences', HTMLOListElement, card);
  const detail = find('.detail', HTMLElement, card);
  return (update) => {
    // A new attempt (after a worker died) classifies every sentence again.
    if (update.event === 'processing_started') sentences.replaceChildren();
    for (const sentence of sentencesOf(update.data)) {
      const item = document.createElement('li');
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = sentence.class;
      item.dataset.class = sentence.class;
      item.value = sentence.index + 1;
      item.append(tag, sentence.text);
      sentences.append(item);
    }
    if (update.event === 'processing_completed') detail.textContent = summaryOf(update.data) ?? detail.textContent;
  };
}

/**
 * The document form: sends the chosen file's text, or the pasted text, for processing, and
 * watches it in a new card from its very first update.
 */
export function setUpDocuments(client: () => HeraldClient, report: (error: unknown) => void): void {
  const form = find('#document-form', HTMLFormElement);
  const file = find('#document-file', HTMLInputElement);
  const text = find('#document-text', HTMLTextAreaElement);
  const name = find('#document-name', HTMLInputElement);
  const project = find('#document-project', HTMLInputElement);
  const cards = find('#documents', HTMLElement);
  file.addEventListener('change', () => {
    const chosen = file.files?.[0];
    if (chosen) name.value = chosen.name;
  });
  onSubmit(form, report, async () => {
    const herald = client();
    const chosen = file.files?.[0];
    const input = {
      name: name.value.trim(),
      content: chosen ? await chosen.text() : text.value,
      projectId: project.value.trim() || null,
    };
    const { startFileProcessing } = await herald.mutate(StartFileProcessingDocument, { input });
    form.reset();
    const card = addCard(cards, 'document-card', input.name);
    card.dataset.fileId = startFileProcessing.fileId;
    if (input.projectId) card.dataset.projectId = input.projectId;
    await follow(card, herald.fileProgress(startFileProcessing.fileId, startFileProcessing.cursor), renderDocument(card));
  });
}
