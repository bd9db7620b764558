/**
 * The byte offset of the first byte that is not valid UTF-8 (or a NUL, which
 * PostgreSQL's parser takes as the end of the text), or -1 when there is none.
 */
export function firstInvalidByte(bytes: Uint8Array): { offset: number; reason: 'NUL byte' | 'invalid UTF-8' } | undefined {
  const nul = bytes.indexOf(0);
  const invalid = isUtf8Valid(bytes) ? -1 : firstInvalidUtf8(bytes);
  if (nul === -1 && invalid === -1) return undefined;
  if (invalid === -1 || (nul !== -1 && nul < invalid)) return { offset: nul, reason: 'NUL byte' };
  return { offset: invalid, reason: 'invalid UTF-8' };
}

function isUtf8Valid(bytes: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    const lead = b >= 0xc2 && b <= 0xdf ? [2, 0x80] : b >= 0xe0 && b <= 0xef ? [3, 0x800] : b >= 0xf0 && b <= 0xf4 ? [4, 0x10000] : undefined;
    if (!lead) return i;
    const [length, min] = lead as [number, number];
    if (i + length > bytes.length) return i;
    let code = b & (0xff >> (length + 1));
    for (let k = 1; k < length; k++) {
      const next = bytes[i + k]!;
      if ((next & 0xc0) !== 0x80) return i;
      code = (code << 6) | (next & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += length;
  }
  return -1;
}
