-- wrk script for bench/ingest.py: POST /api/events, one hangup per request with a UniqueId that
-- is unique per request (run prefix, thread id, counter), spread round-robin over the bench units
-- 0001..N. Counts answers by status and prints them as one JSON line at the end.
--
--   wrk -t2 -c64 -d15s -s bench/ingest.lua http://127.0.0.1:PORT -- PREFIX UNITS

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1] or "wrk"
  units = tonumber(args[2] or "100")
  counter = 0
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local body_format = '{"enterprise_number":"%04d","event_type":"hangup","payload":'
  .. '{"UniqueId":"%s-%d-%d","Phone":"375291112233","CallType":0,"CallStatus":"2",'
  .. '"StartTime":"2025-01-01 10:00:00","EndTime":"2025-01-01 10:01:00"}}'

function request()
  counter = counter + 1
  local body = string.format(body_format, counter % units + 1, prefix, tid, counter)
  return wrk.format(nil, "/api/events", nil, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format('"%s":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ",")))
end
