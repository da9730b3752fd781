// The notice activity against a real HTTP receiver on 127.0.0.1: the webhook format,
// one delivery per event id in a process, 4xx not retried, a token-looking reason withheld.
import { createServer, type Server } from 'node:http';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotifyActivities, type NotifyDeps } from '../../activities/notify';
import { FailureType } from '../../common/failures';
import type { Notice, NoticeBody } from '../../common/notices';

/** The notice activity as workflow `workflowId` calls it (slot:alpha unless told). */
function notifier(deps: NotifyDeps, workflowId = 'slot:alpha'): { sendNotice: (n: Notice) => Promise<unknown> } {
  const acts = createNotifyActivities(deps);
  return { sendNotice: (n) => new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'run' } }).run(acts.sendNotice, n) };
}

describe('sendNotice', () => {
  let server: Server;
  let url: string;
  const posts: Array<{ body: NoticeBody; key: string | undefined }> = [];
  let answer = 200;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        posts.push({ body: JSON.parse(raw) as NoticeBody, key: req.headers['idempotency-key'] as string | undefined });
        res.statusCode = answer;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  });
  afterAll(() => void server.close());

  const notice = (eventId: string, reason = 'open the URL'): Notice => ({
    eventId,
    kind: 'awaiting-operator',
    at: Date.UTC(2026, 0, 2, 3, 4, 5),
    provider: 'claude',
    slotId: 'alpha',
    host: 'h1',
    phase: 'awaiting-operator',
    reason,
    action: { url: 'https://claude.com/cai/oauth/authorize?state=abc', interaction: 'paste-code', command: 'slotctl submit-code alpha', until: Date.UTC(2026, 0, 2, 3, 14, 5) },
  });

  it('posts the v1 body with a Slack text, once per event id', async () => {
    const { sendNotice } = notifier({ log: pino({ level: 'silent' }), webhookUrl: url });
    posts.length = 0;
    expect(await sendNotice(notice('slot:alpha/run/1'))).toEqual({ delivered: 'webhook' });
    // A retry of an attempt whose answer was lost: the same event is not posted again.
    expect(await sendNotice(notice('slot:alpha/run/1'))).toEqual({ delivered: 'already' });
    expect(posts).toHaveLength(1);
    const [post] = posts;
    expect(post?.key).toBe('slot:alpha/run/1');
    expect(post?.body).toMatchObject({ version: 1, eventId: 'slot:alpha/run/1', kind: 'awaiting-operator', at: '2026-01-02T03:04:05.000Z', slotId: 'alpha' });
    expect(post?.body.text).toBe(
      ':key: Slot `alpha` (claude on h1) is waiting for a login: open https://claude.com/cai/oauth/authorize?state=abc, sign in, copy the code, then run `slotctl submit-code alpha` and paste it. Answer before 2026-01-02T03:14:05.000Z.',
    );
  });

  it('a 4xx is final, a 5xx is retried, and neither counts as delivered', async () => {
    const { sendNotice } = notifier({ log: pino({ level: 'silent' }), webhookUrl: url });
    answer = 404;
    const refused = await sendNotice(notice('slot:alpha/run/e-404')).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApplicationFailure);
    expect((refused as ApplicationFailure).nonRetryable).toBe(true);
    expect((refused as ApplicationFailure).message).toBe('notice webhook answered HTTP 404');
    answer = 503;
    const busy = await sendNotice(notice('slot:alpha/run/e-503')).catch((e: unknown) => e);
    expect((busy as ApplicationFailure).nonRetryable).toBe(false);
    answer = 200;
    expect(await sendNotice(notice('slot:alpha/run/e-503'))).toEqual({ delivered: 'webhook' });
  });

  it('withholds a reason that looks like a token', async () => {
    const { sendNotice } = notifier({ log: pino({ level: 'silent' }), webhookUrl: url });
    posts.length = 0;
    await sendNotice(notice('slot:alpha/run/e-token', 'the file held sk-ant-ort01-LEAKED-0123456789'));
    const raw = JSON.stringify(posts);
    expect(raw).not.toContain('LEAKED');
    expect(posts[0]?.body.reason).toMatch(/withheld/);
    expect(posts[0]?.body.action).toEqual({ command: 'slotctl submit-code alpha' });
  });

  it('refuses a notice for slot alpha from any workflow but slot:alpha, or with its event ids: nothing is posted (issue 23)', async () => {
    posts.length = 0;
    const deps = { log: pino({ level: 'silent' }), webhookUrl: url };
    for (const caller of ['attacker-workflow', 'slot:beta', 'pool:alpha']) {
      const refused = await notifier(deps, caller).sendNotice(notice(`${caller}/run/1`, 'Your session expired: log in again at https://evil.example')).catch((e: unknown) => e);
      expect(refused).toMatchObject({ type: FailureType.noticeRefused, nonRetryable: true });
    }
    const borrowed = await notifier(deps).sendNotice(notice('slot:beta/run/9')).catch((e: unknown) => e);
    expect(borrowed).toMatchObject({ type: FailureType.noticeRefused });
    expect(posts).toEqual([]);
  });

  it("posts a provider's incident notice only from that provider's incident workflow (issue 25 with issue 23)", async () => {
    posts.length = 0;
    const deps = { log: pino({ level: 'silent' }), webhookUrl: url };
    const incident = (eventId: string, provider = 'claude'): Notice => ({
      eventId,
      kind: 'provider-incident',
      at: Date.UTC(2026, 0, 2, 3, 4, 5),
      provider,
      reason: '5 slots failed permanently within 10 minutes',
      action: { command: "slotctl relogin --where \"SlotProvider = 'claude'\"" },
    });
    for (const [caller, provider] of [['slot:alpha', 'claude'], ['attacker', 'claude'], ['provider-incident:codex:q', 'claude'], ['provider-incident:', 'claude'], ['provider-incident:made-up:q', 'made-up']] as const) {
      const refused = await notifier(deps, caller).sendNotice(incident(`${caller}/run/1`, provider)).catch((e: unknown) => e);
      expect(refused, caller).toMatchObject({ type: FailureType.noticeRefused, nonRetryable: true });
    }
    expect(posts).toEqual([]);
    const own = 'provider-incident:claude:slot-provisioner';
    expect(await notifier(deps, own).sendNotice(incident(`${own}/run/1`))).toEqual({ delivered: 'webhook' });
    expect(posts.map((p) => p.body.kind)).toEqual(['provider-incident']);
  });

  it("escapes Slack markup in a workflow's words: no planted link or @channel (issue 23)", async () => {
    posts.length = 0;
    const { sendNotice } = notifier({ log: pino({ level: 'silent' }), webhookUrl: url });
    const phish = notice('slot:alpha/run/phish', 'session expired <https://evil.example/login|Re-authenticate here> <!channel>');
    await sendNotice({ ...phish, kind: 'needs-relogin', action: { command: 'slotctl relogin alpha` <https://evil.example|x> `' } });
    const text = posts[0]!.body.text;
    expect(text).not.toMatch(/<https?:|<!channel>/);
    expect(text).toContain('&lt;https://evil.example/login|Re-authenticate here&gt; &lt;!channel&gt;');
    // The command's code span cannot be closed to let a link out.
    expect(text.match(/`/g)).toHaveLength(4);
  });

  it("leaves a device login's user code out of notices unless the host allows it (NOTIFY_USER_CODE) (issue 23)", async () => {
    const device: Notice = {
      ...notice('slot:alpha/run/device', 'Open https://auth.example/device and enter the one-time code WXYZ-1234'),
      action: { url: 'https://auth.example/device', userCode: 'WXYZ-1234', interaction: 'device-approval' },
    };
    posts.length = 0;
    await notifier({ log: pino({ level: 'silent' }), webhookUrl: url }).sendNotice(device);
    expect(JSON.stringify(posts)).not.toContain('WXYZ-1234');
    expect(posts[0]!.body.text).toContain('open https://auth.example/device');
    expect(posts[0]!.body.reason).toContain('`slotctl status alpha`');
    posts.length = 0;
    await notifier({ log: pino({ level: 'silent' }), webhookUrl: url, includeUserCode: true }).sendNotice({ ...device, eventId: 'slot:alpha/run/device-2' });
    expect(posts[0]!.body.text).toContain('enter the code WXYZ-1234');
  });
});
