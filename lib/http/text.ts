/** True when `value` holds a C0 control character or DEL (and, with `orSpace`, a space). */
export function hasControlCharacters(value: string, orSpace = false): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f || (orSpace && code === 0x20)) return true;
  }
  return false;
}
