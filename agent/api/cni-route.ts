// POST /v1/cni: where the weft-cni relay delivers a runtime's call. The body
// is {"env": {CNI_*...}, "stdin": "<network config>"}; the reply is the exact
// stdout the plugin must print, with the plugin's exit code in the
// X-Weft-Exit-Code header. All CNI rules run here, in cni-plugin/protocol.ts.

import { handleCniRequest, type AttachmentService } from '../../cni-plugin/index.js';
import { WeftError } from '../../ipam/errors.js';
import { RawReply, type Handler } from './server.js';

/**
 * Below the relay's default deadline (5 s), so the runtime gets our error, not
 * the relay's time-out. A slow ADD that runs over answers 11; the runtime's
 * retry then finds the finished attachment (ADD is idempotent per key).
 */
const SERVICE_TIMEOUT_MS = 4000;

function isStringRecord(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

export function cniRoute(service: AttachmentService): Handler {
  return async (body) => {
    const b = body as { env?: unknown; stdin?: unknown } | undefined;
    if (b === undefined || !isStringRecord(b.env) || typeof b.stdin !== 'string') {
      throw new WeftError('INVALID_ARGUMENT', 'POST /v1/cni takes {"env": {name: value}, "stdin": "<config>"}');
    }
    const res = await handleCniRequest({ env: b.env, stdin: b.stdin }, service, { pluginType: 'weft', timeoutMs: SERVICE_TIMEOUT_MS });
    return new RawReply(res.stdout, { 'x-weft-exit-code': String(res.exitCode) });
  };
}
