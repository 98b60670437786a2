#!/usr/bin/node
'use strict';
// reverse.js -- {"text": "abc"} -> {"text": "cba"}; 422 bad_input without a
// string "text".  The Node twin of the C example plugin's example.reverse:
//
//   queue reverse { handler exec; workers 2;
//                   command "/usr/bin/node /srv/offload/reverse.js"; }
//
// (a path from /: the process runs in the sidecar's working directory)

const path = require('path');
const { run, JobError } = require(path.join(__dirname, '..',
                                            'offload-handler.js'));

run(async (payload, job) => {
  const text = payload && payload.text;
  if (typeof text !== 'string') {
    throw new JobError('bad_input',
                       'the input must be an object with a string "text"');
  }
  console.log(`reversing ${text.length} characters`); // the sidecar's log
  return { text: [...text].reverse().join('') };
});
