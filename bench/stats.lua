-- bench/stats.lua: wrk script for bench/run.
--
-- Sends the same request every time (so wrk keeps its fast static path: no
-- request() or response() hook here) and, at the end, prints one line
--   BENCH_JSON {...}
-- with the totals, the socket errors, the non-2xx/3xx count and latency
-- percentiles in microseconds, for bench/report.py to read. Scripts that
-- need more (bench/flood.lua) dofile() this one and call bench_report().

-- Quotes a Lua value for JSON (numbers, strings, flat tables).
local function json(v)
   local t = type(v)
   if t == "number" then
      if v ~= v or v == math.huge or v == -math.huge then return "null" end
      return string.format("%.17g", v)
   elseif t == "string" then
      return '"' .. v:gsub('[%c"\\]', function(c)
         return string.format("\\u%04x", c:byte())
      end) .. '"'
   elseif t == "table" then
      local parts = {}
      for k, x in pairs(v) do
         parts[#parts + 1] = json(tostring(k)) .. ":" .. json(x)
      end
      table.sort(parts)
      return "{" .. table.concat(parts, ",") .. "}"
   elseif t == "boolean" then
      return tostring(v)
   end
   return "null"
end

function bench_report(summary, latency, extra)
   local out = {
      requests = summary.requests,
      duration_us = summary.duration,
      bytes = summary.bytes,
      connect_errors = summary.errors.connect,
      read_errors = summary.errors.read,
      write_errors = summary.errors.write,
      timeouts = summary.errors.timeout,
      non_2xx_3xx = summary.errors.status,
      latency_mean_us = latency.mean,
      latency_max_us = latency.max,
      p50_us = latency:percentile(50),
      p90_us = latency:percentile(90),
      p99_us = latency:percentile(99),
      p999_us = latency:percentile(99.9),
   }
   local fields = {}
   for k, v in pairs(out) do fields[#fields + 1] = json(k) .. ":" .. json(v) end
   for k, v in pairs(extra or {}) do fields[#fields + 1] = json(k) .. ":" .. json(v) end
   io.write("BENCH_JSON {" .. table.concat(fields, ",") .. "}\n")
end

function done(summary, latency, requests)
   bench_report(summary, latency)
end
