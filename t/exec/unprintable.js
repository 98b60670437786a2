'use strict';
// unprintable.js -- the Node twin of unprintable.py for t/15-exec.t:
// {"unprintable": 1} throws an Error whose message, stack and toString()
// all throw, {"unprintable_message": 1} a JobError whose message throws,
// {"library_stdout": 1} writes a line with process.stdout.write, as a
// library may; anything answers the process's pid.

const path = require('path');
const { run, JobError } = require(path.join(__dirname, '..', '..', 'sdk', 'node',
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
  if (payload.unprintable_message) {
    const e = new JobError('bad_input');
    Object.defineProperty(e, 'message', {
      get() { throw new Error('no message for this one'); },
    });
    throw e;
  }
  if (payload.library_stdout) {
    process.stdout.write('a line of a library on process.stdout\n');
  }
  return { pid: process.pid };
});
