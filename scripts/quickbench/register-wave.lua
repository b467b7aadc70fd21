-- Registers a fresh instance per request (6 s lease), so leases come due in a wave.
counter = 0
setup = function(thread) thread:set("id", math.random(1, 1000000)) end
init = function() prefix = "t" .. id .. "-" end
request = function()
  counter = counter + 1
  local body = '{"address":"http://127.0.0.1:9000","ttl_ms":6000}'
  return wrk.format("PUT", "/v1/services/wave/instances/" .. prefix .. counter,
    {["content-type"] = "application/json"}, body)
end
