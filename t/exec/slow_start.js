'use strict';
// slow_start.js <seconds> -- slow_start.py's twin in Node, for
// t/15-exec-ready.t: loads for that long before it calls the SDK's run(),
// says so with console.log (stderr since the SDK's require), then answers
// each job its pid and when it became ready.
const path = require('path');
const offload = require(path.join(__dirname, '..', '..', 'sdk', 'node',
                                  'offload-handler.js'));

setTimeout(() => {
  console.log(`loaded in ${process.argv[2]} s`);
  const readyAt = Date.now() / 1000;
  offload.run(() => ({ pid: process.pid, ready_at: readyAt }));
}, Number(process.argv[2]) * 1000);
