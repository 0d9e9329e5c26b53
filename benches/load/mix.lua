-- wrk script of the soak: mixed traffic from every source, paced by
-- RATE_DELAY_MS per connection. Per 100 requests: 1 GitHub delivery with a
-- bad signature, 5 duplicates (a GitHub delivery and a Grafana alert sent
-- again and again), Grafana notifications, the rest GitHub deliveries that
-- verify and are ignored; per TASK_EVERY requests, 2 new CLI tasks and 1 new
-- PM Agent task (the soak sets it so that new Jobs arrive slower than the
-- admission slots drain them: a bounded queue, so flat memory means no leak).
local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local function trim(s) return (s:gsub("%s+$", "")) end
local dir = os.getenv("BENCH_DIR") or "target/bench"
local ing = dir .. "/ingest-9KB/"
local gh_body = read(ing .. "body.json")
local gh_sig = trim(read(ing .. "signature"))
local dup_body = read(dir .. "/dup/body.json")
local dup_sig = trim(read(dir .. "/dup/signature"))
local alert = read(dir .. "/alert.json")
local grafana_auth = trim(read(dir .. "/grafana_auth"))
local task = read(dir .. "/task.json")
local token = trim(read(dir .. "/token"))
local pm_token = trim(read(dir .. "/pm_token"))
-- New tasks: 2 CLI and 1 PM per TASK_EVERY requests (at least 100).
local task_every = math.max(100, tonumber(os.getenv("TASK_EVERY") or "") or 1000)
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
local n = 0

local function github(body, sig, delivery)
  return wrk.format("POST", "/webhook/github", {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "issue_comment",
    ["X-GitHub-Delivery"] = delivery,
    ["X-Hub-Signature-256"] = sig,
  }, body)
end

request = function()
  n = n + 1
  local k = n % 100
  if k == 0 then
    return github(gh_body, "sha256=" .. string.rep("0", 64), "bad-" .. n)
  elseif k <= 3 then
    return github(dup_body, dup_sig, "soak-duplicate")
  elseif k <= 5 then
    return wrk.format("POST", "/webhook/grafana", {
      ["Content-Type"] = "application/json", ["Authorization"] = grafana_auth }, alert)
  elseif k <= 7 and n % task_every == k then
    return wrk.format("POST", "/api/v1/tasks", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token,
      ["Idempotency-Key"] = prefix .. "-" .. n }, task)
  elseif k == 8 and n % task_every == k then
    local body = '{"id":"' .. prefix .. '-' .. n .. '","title":"Soak task","description":"Soak."}'
    return wrk.format("POST", "/api/v1/pm/tasks", {
      ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. pm_token }, body)
  elseif k <= 10 then
    return wrk.format("POST", "/webhook/grafana", {
      ["Content-Type"] = "application/json", ["Authorization"] = grafana_auth }, alert)
  end
  return github(gh_body, gh_sig, "soak-" .. n)
end

local pace = tonumber(os.getenv("RATE_DELAY_MS") or "")
if pace then
  delay = function() return pace end
end
