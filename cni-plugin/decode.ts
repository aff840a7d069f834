// Typed readers over untrusted JSON. A value of the wrong JSON type is a
// decoding failure (code 6) naming the full path of the field, so the config
// parser and the result parser report type errors the same way and neither
// needs an `any`.

import { decodeError } from './errors.js';

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function object(value: unknown, field: string): JsonObject {
  if (!isObject(value)) throw decodeError(field, 'an object', value);
  return value;
}

export function optObject(obj: JsonObject, key: string, path: string): JsonObject | undefined {
  const v = obj[key];
  return v === undefined ? undefined : object(v, join(path, key));
}

export function optString(obj: JsonObject, key: string, path: string): string | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw decodeError(join(path, key), 'a string', v);
  return v;
}

export function optBoolean(obj: JsonObject, key: string, path: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw decodeError(join(path, key), 'true or false', v);
  return v;
}

export function optInteger(obj: JsonObject, key: string, path: string): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw decodeError(join(path, key), 'an integer', v);
  return v;
}

export function optList(obj: JsonObject, key: string, path: string): unknown[] | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw decodeError(join(path, key), 'a list', v);
  return v;
}

export function optStringList(obj: JsonObject, key: string, path: string): string[] | undefined {
  const list = optList(obj, key, path);
  if (list === undefined) return undefined;
  list.forEach((v, i) => {
    if (typeof v !== 'string') throw decodeError(`${join(path, key)}[${i}]`, 'a string', v);
  });
  return list as string[];
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Copies only the keys whose value is defined: results and requests stay free of `"x": undefined`. */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
