// `docker run -p 8080:80` on a weft network: destination NAT in the host's
// namespace, in an nftables table of weft's own (`ip weft_ports`).
//
// Why not Docker's own publishing (docker-proxy + its iptables DNAT): dockerd
// does that only in its bridge driver. A remote driver that returns a gateway
// and DisableGatewayService (so containers route through weft0, not through
// docker_gwbridge) gets the bindings in ProgramExternalConnectivity and must
// program them itself, as this module does.
//
// The whole table is computed from the endpoint records (pure, unit-tested)
// and replaced in one `nft -f -` transaction, the masquerade table's idiom: a
// restarted agent re-applies the same table, a revoked binding disappears,
// and nothing of anyone else's is touched. Published ports answer on the
// host's addresses (every local address, or the binding's HostIP), from
// other hosts and from the host itself, not on 127.0.0.1 (that would need
// route_localnet and SNAT).

import { spawnNft, type NftRunner } from '../../encap/masquerade.js';
import type { DockerEndpoint } from './endpoint-store.js';

export const PORTS_TABLE = 'weft_ports';

/** The rules that send each published port to its container. */
export function portRules(endpoints: readonly DockerEndpoint[]): string[] {
  const rules: string[] = [];
  for (const e of endpoints) {
    const ip = e.address.split('/')[0]!;
    for (const p of e.ports ?? []) {
      const match = p.hostIP !== undefined ? `ip daddr ${p.hostIP}` : 'fib daddr type local ip daddr != 127.0.0.0/8';
      rules.push(`${match} ${p.proto} dport ${p.hostPort} dnat to ${ip}:${p.port} comment "${e.endpointId.slice(0, 12)}"`);
    }
  }
  return rules;
}

/** The nft script that makes the table hold exactly these rules (no table when there are none). */
export function portsScript(endpoints: readonly DockerEndpoint[]): string {
  const rules = portRules(endpoints);
  const lines = [`table ip ${PORTS_TABLE} {}`, `delete table ip ${PORTS_TABLE}`];
  if (rules.length > 0) {
    const chain = (name: string, hook: string, priority: string): string[] => [
      `  chain ${name} {`,
      `    type nat hook ${hook} priority ${priority}; policy accept;`,
      ...rules.map((r) => `    ${r}`),
      '  }',
    ];
    lines.push(`table ip ${PORTS_TABLE} {`, ...chain('prerouting', 'prerouting', 'dstnat'), ...chain('output', 'output', '-100'), '}');
  }
  return lines.join('\n') + '\n';
}

export interface PortPublisher {
  apply(endpoints: readonly DockerEndpoint[]): Promise<void>;
}

export function nftPortPublisher(run: NftRunner = spawnNft): PortPublisher {
  return { apply: (endpoints) => run(portsScript(endpoints)) };
}
