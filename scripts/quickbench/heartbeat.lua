counter = 0
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/v1/services/hb/instances/i" .. (counter % 1000) .. "/heartbeat")
end
