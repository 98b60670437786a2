-- post.lua -- wrk script: POST one small echo job body.
wrk.method = "POST"
wrk.body = '{"user":42,"items":[1,2,3],"note":"offload bench"}'
wrk.headers["Content-Type"] = "application/json"
