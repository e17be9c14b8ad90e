/** Element classes, so a lookup can check what it found: the markup and this code must agree. */
type ElementClass<T extends Element> = abstract new () => T;

/** The one element under `root` matching `selector`, of class `type`; throws when the markup disagrees. */
export function find<T extends Element>(selector: string, type: ElementClass<T>, root: ParentNode = document): T {
  const element = root.querySelector(selector);
  if (!(element instanceof type)) throw new Error(`${selector} is missing or not a ${type.name}`);
  return element;
}

/** A fresh copy of the first element of `<template id=…>`. */
export function fromTemplate(id: string): HTMLElement {
  const element = find(`#${id}`, HTMLTemplateElement).content.firstElementChild?.cloneNode(true);
  if (!(element instanceof HTMLElement)) throw new Error(`#${id} holds no element`);
  return element;
}

/** Narrows a JSON value (the `data` of an update or notification) to an object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The message to show for anything thrown: HeraldError and Error messages, else the value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `handler` on each submit of `form` instead of navigating; what it throws goes to `report`. */
export function onSubmit(form: HTMLFormElement, report: (error: unknown) => void, handler: () => Promise<void>): void {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    handler().catch(report);
  });
}

/**
 * A panel kept current while it is shown: `refresh` at once and every `everyMs`, on one timer that
 * `hide` stops. What a refresh throws goes to `report`.
 */
export function refreshedPanel(
  panel: HTMLElement,
  refresh: () => Promise<void>,
  everyMs: number,
  report: (error: unknown) => void,
) {
  let timer: ReturnType<typeof setInterval> | null = null;
  const hide = (): void => {
    if (timer) clearInterval(timer);
    timer = null;
    panel.hidden = true;
  };
  return {
    hide,
    /** Whether the panel is shown (and so refreshing). */
    get shown(): boolean {
      return timer !== null;
    },
    show: async (): Promise<void> => {
      hide();
      panel.hidden = false;
      timer = setInterval(() => void refresh().catch(report), everyMs);
      await refresh();
    },
  };
}
