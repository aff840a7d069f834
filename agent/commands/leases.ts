// `weft leases`: the subnet leases in etcd, as a table for people or JSON for
// scripts. Garbage values are reported on stderr, never hidden and never fatal.

import { formatCidr } from '../../ipam/cidr.js';
import { formatTable } from '../table.js';
import type { LeaseList } from '../../ipam/subnet-registry.js';

export function leasesJson(list: LeaseList): string {
  const rows = list.leases.map((l) => ({
    subnet: formatCidr(l.subnet),
    publicIP: l.attrs.publicIP,
    backendType: l.attrs.backendType,
    backendData: l.attrs.backendData,
    leaseId: l.leaseId,
  }));
  return JSON.stringify(rows, null, 2) + '\n';
}

export function leasesTable(list: LeaseList): string {
  const rows = [...list.leases]
    .sort((a, b) => a.subnet.addr - b.subnet.addr)
    .map((l) => [
      formatCidr(l.subnet),
      l.attrs.publicIP,
      l.attrs.backendType,
      typeof l.attrs.backendData['VtepMAC'] === 'string' ? (l.attrs.backendData['VtepMAC'] as string) : '-',
      // Hex, as etcdctl prints lease IDs (`etcdctl lease timetolive <id>`).
      l.leaseId === '0' ? '-' : BigInt(l.leaseId).toString(16),
    ]);
  return formatTable(['SUBNET', 'PUBLIC-IP', 'BACKEND', 'VTEP-MAC', 'ETCD-LEASE'], rows);
}

export function skippedWarnings(list: LeaseList): string {
  return list.skipped.map((s) => `warning: skipping ${s.key}: ${s.reason}\n`).join('');
}
