-- wrk script for bench/gateway/run.sh: POSTs the JSON body in $BENCH_BODY_FILE, with
-- "Authorization: Bearer $BENCH_KEY" when BENCH_KEY is set. No response() hook: wrk then skips
-- handing bodies to Lua, and its own "Non-2xx or 3xx responses" line counts errors.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a"):gsub("%s+$", "")
f:close()
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end

