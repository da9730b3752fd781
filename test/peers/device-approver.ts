// A person at a browser, over plain HTTP: opens the verification page of a device
// login, types the user code, signs in and consents (or aborts) through the server's
// own pages, following redirects and keeping cookies. Forms are read from the HTML.

export interface ApprovalStep {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly status: number;
  readonly title: string;
}

export interface ApprovalResult {
  /** Title of the last page (oidc-provider: "Sign-in Success" after an approval). */
  readonly title: string;
  readonly text: string;
  readonly steps: readonly ApprovalStep[];
}

interface Form {
  readonly id: string | undefined;
  readonly action: string;
  readonly fields: Array<{ name: string; value: string; type: string }>;
}

const attr = (tag: string, name: string): string | undefined => {
  const match = new RegExp(`\\s${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
  return match ? decodeEntities(match[1] ?? '') : undefined;
};

const decodeEntities = (text: string): string =>
  text.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** Every `<form>` of the page with its inputs (and the named buttons that submit it). */
export function readForms(html: string, base: string): Form[] {
  const forms: Form[] = [];
  for (const match of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const open = match[1] ?? '';
    const body = match[2] ?? '';
    const fields = [...body.matchAll(/<input\b([^>]*)>/gi)].map((m) => ({
      name: attr(m[1] ?? '', 'name') ?? '',
      value: attr(m[1] ?? '', 'value') ?? '',
      type: (attr(m[1] ?? '', 'type') ?? 'text').toLowerCase(),
    }));
    forms.push({ id: attr(open, 'id'), action: new URL(attr(open, 'action') ?? base, base).toString(), fields: fields.filter((f) => f.name) });
  }
  return forms;
}

const titleOf = (html: string): string => /<title>([^<]*)<\/title>/i.exec(html)?.[1]?.trim() ?? '';
const textOf = (html: string): string =>
  html.replace(/<style[\s\S]*?<\/style>|<script[\s\S]*?<\/script>/gi, ' ').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();

class Browser {
  private readonly cookies = new Map<string, string>();
  readonly steps: ApprovalStep[] = [];

  /** One request, then every redirect, as a browser follows them (303/302 → GET). */
  async go(method: 'GET' | 'POST', url: string, form?: Record<string, string>): Promise<{ url: string; html: string; status: number }> {
    let current = { method, url, form };
    for (let hops = 0; hops < 20; hops++) {
      const response = await fetch(current.url, {
        method: current.method,
        redirect: 'manual',
        headers: {
          accept: 'text/html',
          ...(this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
          ...(current.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        },
        ...(current.form ? { body: new URLSearchParams(current.form).toString() } : {}),
      });
      this.keepCookies(response.headers.getSetCookie());
      const html = await response.text();
      this.steps.push({ method: current.method, url: current.url, status: response.status, title: titleOf(html) });
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        current = { method: 'GET', url: new URL(location, current.url).toString(), form: undefined };
        continue;
      }
      return { url: current.url, html, status: response.status };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  private keepCookies(lines: string[]): void {
    for (const line of lines) {
      const [pair = '', ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=.*1970/i.test(a));
      if (gone || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

/** Fills a form as a person would: hidden fields stay, the visible ones get what the person types. */
function fill(form: Form, typed: Record<string, string>, button?: { name: string; value: string }): Record<string, string> {
  const values: Record<string, string> = {};
  for (const field of form.fields) values[field.name] = field.type === 'hidden' ? field.value : (typed[field.name] ?? field.value);
  if (button) values[button.name] = button.value;
  return values;
}

function onlyForm(page: { html: string; url: string }, what: string): Form {
  const forms = readForms(page.html, page.url);
  const form = forms[0];
  if (!form) throw new Error(`expected ${what} at ${page.url}, found no form: ${textOf(page.html).slice(0, 300)}`);
  return form;
}

/**
 * Approves (or aborts) a device login at `verificationUri` with `userCode`, through
 * oidc-provider's own pages: code entry, confirmation, sign-in, consent.
 */
export async function answerDeviceLogin(
  verificationUri: string,
  userCode: string,
  options: { answer: 'approve' | 'abort'; login?: string; password?: string } = { answer: 'approve' },
): Promise<ApprovalResult> {
  const browser = new Browser();
  let page = await browser.go('GET', verificationUri);
  const entry = onlyForm(page, 'the user code form');
  if (!entry.fields.some((f) => f.name === 'xsrf')) throw new Error('the user code form has no xsrf field');
  page = await browser.go('POST', entry.action, fill(entry, { user_code: userCode }));

  const confirm = onlyForm(page, 'the confirmation form');
  if (options.answer === 'abort') {
    // The "[ Abort ]" button submits the confirmation form with abort=yes.
    page = await browser.go('POST', confirm.action, fill(confirm, {}, { name: 'abort', value: 'yes' }));
    return { title: titleOf(page.html), text: textOf(page.html), steps: browser.steps };
  }
  page = await browser.go('POST', confirm.action, fill(confirm, {}));

  // Sign-in, then consent: the interaction pages, until the server says it is done.
  for (let round = 0; round < 4 && /\/interaction\//.test(page.url); round++) {
    const form = onlyForm(page, 'an interaction form');
    page = await browser.go('POST', form.action, fill(form, { login: options.login ?? 'operator@example.test', password: options.password ?? 'any password' }));
  }
  return { title: titleOf(page.html), text: textOf(page.html), steps: browser.steps };
}
