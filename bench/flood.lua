-- bench/flood.lua: the login flood of bench/run's scenario 4.
--
-- Every request is GET /api/token with HTTP Basic credentials that are new
-- each time (random username and password), from a client address that is
-- new each time too (X-Forwarded-For, believed from loopback): a flood from
-- many addresses, so neither the password cache nor a ban of one address
-- (which latch answers at once, without hashing) can answer it without a
-- full scrypt hash. latch answers 401 (after the hash) or, when its
-- hashing queue is full, 503 at once.
--
-- Every fourth request has one-time codes in the mix: the right password of
-- flood-totp, a user with a second factor (bench/run makes it, and lifts
-- the ban limits of this server so the account is never banned), and a
-- random code in X-Latch-OTP: a full scrypt hash, then a code check (401).
-- response() counts answers per status in each thread; done() adds them up
-- and prints them with the usual stats (bench/stats.lua).

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "stats.lua")

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = s:byte(i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1) .. alphabet:sub(c2 + 1, c2 + 1)
         .. (b and alphabet:sub(c3 + 1, c3 + 1) or "=")
         .. (c and alphabet:sub(c4 + 1, c4 + 1) or "=")
   end
   return table.concat(out)
end

-- Main state: keep the threads to collect their counts in done().
local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   threads[#threads + 1] = thread
end

-- Thread states.
statuses = {}
local counter = 0

function init(args)
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   counter = counter + 1
   local user = string.format("flood%d-%08x%08x", counter,
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
   local password = string.format("pw-%08x%08x%08x", math.random(0, 0x7fffffff),
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
   local source = string.format("10.%d.%d.%d", math.random(0, 255),
      math.random(0, 255), math.random(1, 254))
   if counter % 4 == 0 then
      return wrk.format("GET", "/api/token",
         { Authorization = "Basic " .. base64("flood-totp:flood-totp-password"),
           ["X-Latch-OTP"] = string.format("%06d", math.random(0, 999999)),
           ["X-Forwarded-For"] = source })
   end
   return wrk.format("GET", "/api/token",
      { Authorization = "Basic " .. base64(user .. ":" .. password),
        ["X-Forwarded-For"] = source })
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, t in ipairs(threads) do
      local s = t:get("statuses") or {}
      for k, v in pairs(s) do
         total[k] = (total[k] or 0) + v
      end
   end
   local extra = {}
   for k, v in pairs(total) do extra["status_" .. k] = v end
   bench_report(summary, latency, extra)
end
