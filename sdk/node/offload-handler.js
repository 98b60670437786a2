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
// requestId, traceparent, tracestate, attempt, ranBefore, deadline } and
// returns the result, or a promise of it.  Jobs run one at a time, in
// order.  Throwing a JobError(code, message) fails the job with 422 and
// that code; a Retry(code, message) fails this attempt for now: the job
// runs again after the queue's retry_backoff while it has attempts left
// (max_attempts) before its deadline, else that is its 422.  Anything else
// thrown fails it with "handler_error" and its message, and is logged with
// its stack.
// job.count(name, n = 1) and job.observe(name, x) record handler metrics
// (docs/HANDLERS.md, "Metrics"): a counter and a histogram under a name of
// letters, digits, '.', '_' and '-', which the node publishes per queue; a
// value they cannot record (a negative count, NaN) throws.  stdout belongs
// to the protocol: from the require of this module on, console.log and
// process.stdout.write go to stderr, which the sidecar logs, a line at a
// time, tagged with the job.  Node cannot move descriptor 1, so what
// writes to it directly is read as an answer (and ends the process): a
// logger's destination is 2 (pino.destination(2)), not 1, and a child
// process is spawned with stdio ['ignore', 2, 2] (or 'pipe'), never
// 'inherit'.

const readline = require('readline');

// A console.log or a library's process.stdout.write (a logger's) while
// the program loads, before run(), would be taken for the first job's
// answer: from here on it is logged.  The protocol writes through the
// stream's own write.
const answerLine = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
console.log = console.info = console.debug = console.error;

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

// A metric line goes before the answer, on the same stream.  One the
// bridge cannot read ends the process (and reruns the job): a bad value
// throws here instead, failing the job as any error does.
function metric(name, kind, value) {
  if (typeof name !== 'string') {
    throw new TypeError(`a metric name is a string, not ${typeof name}`);
  }
  if (!Number.isFinite(value)
      || (kind === 'count' && (!Number.isSafeInteger(value) || value < 0))) {
    throw new RangeError(`${kind}(${name}, ${value}): not `
                         + (kind === 'count' ? 'a whole number, 0 or more'
                                             : 'a finite number'));
  }
  answerLine(JSON.stringify({ metric: name, [kind]: value }) + '\n');
}

// What f() says of a thrown value, or fallback when asking throws (its
// message or stack getter, its toString, an object with no prototype): a
// value with no text fails its job, not the process.
function said(f, fallback) {
  try {
    return f();
  } catch (_) {
    return fallback;
  }
}

async function answer(handler, request) {
  const job = {
    count: (name, n = 1) => metric(name, 'count', Math.floor(n)),
    observe: (name, x) => metric(name, 'observe', Number(x)),
    id: request.id,
    requestId: request.rid || '',
    traceparent: request.traceparent || '', // W3C: nginx's span, or ''
    tracestate: request.tracestate || '',
    attempt: request.attempt || 1,
    ranBefore: request.ran_before === true, // a run may have begun before
    deadline: request.deadline || 0, // ms since the epoch; 0: none
  };
  let error;
  try {
    const result = await handler(request.payload, job);
    // a function or a symbol has no JSON: the job fails, the answer holds
    const encoded = JSON.stringify(result === undefined ? null : result);
    if (encoded === undefined) {
      throw new TypeError(`the result is a ${typeof result}, not JSON`);
    }
    return `{"id":${JSON.stringify(job.id)},"result":${encoded}}`;
  } catch (e) {
    if (e instanceof JobError) {
      error = { code: said(() => String(e.code), 'handler_error'),
                message: said(() => String(e.message), e.constructor.name) };
      if (e instanceof Retry) {
        error.retry = true;
      }
    } else {
      const type = said(() => e.constructor.name, '') || 'Error';
      console.error(said(() => (e && e.stack) || String(e), type));
      error = { code: 'handler_error',
                message: said(() => String((e && e.message) || e), type) };
    }
  }
  return JSON.stringify({ id: job.id, error });
}

// Runs handler on each job until stdin closes (the worker stops).
function run(handler) {
  const waitReady = process.env.OFFLOAD_WAIT_READY === '1';
  // the processes it starts are no handlers: they are not told
  delete process.env.OFFLOAD_WAIT_READY;
  if (waitReady) {
    // the queue's wait_ready: what the program loaded before run() is
    // loaded, and its worker may now give it jobs
    answerLine('{"ready":true}\n');
  }

  const lines = readline.createInterface({ input: process.stdin,
                                           crlfDelay: Infinity });
  let queue = Promise.resolve();

  lines.on('line', (line) => {
    queue = queue.then(async () => {
      answerLine(await answer(handler, JSON.parse(line)) + '\n');
    });
  });
  lines.on('close', () => { queue.then(() => process.exit(0)); });
}

module.exports = { run, JobError, Retry };
