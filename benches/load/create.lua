-- wrk script: raw Job creates against the API server (the simulator),
-- named by generateName; stops after CREATE_LIMIT answers when set.
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local dir = os.getenv("BENCH_DIR") or "target/bench"
wrk.method = "POST"
wrk.body = read(os.getenv("JOB_FILE") or (dir .. "/job.json"))
wrk.headers["Content-Type"] = "application/json"
local limit = tonumber(os.getenv("CREATE_LIMIT") or "")
local done = 0
response = function(status, headers, body)
  done = done + 1
  if limit and done >= limit then
    wrk.thread:stop()
  end
end
