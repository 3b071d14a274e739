-- wrk script: POST the JSON body held in the file named by the first script argument.
--   wrk ... -s bench/post.lua URL -- path/to/body.json
-- init() runs once per wrk thread, before wrk formats the (static) request.

function init(args)
  local path = args[1]
  assert(path, "post.lua: pass the body file after '--'")
  local file = assert(io.open(path, "rb"))
  wrk.body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer idt:TKN-1234-5678:secret"
end
