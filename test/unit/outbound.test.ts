// Which requests go through the operator's proxy, read from the environment as curl reads
// it; and what the worker's start says of a proxy variable that is not a proxy URL.
import { describe, expect, it } from 'vitest';
import { exemptFromProxy, outboundProxyProblems, proxyRoute } from '../../providers/outbound';

const route = (url: string, env: NodeJS.ProcessEnv) => {
  const r = proxyRoute(new URL(url), env);
  return r ? { proxy: r.proxy.href, variable: r.variable, connect: r.connect } : undefined;
};

describe('proxyRoute', () => {
  it('takes HTTPS_PROXY for https (lower case first), HTTP_PROXY only for http, and never for loopback', () => {
    expect(route('https://platform.claude.com/v1/oauth/token', { HTTPS_PROXY: 'http://proxy:3128' })).toEqual({ proxy: 'http://proxy:3128/', variable: 'HTTPS_PROXY', connect: 'address' });
    expect(route('https://x.example/', { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' })?.variable).toBe('https_proxy');
    // A bare host:port is http, as curl reads it.
    expect(route('https://x.example/', { HTTPS_PROXY: 'proxy.corp:8080' })?.proxy).toBe('http://proxy.corp:8080/');
    expect(route('https://x.example/', { HTTP_PROXY: 'http://proxy:3128' })).toBeUndefined();
    expect(route('http://x.example/', { HTTP_PROXY: 'http://proxy:3128' })?.variable).toBe('HTTP_PROXY');
    for (const loopback of ['https://localhost:8443/', 'https://127.0.0.1/', 'https://[::1]/', 'http://127.3.4.5:80/', 'https://a.localhost/']) {
      expect(route(loopback, { HTTPS_PROXY: 'http://proxy:3128', HTTP_PROXY: 'http://proxy:3128' }), loopback).toBeUndefined();
    }
    expect(route('https://x.example/', { HTTPS_PROXY: 'http://proxy:3128', SLOTS_PROXY_CONNECT: 'name' })?.connect).toBe('name');
    expect(route('https://x.example/', {})).toBeUndefined();
  });

  it('throws a named error for a value that is not a proxy URL, without quoting it', () => {
    expect(() => proxyRoute(new URL('https://x.example/'), { HTTPS_PROXY: 'socks5://u:hunter2@proxy:1080' })).toThrow(/^HTTPS_PROXY: only http:\/\/ and https:\/\/ proxies are supported, not socks5:\/\/$/);
  });
});

describe('NO_PROXY, as curl reads it', () => {
  const cases: [string, string, boolean][] = [
    ['https://api.example.com/', 'example.com', true],
    ['https://example.com/', 'example.com', true],
    ['https://badexample.com/', 'example.com', false],
    ['https://api.example.com/', '.example.com', true],
    ['https://api.example.com/', '*.example.com', true],
    ['https://api.example.com/', 'other.com, example.com', true],
    ['https://api.example.com/', 'other.com example.com', true],
    ['https://API.Example.COM./', 'example.com', true],
    ['https://api.example.com/', 'example.com:443', true],
    ['https://api.example.com:8443/', 'example.com:443', false],
    ['https://10.1.2.3/', '10.0.0.0/8', true],
    ['https://11.1.2.3/', '10.0.0.0/8', false],
    ['https://10.1.2.3/', '10.1.2.3', true],
    ['https://[2001:db8::1]/', '2001:db8::/32', true],
    ['https://[2001:db8::1]/', '[2001:db8::1]', true],
    ['https://tokens.example/', '10.0.0.0/8', false],
    ['https://anything.example/', '*', true],
    ['https://anything.example/', '', false],
  ];
  it.each(cases)('%s with NO_PROXY=%j: exempt %s', (url, noProxy, exempt) => {
    expect(exemptFromProxy(new URL(url), noProxy)).toBe(exempt);
  });
  it('reads no_proxy before NO_PROXY', () => {
    const env = { HTTPS_PROXY: 'http://proxy:3128', no_proxy: 'example.com', NO_PROXY: 'other.com' };
    expect(route('https://a.example.com/', env)).toBeUndefined();
    expect(route('https://a.other.com/', env)).toBeDefined();
  });
});

describe('the worker configuration', () => {
  it('names a proxy variable that is not a proxy URL, never its password, and takes good ones', () => {
    const problems = outboundProxyProblems({ HTTPS_PROXY: 'http://ops:hunter2@proxy:3128/some/path', SLOTS_PROXY_CONNECT: 'dns' });
    expect(problems).toEqual([
      'HTTPS_PROXY=http://proxy:3128…: a proxy URL has no path, query or fragment',
      'SLOTS_PROXY_CONNECT="dns": must be address or name',
    ]);
    expect(problems.join('\n')).not.toContain('hunter2');
    expect(outboundProxyProblems({ HTTPS_PROXY: 'http://ops:hunter2@proxy:3128', https_proxy: 'proxy.corp:8080/', NO_PROXY: 'localhost', SLOTS_PROXY_CONNECT: 'name' })).toEqual([]);
  });
});
