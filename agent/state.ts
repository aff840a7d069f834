// The agent's memory across restarts: the subnet it held, in the state dir,
// and the subnet.env it wrote. Both are read on start-up to take the same
// subnet back; both are written atomically so a crash never leaves half a file.

import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { formatCidr, parseCidr } from '../ipam/cidr.js';
import { readFileIfExists, writeFileAtomic } from '../ipam/atomic-file.js';
import { parseSubnetEnv, renderSubnetEnv } from '../ipam/subnet-env.js';
import type { Cidr } from '../ipam/types.js';

const STATE_FILE = 'subnet.json';

interface SavedSubnet {
  subnet: string;
  publicIP: string;
}

/** The subnet this host had before: the state dir first, then the subnet file. Garbage is ignored. */
export async function previousSubnet(stateDir: string, subnetFile: string): Promise<Cidr | undefined> {
  try {
    const text = await readFileIfExists(join(stateDir, STATE_FILE));
    if (text !== undefined) return parseCidr((JSON.parse(text) as SavedSubnet).subnet);
  } catch {
    // fall back to the subnet file
  }
  try {
    const text = await readFileIfExists(subnetFile);
    if (text !== undefined) return parseSubnetEnv(text).subnet;
  } catch {
    // nothing usable: a fresh choice it is
  }
  return undefined;
}

export async function saveSubnet(stateDir: string, subnet: Cidr, publicIP: string): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const saved: SavedSubnet = { subnet: formatCidr(subnet), publicIP };
  await writeFileAtomic(join(stateDir, STATE_FILE), JSON.stringify(saved) + '\n');
}

export async function writeSubnetEnv(path: string, v: { network: Cidr; subnet: Cidr; mtu: number; ipMasq: boolean }): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFileAtomic(path, renderSubnetEnv(v));
}
