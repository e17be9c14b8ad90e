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
