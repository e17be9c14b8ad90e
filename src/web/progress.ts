import type { FileUpdate, QueryUpdate } from '../client/index.js';
import { find, fromTemplate, messageOf } from './dom.js';

/** A new card from `<template id=…>`, titled `title`, at the top of `list`. */
export function addCard(list: HTMLElement, template: string, title: string): HTMLElement {
  const card = fromTemplate(template);
  find('.title', HTMLElement, card).textContent = title;
  card.querySelector('progress')?.setAttribute('aria-label', `Progress of ${title}`);
  list.prepend(card);
  return card;
}

/**
 * Events a card sends up the page, so panels can react to what the page follows without the forms
 * knowing them: FOLLOWING when it starts (the card carries `data-file-id` or `data-query-id`),
 * STATUS_CHANGED each time its status changes.
 */
export const FOLLOWING = 'herald:following';
export const STATUS_CHANGED = 'herald:status-changed';

/** What a card shows of every update, file or query alike. */
type ProgressUpdate = FileUpdate | QueryUpdate;

/**
 * Shows a progress stream on its card: the bar, the latest message, the status line (a live
 * region, so it changes with the status, not on each of hundreds of updates), and in `data-seqs`
 * the seq of every update received, so anyone can check that nothing was missed or repeated
 * across reconnects. `render` then draws what is particular to the stream.
 */
export async function follow<T extends ProgressUpdate>(
  card: HTMLElement,
  updates: AsyncIterable<T>,
  render: (update: T) => void,
): Promise<void> {
  const status = find('.status', HTMLElement, card);
  const detail = find('.detail', HTMLElement, card);
  const bar = card.querySelector('progress');
  const percent = card.querySelector('.percent');
  const seqs: number[] = [];
  card.dispatchEvent(new Event(FOLLOWING, { bubbles: true }));
  try {
    for await (const update of updates) {
      if (update.gap === null) seqs.push(update.seq);
      card.dataset.seqs = seqs.join(' ');
      if (update.progress !== null && bar && percent) {
        bar.value = update.progress;
        percent.textContent = `${Math.round(update.progress)} %`;
      }
      const changed = update.status !== card.dataset.status;
      if (changed || update.gap || update.event === 'attempt_interrupted') {
        status.textContent = update.message ?? update.event;
      }
      card.dataset.status = update.status;
      if (changed) card.dispatchEvent(new Event(STATUS_CHANGED, { bubbles: true }));
      detail.textContent = update.message ?? '';
      render(update);
    }
  } catch (error) {
    card.dataset.status = 'ERROR';
    status.textContent = messageOf(error);
  }
}
