import { crc32, deflateSync } from 'node:zlib';
import { PDFDocument, StandardFonts } from 'pdf-lib';

/** A markdown document with `sections` headings, each followed by sentences of every class. */
export function makeDocument(sections: number): string {
  const parts: string[] = [];
  for (let i = 1; i <= sections; i += 1) {
    parts.push(
      `## Section ${i}`,
      '',
      `Topic ${i} is a subject that this section explains. Why does topic ${i} matter? ` +
        `It grew by ${i * 3} percent in ${2000 + (i % 25)}. The team keeps working on it.`,
      '',
    );
  }
  return parts.join('\n');
}

/**
 * Plain text of at most `bytes` bytes (ASCII, so as many characters), within a sentence of it, and exactly
 * `sentences` sentences (returned beside it), pasted as
 * one paragraph with a line break every few sentences: no blank line, no heading, like an exported
 * document. The shape that made processing time grow with the square of the size.
 */
export function makePlainText(bytes: number): { content: string; sentences: number } {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; ; i += 1) {
    const sentence = `Sentence ${i + 1} says that topic ${i % 97} grew by ${i % 13} percent over the last ${i % 11} years.`;
    const separator = i === 0 ? '' : i % 6 === 0 ? '\n' : ' ';
    if (length + separator.length + sentence.length > bytes) break;
    parts.push(separator, sentence);
    length += separator.length + sentence.length;
  }
  return { content: parts.join(''), sentences: parts.length / 2 };
}

/** A PDF whose pages hold these lines of text (Helvetica, one line under another), made with pdf-lib. */
export async function makePdf(pages: string[][]): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (const lines of pages) {
    const page = pdf.addPage();
    lines.forEach((line, index) => page.drawText(line, { x: 50, y: 750 - index * 16, size: 11, font }));
  }
  return pdf.save();
}

/** A PDF of `pages` pages that are each one picture and no text, as a scanner makes them. */
export async function makeImagePdf(pages: number): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  const image = await pdf.embedPng(grayPng(64, 64));
  for (let i = 0; i < pages; i += 1) pdf.addPage().drawImage(image, { x: 50, y: 300, width: 400, height: 400 });
  return pdf.save();
}

/** A gray PNG, gradient rows, built by hand (signature, IHDR, IDAT, IEND) so the suite needs no image library. */
function grayPng(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8); // 8-bit grayscale, no interlace
  const rows = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y += 1) rows.fill((y * 4) % 256, y * (width + 1) + 1, (y + 1) * (width + 1));
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}
