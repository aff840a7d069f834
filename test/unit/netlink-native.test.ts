// The addon loader (encap/netlink/native.ts) tells the operator how to build
// the addon when it is missing, instead of a bare MODULE_NOT_FOUND.

import { describe, expect, it, vi } from 'vitest';

vi.mock('node:fs', async (orig) => ({ ...(await orig<typeof import('node:fs')>()), existsSync: () => false }));

describe('loadNative', () => {
  it('says to run the build when the .node file is missing', async () => {
    const { loadNative } = await import('../../encap/netlink/native.js');
    expect(() => loadNative()).toThrow(/native addon not built .*run `sh native\/build\.sh`/);
  });
});
