// Experiment only (not product code): counts the Temporal workflow thread's calls into its
// vm context, and optionally removes the per-call watchdog timeout or the promise hook.
const vm = require('node:vm');
const v8 = require('node:v8');
const { isMainThread, threadId } = require('node:worker_threads');
const fs = require('node:fs');
let calls = 0, withTimeout = 0;
const orig = vm.Script.prototype.runInContext;
vm.Script.prototype.runInContext = function (ctx, opts) {
  calls++;
  if (opts && opts.timeout !== undefined) {
    withTimeout++;
    if (process.env.VM_EXP_NO_TIMEOUT === '1') { const { timeout, ...rest } = opts; opts = rest; }
  }
  return orig.call(this, ctx, opts);
};
if (process.env.VM_EXP_NO_PROMISE_HOOK === '1') {
  v8.promiseHooks.createHook = () => () => {};
}
const out = process.env.VM_EXP_OUT;
if (out && !isMainThread) setInterval(() => { fs.writeFileSync(`${out}.${process.pid}.${threadId}`, JSON.stringify({ calls, withTimeout })); }, 2000).unref();
