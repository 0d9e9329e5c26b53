-- wrk script: POST one signed GitHub delivery, read from the files that
-- benches/load.sh and benches/run.sh prepare (body, signature, event).
-- RATE_DELAY_MS paces each connection (a fixed offered load).
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local dir = os.getenv("LOAD_DIR") or "target/load"
wrk.method = "POST"
wrk.body = read(dir .. "/body.json")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = read(dir .. "/event"):gsub("%s+$", "")
wrk.headers["X-GitHub-Delivery"] = "load-bench-delivery"
wrk.headers["X-Hub-Signature-256"] = read(dir .. "/signature"):gsub("%s+$", "")
local pace = tonumber(os.getenv("RATE_DELAY_MS") or "")
if pace then
  delay = function()
    return pace
  end
end
