'use strict';
// retry_count.js -- the Node twin of retry_count.py for t/61-retries.t:
// each run appends "<job id> <attempt> <ms since the epoch>" to the file
// {"log": path} names, then fails for now (Retry) while the attempt is
// before {"ok_at": n}, and answers {"attempt": n, "ran_before": 0 or 1} on
// it.

const fs = require('fs');
const path = require('path');
const { run, Retry } = require(path.join(__dirname, '..', '..', 'sdk', 'node',
                                         'offload-handler'));

run(async (payload, job) => {
  fs.appendFileSync(payload.log, `${job.id} ${job.attempt} ${Date.now()}\n`);
  if (job.attempt < (payload.ok_at || 1)) {
    throw new Retry('not_yet', `attempt ${job.attempt} is too early`);
  }
  return { attempt: job.attempt, ran_before: job.ranBefore ? 1 : 0 };
});
