'use strict';
// unprintable.js -- the Node twin of unprintable.py for t/15-exec.t:
// {"unprintable": 1} throws an Error whose message, stack and toString()
// all throw; anything else answers the process's pid.

const path = require('path');
const { run } = require(path.join(__dirname, '..', '..', 'sdk', 'node',
                                  'offload-handler'));

class Unprintable extends Error {
  get message() { throw new Error('no message for this one'); }
  get stack() { throw new Error('no stack for this one'); }
  toString() { throw new Error('no text for this one'); }
}

run(async (payload) => {
  if (payload.unprintable) {
    throw new Unprintable();
  }
  return { pid: process.pid };
});
