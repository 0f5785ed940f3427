-- wrk script: POST one JSON body (file named by the first script argument) to the URL given
-- to wrk, count responses that are not 2xx (wrk's own count only covers >= 400), and print
-- one machine-readable line that benchmarks/common/wrk_output.py parses.
--
--   wrk -t2 -c64 -d10s --latency -s wrk_post.lua http://127.0.0.1:8080/v2/models/m/infer -- body.json

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s wrk_post.lua URL -- BODY_FILE")
   end
   local file = assert(io.open(path, "rb"))
   wrk.method = "POST"
   wrk.body = file:read("*a")
   file:close()
   wrk.headers["Content-Type"] = "application/json"
   non_2xx = 0
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
   end
end

function done(summary, latency, requests)
   local non_2xx_total = 0
   for _, thread in ipairs(threads) do
      non_2xx_total = non_2xx_total + thread:get("non_2xx")
   end
   local e = summary.errors
   -- Latencies in microseconds, duration in microseconds, as wrk keeps them.
   io.write(string.format(
      'WRK_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, "non_2xx": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"min": %d, "mean": %.2f, "stdev": %.2f, "max": %d, '
         .. '"p50": %d, "p90": %d, "p99": %d, "p99_9": %d}}\n',
      summary.duration, summary.requests, summary.bytes, non_2xx_total,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9)))
end
