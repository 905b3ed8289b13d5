-- wrk -s wrk-wrong-passwords.lua URL -- FILE: every request logs in with the next wrong
-- password of FILE (one Authorization value per line), round and round: a brute force.
-- Prints one JSON line when done: what the flood sent, and how much of it was refused.
local logins, last = {}, 0

init = function(args)
  for line in io.lines(args[1]) do logins[#logins + 1] = line end
end

request = function()
  last = last % #logins + 1
  wrk.headers["Authorization"] = logins[last]
  return wrk.format()
end

done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %.3f, "non_2xx": %d, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
