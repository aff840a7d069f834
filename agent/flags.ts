// Command-line and environment parsing, driven by one table of flag specs.
// The same table prints --help and the README's flag table, so the three
// cannot drift apart. Pure: takes argv and env, returns values or throws a
// WeftError INVALID_ARGUMENT that names the flag.

import { WeftError } from '../ipam/errors.js';

export type FlagType = 'string' | 'list' | 'bool' | 'int';

export interface FlagSpec {
  readonly name: string; // without the leading dashes
  readonly type: FlagType;
  readonly help: string;
  readonly default?: string | number | boolean | readonly string[];
  /** Shown instead of the default where it is computed (e.g. from --run-dir). */
  readonly defaultText?: string;
  readonly min?: number;
  readonly max?: number;
}

export type FlagValue = string | number | boolean | string[] | undefined;
export type FlagValues = Record<string, FlagValue>;

export function envName(flag: string): string {
  return `WEFT_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function convert(spec: FlagSpec, raw: string, source: string): FlagValue {
  switch (spec.type) {
    case 'string':
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    case 'bool': {
      const v = raw.toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new WeftError('INVALID_ARGUMENT', `${source}: "${raw}" is not a boolean (use true or false)`, { flag: spec.name });
    }
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) {
        throw new WeftError('INVALID_ARGUMENT', `${source}: "${raw}" is not a whole number`, { flag: spec.name });
      }
      const n = Number(raw);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new WeftError('INVALID_ARGUMENT', `${source}: ${n} is out of range ${spec.min ?? '-∞'}..${spec.max ?? '∞'}`, { flag: spec.name });
      }
      return n;
    }
  }
}

export interface ParsedArgs {
  readonly values: FlagValues;
  readonly positional: string[];
}

/**
 * Parses `--name value`, `--name=value` and bare `--bool-flag`; then fills in
 * `WEFT_<NAME>` from the environment, then defaults. A flag beats its env var.
 */
export function parseArgs(argv: readonly string[], specs: readonly FlagSpec[], env: Readonly<Record<string, string | undefined>> = {}): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = {};
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) {
      throw new WeftError('INVALID_ARGUMENT', `unknown flag --${name} (see --help)`, { flag: name });
    }
    let raw: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (raw === undefined) {
      const next = argv[i + 1];
      if (spec.type === 'bool' && (next === undefined || !/^(true|false|1|0|yes|no|on|off)$/i.test(next))) {
        raw = 'true';
      } else if (next === undefined) {
        throw new WeftError('INVALID_ARGUMENT', `--${name} needs a value`, { flag: name });
      } else {
        raw = next;
        i++;
      }
    }
    values[name] = convert(spec, raw, `--${name}`);
  }
  for (const spec of specs) {
    if (values[spec.name] !== undefined) continue;
    const fromEnv = env[envName(spec.name)];
    if (fromEnv !== undefined && fromEnv !== '') {
      values[spec.name] = convert(spec, fromEnv, envName(spec.name));
    } else if (spec.default !== undefined) {
      const d = spec.default;
      values[spec.name] = Array.isArray(d) ? [...d] : (d as FlagValue);
    }
  }
  return { values, positional };
}

export function defaultText(spec: FlagSpec): string {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.default === undefined) return '';
  return Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default);
}

/** `--help` text: one line a flag with its env var and default. */
export function formatHelp(usage: string, specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const left = `  --${s.name}${s.type === 'bool' ? '' : ' ' + s.type.toUpperCase()}`;
    const d = defaultText(s);
    return `${left.padEnd(34)} ${s.help}${d !== '' ? ` (default ${d})` : ''} [${envName(s.name)}]`;
  });
  return `${usage}\n\nFlags:\n${rows.join('\n')}\n`;
}

/** The README's flag table, generated so docs and parser agree. */
export function formatMarkdownTable(specs: readonly FlagSpec[]): string {
  const lines = ['| flag | environment | default | meaning |', '|---|---|---|---|'];
  for (const s of specs) {
    const d = defaultText(s);
    lines.push(`| \`--${s.name}\`${s.type === 'bool' ? '' : ' ' + s.type} | \`${envName(s.name)}\` | ${d === '' ? '' : '`' + d + '`'} | ${s.help} |`);
  }
  return lines.join('\n');
}
