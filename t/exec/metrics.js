'use strict';
// metrics.js -- the Node twin of metrics.py for t/16-handler-metrics.t:
// each job counts {"n": n} under exec.lines and observes {"size": x} under
// exec.size through the SDK's metric lines, then answers {"ok": true}.
// {"bad": 1} counts -1 and {"fn": 1} answers a function: the SDK must fail
// the job, not write a line that ends the process.

const path = require('path');
const { run } = require(path.join(__dirname, '..', '..', 'sdk', 'node',
                                  'offload-handler'));

run((payload, job) => {
  if (payload.bad) {
    job.count('exec.lines', -1);
  }
  if (payload.fn) {
    return () => 1;
  }
  job.count('exec.lines', payload.n === undefined ? 1 : payload.n);
  job.observe('exec.size', payload.size || 0);
  return { ok: true };
});
