-- wrk script: POST /api/v1/tasks with a unique Idempotency-Key per request
-- (every request becomes a new Job). Body and token from BENCH_DIR.
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local dir = os.getenv("BENCH_DIR") or "target/bench"
local body = read(dir .. "/task.json")
local token = read(dir .. "/token"):gsub("%s+$", "")
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/api/v1/tasks", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = prefix .. "-" .. n,
  }, body)
end
