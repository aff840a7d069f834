// CLI tables print what others wrote (container names, namespace paths): control
// characters must reach the terminal escaped, never raw.
import { describe, expect, it } from 'vitest';
import { formatTable, printable } from '../../agent/table.js';
import { psTable } from '../../agent/commands/attach.js';

describe('printable', () => {
  it('escapes C0, DEL and C1 controls and doubles backslashes', () => {
    expect(printable('web\u001b[2J\u0007')).toBe('web\\x1b[2J\\x07');
    expect(printable('a\u007fb\u009bc')).toBe('a\\x7fb\\x9bc');
    expect(printable('c:\\x1b')).toBe('c:\\\\x1b');
    expect(printable('plain é ✓')).toBe('plain é ✓');
  });
});

describe('weft ps', () => {
  it('never prints a control character raw, whatever a record holds', () => {
    const out = psTable({
      attachments: [
        { containerId: 'c1', ifname: 'eth0', name: 'evil\u001b]0;owned\u0007\r\nfake row', netns: '/run/netns/x\u001b[2J', ip: '10.42.7.2/24', gateway: '10.42.7.1', mac: 'c2:00:00:00:00:01', mtu: 1450, hostIfName: 'vw1', routes: [], createdAt: '', stale: false },
      ],
    });
    expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u);
    expect(out.split('\n')).toHaveLength(3); // header, one row, final newline
    expect(out).toContain('evil\\x1b]0;owned\\x07\\x0d\\x0afake row');
  });

  it('aligns columns by the escaped width', () => {
    expect(formatTable(['A', 'B'], [['\u0001', 'x']])).toBe('A     B\n\\x01  x\n');
  });
});
