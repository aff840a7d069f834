// CNI error JSON and the service-failure mapping: each well-known code keeps
// the spec's meaning, and each agent error code lands on one CNI code.
import { describe, expect, it } from 'vitest';
import { CniError, CniErrorCode, render, unsupportedField } from '../../cni-plugin/errors.js';
import { AGENT_UNAVAILABLE_MSG, fromServiceError, ServiceTimeout } from '../../cni-plugin/failures.js';

describe('CniError', () => {
  it('serialises to the spec error structure with the caller version', () => {
    const e = new CniError(CniErrorCode.InvalidNetworkConfig, 'invalid network config: mtu', '9 is outside 68..65535');
    expect(e.toJSON('0.4.0')).toEqual({
      cniVersion: '0.4.0',
      code: 7,
      msg: 'invalid network config: mtu',
      details: '9 is outside 68..65535',
    });
    expect(e.message).toBe('invalid network config: mtu: 9 is outside 68..65535');
  });

  it.each([
    ['IncompatibleVersion', 1],
    ['UnsupportedField', 2],
    ['UnknownContainer', 3],
    ['InvalidEnvironment', 4],
    ['IoFailure', 5],
    ['DecodingFailure', 6],
    ['InvalidNetworkConfig', 7],
    ['TryAgainLater', 11],
    ['PluginNotAvailable', 50],
    ['PluginNotAvailableDisrupted', 51],
    ['Internal', 999],
  ] as const)('%s is code %d', (name, code) => {
    expect(CniErrorCode[name]).toBe(code);
  });

  it('names key and value of an unsupported field (spec: code 2)', () => {
    const e = unsupportedField('ipam', { type: 'host-local' }, 'why');
    expect(e.code).toBe(2);
    expect(e.msg).toContain('ipam');
    expect(e.msg).toContain('"type":"host-local"');
  });

  it('keeps rendered values short', () => {
    expect(render('x'.repeat(500)).length).toBe(120);
  });
});

describe('fromServiceError', () => {
  const coded = (code: string, message = 'boom'): Error => Object.assign(new Error(message), { code });

  it.each([
    ['UNAVAILABLE', 'ADD', 11],
    ['ECONNREFUSED', 'DEL', 11],
    ['UNAVAILABLE', 'STATUS', 50],
    ['NOT_FOUND', 'CHECK', 3],
    ['INVALID_ARGUMENT', 'ADD', 7],
    ['INVALID_CONFIG', 'ADD', 7],
    ['CONFLICT', 'ADD', 100],
    ['EXHAUSTED', 'ADD', 101],
    ['KERNEL', 'ADD', 102],
    ['INTERNAL', 'ADD', 999],
    ['SOMETHING_NEW', 'GC', 999],
  ] as const)('%s during %s -> %d', (code, command, expected) => {
    const e = fromServiceError(coded(code), command);
    expect(e.code).toBe(expected);
    expect(e.details).toBe('boom');
  });

  it('tells the operator where to look when the agent is unavailable', () => {
    expect(fromServiceError(coded('UNAVAILABLE'), 'ADD').msg).toBe(AGENT_UNAVAILABLE_MSG);
    expect(AGENT_UNAVAILABLE_MSG).toContain('weft status');
  });

  it('maps a timeout to try-again-later', () => {
    const e = fromServiceError(new ServiceTimeout(5), 'ADD');
    expect(e.code).toBe(11);
    expect(e.details).toContain('5 ms');
  });

  it('passes a CniError through and wraps non-errors', () => {
    const own = new CniError(CniErrorCode.IoFailure, 'io');
    expect(fromServiceError(own, 'ADD')).toBe(own);
    expect(fromServiceError('plain string', 'ADD').code).toBe(999);
  });
});
