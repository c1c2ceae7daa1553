import { describe, expect, it } from 'vitest';
import { isCdcError } from '@cityshare/shared';
import { assertSafeListen, isLoopback } from '../src/listen-guard.js';

describe('control API listen guard', () => {
  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) expect(isLoopback(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'control.example.gov.cn', '::ffff:10.0.0.1', '128.0.0.1', '::2']) expect(isLoopback(host), host).toBe(false);
  });

  it('allows plain HTTP on loopback and HTTPS anywhere', () => {
    expect(() => assertSafeListen('127.0.0.1', false)).not.toThrow();
    expect(() => assertSafeListen('::1', false)).not.toThrow();
    expect(() => assertSafeListen('0.0.0.0', true)).not.toThrow();
    expect(() => assertSafeListen('10.0.0.5', true)).not.toThrow();
  });

  it('refuses a non-loopback address without TLS, saying what to set', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.5', 'control.example.gov.cn']) {
      let caught: unknown;
      try {
        assertSafeListen(host, false);
      } catch (err) {
        caught = err;
      }
      expect(isCdcError(caught, 'CONFIG_INVALID'), host).toBe(true);
      expect((caught as Error).message).toContain(`CONTROL_HOST=${host}`);
      expect((caught as Error).message).toMatch(/CONTROL_TLS_CERT and CONTROL_TLS_KEY/);
    }
  });
});
