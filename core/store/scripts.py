"""The Lua scripts of the store: each is one atomic step in one slot, and answers a call sent
again after a lost reply as it answered the first."""

# Claim an event: new, resumed (a dead holder left an in-flight record), busy, or done.
CLAIM = """
local seen = redis.call('GET', KEYS[1])
if seen == ARGV[1] then  -- ours already: this call was sent again after a lost reply
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'resumed' end
  return 'new'
end
if seen then
  if string.sub(seen, 1, 6) == 'lease:' then return 'busy' end
  return 'done'
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then return 'resumed' end
return 'new'
"""
# Mark a claimed event done and drop its in-flight record, if the claim is still ours.
COMPLETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""
# Take a ticket: a place at the end of the conversation's line, kept while the waiter lives.
# Returns the reset counters (KEYS[4...]) as they were when the question arrived.
LINE_UP = """
local ticket = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], ticket, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
local resets = {}
for i = 4, #KEYS do resets[i - 3] = redis.call('GET', KEYS[i]) end
return resets
"""
# The next step for a waiter (ARGV[1]): KEYS are the line, the conversation's lock, and the
# `waiting` key of ARGV[2], the waiter the caller believes is first. `taken`: the conversation
# is ours. `wait`: first is alive (or is us, and the lock is held). `skipped`: first was dead
# and left the line. `first`: the caller was wrong about who is first (its name follows).
# `gone`: we are no longer in line (we stalled past our lease and were skipped).
NEXT = """
if redis.call('GET', KEYS[2]) == ARGV[1] then  -- taken: this call was sent again
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {'taken'}
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return {'gone'} end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
if first ~= ARGV[2] then return {'first', first} end
if first == ARGV[1] then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('DEL', KEYS[3])
    return {'taken'}
  end
  return {'wait'}
end
if redis.call('EXISTS', KEYS[3]) == 1 then return {'wait'} end
redis.call('ZREM', KEYS[1], first)
return {'skipped'}
"""
