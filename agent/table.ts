// Plain-text tables for the CLI (`weft leases`, `weft ps`): left-aligned
// columns two spaces apart, the last column unpadded so lines end cleanly.
// Cells come from records others wrote (a container's name, a namespace path),
// so control characters are shown escaped (`\x1b`), never sent raw to the
// operator's terminal, where they could move the cursor or hide a row.

/** The cell as it is safe to print: control characters (C0, DEL, C1) as \xNN, backslashes doubled. */
export function printable(cell: string): string {
  return cell.replace(/[\\\u0000-\u001f\u007f-\u009f]/gu, (c) => (c === '\\' ? '\\\\' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const safe = rows.map((r) => r.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...safe.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...safe.map(line)].join('\n') + '\n';
}
