'use strict';
// offload-handler.js -- write an offload job handler in Node.
//
// A queue runs it with `handler exec; command "/usr/bin/node my.js";`: each
// worker keeps one node process that reads one job a line on stdin and
// writes one answer a line on stdout (docs/HANDLERS.md, "The framing").
// Standard library only.
//
//   const { run, JobError, Retry } = require('./offload-handler');
//   run(async (payload, job) => ({ text: [...payload.text].reverse() }));
//
// The handler gets the job's payload (decoded JSON) and a job { id,
// requestId, traceparent, tracestate, attempt, deadline } and returns the
// result, or a promise of it.  Jobs run one at a time, in order.  Throwing
// a JobError(code, message) fails the job with 422 and that code; a
// Retry(code, message) fails this attempt for now: the job runs again after
// the queue's retry_backoff while it has attempts left (max_attempts) before
// its deadline, else that is its 422.  Anything else thrown fails it with
// "handler_error" and its message, and is logged with its stack.
// job.count(name, n = 1) and job.observe(name, x) record handler metrics
// (docs/HANDLERS.md, "Metrics"): a counter and a histogram under a name of
// letters, digits, '.', '_' and '-', which the node publishes per queue.
// stdout
// belongs to the protocol: console.log goes to stderr, which the sidecar
// logs, a line at a time, tagged with the job.

const readline = require('readline');

// Fails the job: the client gets 422 and {"error": {code, message}}.  code
// is letters, digits and '_' (anything else: "handler_error").
class JobError extends Error {
  constructor(code, message = '') {
    super(message);
    this.name = 'JobError';
    this.code = code;
  }
}

// Fails this attempt for now (a service down, a lock taken): the job runs
// again later, or, no attempt left, gets this 422.
class Retry extends JobError {
  constructor(code, message = '') {
    super(code, message);
    this.name = 'Retry';
  }
}

// A metric line goes before the answer, on the same stream.
function metric(line) {
  process.stdout.write(JSON.stringify(line) + '\n');
}

async function answer(handler, request) {
  const job = {
    count: (name, n = 1) => metric({ metric: name, count: Math.floor(n) }),
    observe: (name, x) => metric({ metric: name, observe: Number(x) }),
    id: request.id,
    requestId: request.rid || '',
    traceparent: request.traceparent || '', // W3C: nginx's span, or ''
    tracestate: request.tracestate || '',
    attempt: request.attempt || 1,
    deadline: request.deadline || 0, // ms since the epoch; 0: none
  };
  let error;
  try {
    const result = await handler(request.payload, job);
    return JSON.stringify({ id: job.id,
                            result: result === undefined ? null : result });
  } catch (e) {
    if (e instanceof JobError) {
      error = { code: String(e.code), message: String(e.message) };
      if (e instanceof Retry) {
        error.retry = true;
      }
    } else {
      console.error(e && e.stack ? e.stack : String(e));
      error = { code: 'handler_error',
                message: (e && e.message) || String(e) };
    }
  }
  return JSON.stringify({ id: job.id, error });
}

// Runs handler on each job until stdin closes (the worker stops).
function run(handler) {
  const out = process.stdout;
  console.log = console.info = console.debug = console.error;

  const lines = readline.createInterface({ input: process.stdin,
                                           crlfDelay: Infinity });
  let queue = Promise.resolve();

  lines.on('line', (line) => {
    queue = queue.then(async () => {
      out.write(await answer(handler, JSON.parse(line)) + '\n');
    });
  });
  lines.on('close', () => { queue.then(() => process.exit(0)); });
}

module.exports = { run, JobError, Retry };
