// The small parts around the vxlan reconciler: the masquerade rules text,
// the sysctl key -> /proc path mapping, and the pass coalescer (no two
// passes overlap; a burst costs one extra pass, run with the newest input).

import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../ipam/cidr.js';
import { MASQ_TABLE, applyMasquerade, masqueradeScript, unmasqueradeScript } from '../../encap/masquerade.js';
import { sysctlPath } from '../../encap/sysctl.js';
import { Coalescer } from '../../encap/vxlan/serial.js';

describe('masquerade rules', () => {
  it('replace weft\'s own table atomically: return inside the overlay, masquerade what leaves it', () => {
    expect(masqueradeScript(parseCidr('10.42.0.0/16'))).toBe(
      [
        `table ip ${MASQ_TABLE} {}`,
        `delete table ip ${MASQ_TABLE}`,
        `table ip ${MASQ_TABLE} {`,
        '  chain postrouting {',
        '    type nat hook postrouting priority srcnat; policy accept;',
        '    ip saddr 10.42.0.0/16 ip daddr 10.42.0.0/16 return',
        '    ip saddr 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('disabling deletes the table, and is harmless when there is none', async () => {
    expect(unmasqueradeScript()).toBe(`table ip ${MASQ_TABLE} {}\ndelete table ip ${MASQ_TABLE}\n`);
    const scripts: string[] = [];
    const run = async (s: string) => void scripts.push(s);
    await applyMasquerade({ enabled: false, network: parseCidr('10.42.0.0/16'), run });
    await applyMasquerade({ enabled: true, network: parseCidr('10.42.0.0/16'), run });
    expect(scripts[0]).toBe(unmasqueradeScript());
    expect(scripts[1]).toContain('masquerade');
  });
});

describe('sysctlPath', () => {
  it('maps dotted keys under /proc/sys and refuses anything that could escape it', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    for (const bad of ['../etc/passwd', 'net..ipv4', 'net/ipv4/ip_forward', 'ip_forward', '']) {
      expect(() => sysctlPath(bad)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});

describe('Coalescer', () => {
  it('never overlaps passes and runs one pass for a burst, with the newest arguments', async () => {
    let running = 0;
    let maxRunning = 0;
    const seen: number[] = [];
    const c = new Coalescer<number, number>(async (n) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((r) => setTimeout(r, 10));
      seen.push(n);
      running--;
      return n * 10;
    });
    const results = await Promise.all([c.run(1), c.run(2), c.run(3), c.run(4)]);
    expect(maxRunning).toBe(1);
    expect(seen).toEqual([1, 4]);
    expect(results).toEqual([10, 40, 40, 40]);
    await c.idle();
  });

  it('rejects every caller of a failed pass, and keeps working after', async () => {
    let fail = true;
    const c = new Coalescer<number, number>(async (n) => {
      await new Promise((r) => setTimeout(r, 1));
      if (fail) throw new Error(`boom ${n}`);
      return n;
    });
    const [a, b] = await Promise.allSettled([c.run(1), c.run(2)]);
    expect(a.status).toBe('rejected');
    expect(b.status).toBe('rejected');
    fail = false;
    expect(await c.run(3)).toBe(3);
  });
});
