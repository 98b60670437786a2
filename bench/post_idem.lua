-- post_idem.lua -- wrk script: post.lua's echo job, each request with an
-- Idempotency-Key of its own (the run's start, the thread, a counter), so
-- every request is a first submission: what the key costs, not replays.
local threads = 0

function setup(thread)
   threads = threads + 1
   thread:set("tid", threads)
end

function init(args)
   prefix = string.format("bench-%d-%d-%d-", os.time(), tid,
                          math.random(1000000000))
   n = 0
end

function request()
   n = n + 1
   return wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = prefix .. n
   }, '{"user":42,"items":[1,2,3],"note":"offload bench"}')
end
