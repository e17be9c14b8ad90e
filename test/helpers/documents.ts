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
