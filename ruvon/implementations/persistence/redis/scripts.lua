-- Lua scripts of the Redis persistence provider, one `-- name:` block each (same format as the
-- .sql files). scripts.py prepends a `#!lua` flags line and the `prelude` block to every
-- script. Key names follow keys.py; scripts build them from the prefix in ARGV[1], so the
-- provider needs a standalone Redis (or one Cluster slot), not a sharded Cluster.
--
-- A script runs atomically. Redis does not roll a script back on error, so every write script
-- first makes all of its checks and only then writes, with commands that cannot fail on keys of
-- the right type; `#!lua` (no allow-oom flag) makes Redis refuse an over-memory write script
-- before it starts rather than half-way.
--
-- create_workflow and save_workflow share one ARGV layout:
--   1 prefix   2 workflow id   3 created_at score (µs)   4 status   5 workflow type
--   6 parent id (opt)   7 idempotency key (opt)   8 timer score (opt)   9 expected version
--   10 n = number of field arguments   11..10+n the other hash field/value pairs
--   11+n.. rows to append as (list tag, workflow id, JSON) triples: 'audit:' for audit
--          entries, 'comp:' for compensation outcomes (a rollback's, saved with it)
-- workflow_type, definition_snapshot, created_at and deadline are fixed when the workflow is
-- created: only create_workflow reads ARGV[3] and ARGV[5] and gets definition_snapshot (and a
-- workflow with a deadline its `deadline`, µs: its score in the deadlines zset) among the pairs;
-- a save
-- sends '' for both and no snapshot, and keeps the stored ones (and the index scores and type
-- index membership derived from them).
-- create writes id, status, workflow_type, created_at, parent_execution_id and
-- idempotency_key from the header (the optional ones only when present), the rest from the
-- pairs, and `_seq`; save rewrites status, parent, key (deleting them when absent) and the pairs.
-- Optional values are '-' for None or '+' followed by the value, so '' stays a real value.
-- Replies are {status, detail}: 0 ok, 1 version conflict, 2 workflow not found (detail: id),
-- 3 idempotency key taken (detail: owner id), 4 id exists, 5 key already used (detail: HGETALL).

-- name: prelude
local function optional(value)
  if value == '-' then return nil end
  return string.sub(value, 2)
end

local function index_key(prefix, kind, value)
  return prefix .. 'idx:' .. kind .. ':' .. value
end

-- The first appended row's workflow (other than `id`) that has no hash, or nil.
local function missing_audit_owner(prefix, id, first)
  for i = first, #ARGV, 3 do
    local owner = ARGV[i + 1]
    if owner ~= id and redis.call('EXISTS', prefix .. 'wf:' .. owner) == 0 then
      return owner
    end
  end
  return nil
end

local function append_audit(prefix, first)
  for i = first, #ARGV, 3 do
    redis.call('RPUSH', prefix .. ARGV[i] .. ARGV[i + 1], ARGV[i + 2])
  end
end

-- Move `member` (index score `score`) from the status/parent indexes of `before` to those of
-- `after` ({status, parent}, false: none), leaving unchanged memberships alone, and set or
-- clear its timer.
local function reindex(prefix, member, score, before, after)
  local kinds = {'status', 'parent'}
  for i = 1, 2 do
    if before[i] ~= after[i] then
      if before[i] then redis.call('ZREM', index_key(prefix, kinds[i], before[i]), member) end
      if after[i] then redis.call('ZADD', index_key(prefix, kinds[i], after[i]), score, member) end
    end
  end
  local timer = optional(ARGV[8])
  if timer then
    redis.call('ZADD', prefix .. 'timers', timer, member)
  else
    redis.call('ZREM', prefix .. 'timers', member)
  end
end

local TERMINAL = {COMPLETED = true, FAILED = true, FAILED_ROLLED_BACK = true,
                  FAILED_CHILD_WORKFLOW = true, FAILED_WORKER_CRASH = true, CANCELLED = true}

-- Keep `member` in the deadlines zset (score: its `deadline` field, µs) while it is not
-- terminal; a workflow without a deadline has no such field and is never there.
local function track_deadline(prefix, wf, member, status)
  local deadline = redis.call('HGET', wf, 'deadline')
  if not deadline then return end
  if TERMINAL[status] then
    redis.call('ZREM', prefix .. 'deadlines', member)
  else
    redis.call('ZADD', prefix .. 'deadlines', deadline, member)
  end
end

-- name: create_workflow
-- KEYS[1] the workflow hash. Inserts at the version in the fields unless the idempotency key is
-- already used (then returns that workflow) or the id exists.
local wf, prefix, id = KEYS[1], ARGV[1], ARGV[2]
local idem = prefix .. 'idem'
local key = optional(ARGV[7])
if key then
  local owner = redis.call('HGET', idem, key)
  if owner then
    local existing = redis.call('HGETALL', prefix .. 'wf:' .. owner)
    -- An entry whose workflow was deleted by hand is stale: the new workflow takes the key.
    if #existing > 0 then return {5, existing} end
  end
end
if redis.call('EXISTS', wf) == 1 then return {4} end
local fields_end = 10 + tonumber(ARGV[10])
local missing = missing_audit_owner(prefix, id, fields_end + 1)
if missing then return {2, missing} end
local seq = string.format('%016x', redis.call('INCR', prefix .. 'seq'))
local score, parent = ARGV[3], optional(ARGV[6])
redis.call('HSET', wf, '_seq', seq, 'id', id, 'status', ARGV[4], 'workflow_type', ARGV[5],
           'created_at', score, unpack(ARGV, 11, fields_end))
if parent then redis.call('HSET', wf, 'parent_execution_id', parent) end
if key then
  redis.call('HSET', wf, 'idempotency_key', key)
  redis.call('HSET', idem, key, id)
end
local member = seq .. id
redis.call('ZADD', prefix .. 'idx:all', score, member)
redis.call('ZADD', index_key(prefix, 'type', ARGV[5]), score, member)
reindex(prefix, member, score, {false, false}, {ARGV[4], parent})
track_deadline(prefix, wf, member, ARGV[4])
append_audit(prefix, fields_end + 1)
return {0}

-- name: save_workflow
-- KEYS[1] the workflow hash. Rewrites its mutable fields if its version is ARGV[9], moving
-- index memberships, the idempotency key and appending the audit entries in the same step.
-- workflow_type, definition_snapshot and created_at (and so the type index and the scores)
-- stay as stored.
local wf, prefix, id = KEYS[1], ARGV[1], ARGV[2]
local old = redis.call('HMGET', wf, 'version', '_seq', 'status', 'created_at',
                       'parent_execution_id', 'idempotency_key')
if not old[1] then return {2, id} end
if old[1] ~= ARGV[9] then return {1} end
local fields_end = 10 + tonumber(ARGV[10])
local missing = missing_audit_owner(prefix, id, fields_end + 1)
if missing then return {2, missing} end
local idem = prefix .. 'idem'
local key, old_key = optional(ARGV[7]), old[6] or nil
if key and key ~= old_key then
  local owner = redis.call('HGET', idem, key)
  if owner and owner ~= id then return {3, owner} end
end
-- Every check passed; nothing below can fail, so the save is all or nothing.
local parent, old_parent = optional(ARGV[6]), old[5] or nil
redis.call('HSET', wf, 'status', ARGV[4], unpack(ARGV, 11, fields_end))
if parent ~= old_parent then
  if parent then
    redis.call('HSET', wf, 'parent_execution_id', parent)
  else
    redis.call('HDEL', wf, 'parent_execution_id')
  end
end
if key ~= old_key then
  if old_key then redis.call('HDEL', idem, old_key) end
  if key then
    redis.call('HSET', wf, 'idempotency_key', key)
    redis.call('HSET', idem, key, id)
  else
    redis.call('HDEL', wf, 'idempotency_key')
  end
end
reindex(prefix, old[2] .. id, old[4], {old[3], old_parent}, {ARGV[4], parent})
if ARGV[4] ~= old[3] then track_deadline(prefix, wf, old[2] .. id, ARGV[4]) end
append_audit(prefix, fields_end + 1)
return {0}

-- name: list_workflows
-- ARGV: prefix, limit (> 0), status, workflow type, parent id (each optional), the lowest and
-- highest created_at score (ZRANGEBYSCORE bounds), and the position to continue after:
-- optional score, optional id; then the optional workflow version, id prefix and idempotency
-- key prefix. Walks the smallest matching index newest first and checks the other filters;
-- returns HGETALL replies. A prefix is compared as plain text (string.sub), no pattern. Members of one score sort by sequence, the listing
-- by id (descending, as the SQL providers): each run of equal scores is sorted, then emitted.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local wanted = {optional(ARGV[3]), optional(ARGV[4]), optional(ARGV[5])}
local low, high = ARGV[6], ARGV[7]
local after_score, after_id = optional(ARGV[8]), optional(ARGV[9])
if after_score then after_score = tonumber(after_score) end
local version, id_prefix, key_prefix = optional(ARGV[10]), optional(ARGV[11]), optional(ARGV[12])
local function starts_with(text, prefix)
  return prefix == nil or (text ~= false and string.sub(text, 1, #prefix) == prefix)
end
local kinds = {'status', 'type', 'parent'}
local source, smallest = prefix .. 'idx:all', nil
for i = 1, 3 do
  if wanted[i] then
    local candidate = index_key(prefix, kinds[i], wanted[i])
    local size = redis.call('ZCARD', candidate)
    if smallest == nil or size < smallest then source, smallest = candidate, size end
  end
end
local found, offset, page = {}, 0, math.max(limit, 100)
local group, group_score = {}, nil
-- Emit the ids of one score; true once `limit` workflows are found.
local function flush()
  table.sort(group, function(a, b) return a > b end)
  for _, id in ipairs(group) do
    if not (after_score and group_score == after_score and id >= after_id)
       and starts_with(id, id_prefix) then
      local wf = prefix .. 'wf:' .. id
      local values = redis.call('HMGET', wf, 'status', 'workflow_type', 'parent_execution_id',
                                'idempotency_key', 'attributes')
      local matches = starts_with(values[4], key_prefix)
      for i = 1, 3 do
        if wanted[i] and values[i] ~= wanted[i] then matches = false end
      end
      if matches and version and cjson.decode(values[5])['workflow_version'] ~= version then
        matches = false
      end
      if matches then
        found[#found + 1] = redis.call('HGETALL', wf)
        if #found >= limit then return true end
      end
    end
  end
  group = {}
  return false
end
while true do
  local reply = redis.call('ZREVRANGEBYSCORE', source, high, low, 'WITHSCORES', 'LIMIT',
                           offset, page)
  for i = 1, #reply, 2 do
    local score = tonumber(reply[i + 1])
    if score ~= group_score then
      if flush() then return found end
      group_score = score
    end
    group[#group + 1] = string.sub(reply[i], 17)
  end
  if #reply < 2 * page then
    flush()
    return found
  end
  offset = offset + page
end

-- name: find_by_idempotency_key
-- KEYS[1] the idempotency hash; ARGV: prefix, key. HGETALL of the key's workflow, or nil.
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if not owner then return false end
return redis.call('HGETALL', ARGV[1] .. 'wf:' .. owner)

-- name: append_if_exists
-- KEYS[1] a workflow hash, KEYS[2] one of its lists; ARGV[1] the entry. 1 appended, 0 unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
return 1

-- name: record_signal
-- KEYS[1] a workflow hash, KEYS[2] its signal list, KEYS[3] its event-id hash; ARGV[1] the
-- event id, ARGV[2] the signal. 1 recorded, 0 a duplicate event id, 2 unknown workflow.
if redis.call('EXISTS', KEYS[1]) == 0 then return 2 end
if redis.call('HSETNX', KEYS[3], ARGV[1], '1') == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
