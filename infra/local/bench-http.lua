-- BENCH=http: POST /retrieve with the evaluation set's questions in turn (one per request), a user
-- token; prints one JSON line of latency percentiles (ms), requests/s and non-2xx answers.
local questions = {}
local token = os.getenv("BH_TOKEN")
for line in io.lines(os.getenv("BH_QUESTIONS")) do
  if #line > 0 then
    local q = line:gsub('\\', '\\\\'):gsub('"', '\\"')
    questions[#questions + 1] = '{"query": "' .. q .. '"}'
  end
end
local i = 0
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }

request = function()
  i = i % #questions + 1
  return wrk.format("POST", "/retrieve", headers, questions[i])
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    '{"requests": %d, "rps": %.1f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    non2xx, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
