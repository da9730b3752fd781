// The failure converter of workers and clients when payload encryption is on: a
// failure's message and stack move into `encodedAttributes`, a payload, so the
// payload codec seals them like any other payload (the history then shows
// "Encoded failure"; the SDK and the codec server open it again).
// CommonJS, because the SDK loads it with require() (workers, clients) and the
// workflow bundler links it into the sandbox: neither goes through tsx.
/* eslint-disable @typescript-eslint/no-require-imports */
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
