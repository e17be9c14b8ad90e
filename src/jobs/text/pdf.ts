import { getDocument, type PDFDocumentProxy } from 'pdfjs-dist/legacy/build/pdf.mjs';

/** Why a PDF cannot be processed, in words its sender can act on. */
export class UnreadablePdfError extends Error {
  override name = 'UnreadablePdfError';
}

/** Whether bytes start like a PDF (`%PDF-`), whatever type the upload claimed. */
export function looksLikePdf(bytes: Uint8Array): boolean {
  return bytes.length >= 5 && Buffer.from(bytes.subarray(0, 5)).toString('latin1') === '%PDF-';
}

/**
 * Opens a PDF with pdf.js (Mozilla's, the one browsers use) without fonts, eval or a worker
 * thread: only the text layer is read. A document that needs a password to open is refused;
 * one with only an owner password (permissions) opens, as in any viewer.
 */
async function open(bytes: Uint8Array): Promise<PDFDocumentProxy> {
  try {
    // pdf.js may take ownership of the array it is given: it gets a copy.
    return await getDocument({ data: new Uint8Array(bytes), isEvalSupported: false, disableFontFace: true, verbosity: 0 })
      .promise;
  } catch (error) {
    const { name, message } = error as Error;
    if (name === 'PasswordException') throw new UnreadablePdfError('the PDF is encrypted: send it without a password');
    throw new UnreadablePdfError(`the file is not a readable PDF (${message})`);
  }
}

/** One page's text, lines kept, words joined as pdf.js placed them. */
async function pageText(pdf: PDFDocumentProxy, number: number): Promise<string> {
  const page = await pdf.getPage(number);
  try {
    const content = await page.getTextContent();
    let text = '';
    for (const item of content.items) if ('str' in item) text += item.hasEOL ? `${item.str}\n` : item.str;
    return text;
  } finally {
    page.cleanup();
  }
}

/**
 * Checks, before a PDF is queued, that it opens and has text: reads pages until one has any, so a
 * text document costs its first page and an image-only one (a scan) costs each page's content
 * stream once, never its images. Resolves to the page count.
 */
export async function inspectPdf(bytes: Uint8Array): Promise<{ pages: number }> {
  const pdf = await open(bytes);
  try {
    for (let number = 1; number <= pdf.numPages; number += 1) {
      if ((await pageText(pdf, number)).trim() !== '') return { pages: pdf.numPages };
    }
    throw new UnreadablePdfError(
      `the PDF has no text to extract: its ${pdf.numPages === 1 ? 'page is an image' : `${pdf.numPages} pages are images`} (a scan?); run OCR on it first`,
    );
  } finally {
    await pdf.destroy();
  }
}

/** A PDF's pages' text, one page at a time, so that extraction can report each and be cancelled between them. */
export async function* pdfPages(bytes: Uint8Array): AsyncGenerator<{ page: number; pages: number; text: string }> {
  const pdf = await open(bytes);
  try {
    for (let page = 1; page <= pdf.numPages; page += 1) yield { page, pages: pdf.numPages, text: await pageText(pdf, page) };
  } finally {
    await pdf.destroy();
  }
}
