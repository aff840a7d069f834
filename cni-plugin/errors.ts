// CNI error results: the numeric codes a runtime understands and the one
// error class every cni-plugin module throws. A runtime shows `msg` to the
// operator and keys retries on `code`, so each code below keeps the meaning
// the CNI spec gives it; weft's own codes sit in the 100+ range that the spec
// leaves to plugins.

export const CniErrorCode = {
  /** Config version not supported, or the command does not exist at that version. */
  IncompatibleVersion: 1,
  /** A config field (or CNI_ARGS key) weft does not support; msg names key and value. */
  UnsupportedField: 2,
  /** The container is unknown: the runtime needs no cleanup for it. */
  UnknownContainer: 3,
  /** Missing or malformed CNI_* variables; msg names every one of them. */
  InvalidEnvironment: 4,
  IoFailure: 5,
  /** stdin is not JSON, or a value has the wrong JSON type, or a version string is malformed. */
  DecodingFailure: 6,
  /** The config decodes but breaks a rule. */
  InvalidNetworkConfig: 7,
  /** Transient: the runtime should retry the same call later. */
  TryAgainLater: 11,
  /** STATUS: weft cannot serve ADD now. */
  PluginNotAvailable: 50,
  /** STATUS: weft cannot serve ADD and running containers may be cut off too. */
  PluginNotAvailableDisrupted: 51,
  /** weft-specific: the interface or a requested address is already taken. */
  Conflict: 100,
  /** weft-specific: no free address left in this host's subnet. */
  Exhausted: 101,
  /** weft-specific: the kernel refused a netlink request. */
  Kernel: 102,
  /** weft-specific: CHECK found the attachment ADD made damaged (details say what); DEL and ADD again. */
  AttachmentDamaged: 103,
  /** Anything unexpected (libcni uses 999 for the same purpose). */
  Internal: 999,
} as const;

export type CniErrorCode = (typeof CniErrorCode)[keyof typeof CniErrorCode];

/** The error result a plugin prints on stdout (spec section "Error"). */
export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details: string;
}

export class CniError extends Error {
  readonly code: CniErrorCode;
  readonly msg: string;
  readonly details: string;

  constructor(code: CniErrorCode, msg: string, details = '') {
    super(details === '' ? msg : `${msg}: ${details}`);
    this.name = 'CniError';
    this.code = code;
    this.msg = msg;
    this.details = details;
  }

  /**
   * The cniVersion is the caller's: errors echo the version the runtime spoke.
   * Call it directly: JSON.stringify would pass a property key as the version.
   */
  toJSON(cniVersion: string): CniErrorJson {
    return { cniVersion, code: this.code, msg: this.msg, details: this.details };
  }
}

export function isCniError(e: unknown): e is CniError {
  return e instanceof CniError;
}

/** Code 2. The spec wants both the key and its value in the message. */
export function unsupportedField(key: string, value: unknown, why: string): CniError {
  return new CniError(CniErrorCode.UnsupportedField, `unsupported field ${key}=${render(value)}`, why);
}

/** Code 7, naming the field so the operator knows which line of the conflist to fix. */
export function invalidConfig(field: string, rule: string): CniError {
  return new CniError(CniErrorCode.InvalidNetworkConfig, `invalid network config: ${field}`, rule);
}

/** Code 6, for values whose JSON type is wrong: the content cannot be decoded into weft's shape. */
export function decodeError(field: string, expected: string, value: unknown): CniError {
  return new CniError(
    CniErrorCode.DecodingFailure,
    `failed to decode ${field}`,
    `expected ${expected}, got ${render(value)}`,
  );
}

/** Short, single-line rendering of a JSON value for messages (never the whole config). */
export function render(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
