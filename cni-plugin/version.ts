// Which CNI spec versions weft speaks, how to compare them, and which version
// a command needs. Versions are compared as numbers, never as strings
// ("0.10.0" > "0.4.0"), and only exact matches count as supported, as libcni's
// reconciler does: a config at 1.0.1 is not a 1.0.0 config.

import { CniError, CniErrorCode, decodeError } from './errors.js';

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';

/**
 * The lowest config version at which a command exists. CHECK came in 0.4.0,
 * STATUS and GC in 1.1.0; the reference skeleton answers an older config with
 * code 1 ("config version does not allow CHECK"), and so does weft.
 */
const MIN_VERSION: Partial<Record<CniCommand, CniVersion>> = {
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
};

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$/;

export function isSupportedVersion(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Negative, zero or positive like a sort comparator. Both must be plain x.y.z. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Code 6 for a malformed version string: the spec's example of "failed to decode". */
export function parseVersion(v: string): [number, number, number] {
  const m = SEMVER.exec(v);
  if (!m) throw decodeError('cniVersion', 'a version like "1.1.0"', v);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export function incompatible(msg: string, got: string): CniError {
  return new CniError(
    CniErrorCode.IncompatibleVersion,
    msg,
    `config is ${JSON.stringify(got)}, weft supports ${SUPPORTED_VERSIONS.join(', ')}`,
  );
}

/**
 * The version to speak for one invocation. The runtime normally resolves a
 * conflist's `cniVersions` and hands the plugin a single `cniVersion`; that
 * choice wins when weft supports it, because the runtime will parse the answer
 * at that version. Only when it is missing or unsupported does weft pick the
 * highest version it shares with `cniVersions`.
 */
export function selectVersion(cniVersion: unknown, cniVersions: unknown): CniVersion {
  if (cniVersion !== undefined && typeof cniVersion !== 'string') {
    throw decodeError('cniVersion', 'a string', cniVersion);
  }
  if (cniVersion !== undefined) parseVersion(cniVersion);
  if (cniVersion !== undefined && isSupportedVersion(cniVersion)) return cniVersion;

  const listed = decodeVersionList(cniVersions);
  const shared = listed.filter(isSupportedVersion).sort(compareVersions);
  const best = shared[shared.length - 1];
  if (best !== undefined) return best;

  if (cniVersion === undefined && listed.length === 0) {
    throw incompatible('cniVersion is missing', '');
  }
  throw incompatible('incompatible CNI versions', cniVersion ?? listed.join(','));
}

function decodeVersionList(raw: unknown): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || raw.some((v) => typeof v !== 'string')) {
    throw decodeError('cniVersions', 'a list of version strings', raw);
  }
  const list = raw as string[];
  for (const v of list) parseVersion(v);
  return list;
}

/** Code 1 when the command did not exist yet at the config's version. */
export function requireCommandVersion(command: CniCommand, version: CniVersion): void {
  const min = MIN_VERSION[command];
  if (min !== undefined && compareVersions(version, min) < 0) {
    throw new CniError(
      CniErrorCode.IncompatibleVersion,
      `config version does not allow ${command}`,
      `${command} needs cniVersion ${min} or later; config is ${version}`,
    );
  }
}

/** The VERSION command's answer; independent of the caller's config, like libcni's. */
export function versionInfo(): { cniVersion: CniVersion; supportedVersions: CniVersion[] } {
  return { cniVersion: LATEST_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** True for versions whose `ips[]` entries carry `"version": "4"|"6"` (0.3.x and 0.4.0). */
export function hasIpVersionField(v: CniVersion): boolean {
  return compareVersions(v, '1.0.0') < 0;
}

/** True where interfaces and routes may carry the 1.1.0 additions (mtu, socketPath, table...). */
export function hasV11Fields(v: CniVersion): boolean {
  return compareVersions(v, '1.1.0') >= 0;
}
