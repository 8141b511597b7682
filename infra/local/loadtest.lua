-- wrk script of `make loadtest`: a mixed workload of users and admins against `ragbot dev`.
--   83% POST /retrieve, 10% POST /chat (user token, a question from LT_QUESTIONS)
--    4% POST /embed/qa, 3% POST /documents (admin token, a new uniquely named entry each)
-- LT_PAUSE=1: every connection waits 1-3 s between requests (a user reading the answer).
-- Each thread appends every response's status to LT_OUT/status-<thread>, and the title of every
-- acknowledged (201) write to LT_OUT/acked-<thread>, for the report and the no-loss check.

local user = os.getenv("LT_USER_TOKEN")
local admin = os.getenv("LT_ADMIN_TOKEN")
local out = os.getenv("LT_OUT")
local pause = os.getenv("LT_PAUSE") == "1"
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end

local questions = {}
local status_file, acked_file
local n = 0

function init(args)
  for line in io.lines(os.getenv("LT_QUESTIONS")) do
    questions[#questions + 1] = line
  end
  math.randomseed(id * 7919 + os.time())
  status_file = io.open(out .. "/status-" .. id, "a")
  acked_file = io.open(out .. "/acked-" .. id, "a")
end

local function json_string(s)
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

function delay()
  if pause then return math.random(1000, 3000) end
  return 0
end

function request()
  n = n + 1
  local q = questions[math.random(#questions)]
  local r = math.random(100)
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. user }
  if r <= 83 then
    return wrk.format("POST", "/retrieve", headers, '{"query": ' .. json_string(q) .. ', "top_k": 5}')
  elseif r <= 93 then
    return wrk.format("POST", "/chat", headers, '{"message": ' .. json_string(q) .. '}')
  end
  headers["Authorization"] = "Bearer " .. admin
  local title = string.format("load-%d-%d-%d", id, os.time(), n)
  if r <= 97 then
    return wrk.format("POST", "/embed/qa", headers, '{"document_title": "' .. title ..
      '", "question_answer_data": [{"question": ' .. json_string(q) ..
      ', "answer": "Recorded by the load test as entry ' .. title .. '."}]}')
  end
  headers["Content-Type"] = "text/plain"
  return wrk.format("POST", "/documents?name=" .. title .. ".txt", headers,
    "Load test document " .. title .. ". " .. q)
end

function response(status, headers, body)
  status_file:write(status, "\n")
  if status == 201 or status == 202 then
    local t = body:match('"title":"(load%-[%d%-]+)')
    if t then
      acked_file:write(t, "\n")
      acked_file:flush()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.1f, "p50_ms": %.1f, "p95_ms": %.1f, "p99_ms": %.1f, ' ..
    '"max_ms": %.1f, "socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.timeout))
end
