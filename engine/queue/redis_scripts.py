"""Lua scripts that make each multi-step queue change atomic on the Redis server.

Scripts rather than MULTI: each change first checks that the stream entry is
still pending for this consumer, so a worker whose job was taken over cannot
publish a second result or renew a claim it has lost.
"""

from __future__ import annotations

# Waiting entries up to and including entry_id: those the workers' group has
# not delivered yet. 0 when the entry was delivered (it is being generated).
_POSITION_FUNCTION = """
local function position(stream, group, entry_id)
  local last = '0-0'
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
    if fields['name'] == group then last = fields['last-delivered-id'] end
  end
  return #redis.call('XRANGE', stream, '(' .. last, entry_id)
end
"""

# KEYS: jobs, job_entries, session slot
# ARGV: job_id, max_in_flight, slot_ttl_ms, job_json, workers group
# Returns {'busy', holder_job_id} | {'full', in_flight} | {'queued', position}
ENQUEUE = (
    _POSITION_FUNCTION
    + """
local holder = redis.call('GET', KEYS[3])
if holder then return {'busy', holder} end
local in_flight = redis.call('XLEN', KEYS[1])
if in_flight >= tonumber(ARGV[2]) then return {'full', in_flight} end
local entry_id = redis.call('XADD', KEYS[1], '*', 'job', ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], entry_id)
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[3])
return {'queued', position(KEYS[1], ARGV[5], entry_id)}
"""
)

# KEYS: jobs, job_entries
# ARGV: job_id, workers group
# Returns -1 when the job is not in flight, else its position.
POSITION = (
    _POSITION_FUNCTION
    + """
local entry_id = redis.call('HGET', KEYS[2], ARGV[1])
if not entry_id then return -1 end
return position(KEYS[1], ARGV[2], entry_id)
"""
)

# Publish a job's final event (if any), optionally dead-letter it, then retire it.
# KEYS: jobs, results, job_entries, session slot, dead
# ARGV: group, consumer, entry_id, job_id, event_json ('' = none),
#       dead_job ('' = not dead-lettered), dead_reason, delivery_count
# Returns 1; 0 when the entry is pending for another consumer (taken over) or the job was
# queued again under a new entry; 2 when the queue no longer holds the job at all (Redis
# lost its data, e.g. restarted without persistence, or another worker already retired
# it): the event is published anyway, since the story may still wait for it and storing
# a result is idempotent on the job id.
FINISH = """
local owned = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if type(owned) == 'table' and owned['err'] == nil and #owned > 0 then
  if ARGV[5] ~= '' then redis.call('XADD', KEYS[2], '*', 'event', ARGV[5]) end
  if ARGV[6] ~= '' then
    redis.call('XADD', KEYS[5], '*', 'job', ARGV[6], 'reason', ARGV[7],
               'deliveries', ARGV[8], 'worker', ARGV[2])
    if redis.call('GET', KEYS[4]) == ARGV[4] then redis.call('DEL', KEYS[4]) end
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[3], ARGV[4])
  return 1
end
if ARGV[4] == '' or redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return 0 end
if #redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3]) > 0 then return 0 end
if ARGV[5] ~= '' then redis.call('XADD', KEYS[2], '*', 'event', ARGV[5]) end
return 2
"""

# Renew this consumer's claim on its running entries (reset their idle time).
# KEYS: jobs; ARGV: group, consumer, entry ids...
# Returns the entry ids still owned (the others were taken over or retired, or the
# queue lost them).
RENEW = """
local kept = {}
for i = 3, #ARGV do
  local owned = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if type(owned) == 'table' and owned['err'] == nil and #owned > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""

# Make owned entries claimable at once without counting the aborted delivery.
# KEYS: jobs; ARGV: group, consumer, idle_ms, then pairs of entry id, previous count
RELEASE = """
for i = 4, #ARGV, 2 do
  local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #owned > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i],
               'IDLE', ARGV[3], 'RETRYCOUNT', ARGV[i + 1], 'JUSTID')
  end
end
return 1
"""

# Acknowledge stored final events and free the session's slot if it still holds the job.
# KEYS: results, session slot; ARGV: group, job_id, result entry ids...
ACK = """
for i = 3, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"""
