/**
 * Byte offsets into a stream's body (see append.lua): from the start of the body an entry belongs
 * to, to the end of the piece the entry appended. Bytes of UTF-8, as Redis counts them.
 */
export type BodyRange = readonly [start: number, end: number];

/** What a producer adds to its resource's body with one update. */
export interface BodyPiece {
  /** Appended to the body ("" for none): the entry's range then ends after it. */
  append: string;
  /** Start a new body here (a job attempt starting over), so later entries do not see the old one. */
  restart?: boolean;
}

/**
 * A stream's body as one history read saw it: its first bytes, enough for every entry read. Ranges
 * are in bytes and the text in UTF-16, so offsets are converted by walking the text forward from
 * the last one converted: ranges asked in seq order cost one pass over the text in all.
 */
export class BodyPrefix {
  private readonly ascii: boolean;
  private atByte = 0;
  private atIndex = 0;

  constructor(
    readonly text: string,
    /** The whole body's length in bytes, which may be more than `text` holds. */
    readonly totalBytes: number,
  ) {
    this.ascii = Buffer.byteLength(text) === text.length;
  }

  /** The text of `range`: a slice of `text`, which V8 keeps without copying. */
  slice(range: BodyRange): string {
    return this.text.slice(this.index(range[0]), this.index(range[1]));
  }

  private index(byte: number): number {
    if (this.ascii) return byte;
    if (byte < this.atByte) this.atByte = this.atIndex = 0;
    const { text } = this;
    let b = this.atByte;
    let i = this.atIndex;
    while (b < byte && i < text.length) {
      const code = text.charCodeAt(i);
      if (code < 0x80) b += 1;
      else if (code < 0x800) b += 2;
      else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
        b += 4;
        i += 1;
      } else b += 3;
      i += 1;
    }
    this.atByte = b;
    this.atIndex = i;
    return i;
  }
}
