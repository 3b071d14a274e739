"""The Lua scripts of the Redis store: each change of a collection, each page of a read, and
each fork is one script, so it is atomic across threads, processes and servers.

The key layout they work on is `storage.redis_keys`'. `CHANGE` keeps an item's index entries
in its meta (MessagePack: `{number, entry per index}`, an entry being the escaped value, whose
member is `value NUL number NUL id`, 1 for an id in the index's `others`, or 0; a meta made
before held the whole member, which holds a NUL, and is read as well), so a change or an
eviction removes exactly what an item added without reading its JSON.
"""

from __future__ import annotations

# KEYS: items, meta, order, seq, then (index, others) per indexed field, then the
# namespace's collections and keys.
# ARGV: mode (insert | built | add | replace | remove), bound, how many items, the collection's
# path, its template, how many key suffixes, the suffixes (registered by the first insert:
# again after Redis lost its data); then per item its id, its bytes, and per index `s` + the escaped
# value, `o` (not a string) or `n` (missing or null).
# `built`: a batch of new items made by the server (`insert_built` says how).
# insert, built: the ids evicted, oldest first. add (an insert of items whose ids are not held):
# how many were added, then the ids evicted. replace, remove: how many items were there.
# Guarded (a mode `g` + mode, for a request decided on the fault rules it last read): one more
# key, the session's faults meta, and one more argument, the rules' version it was decided
# with; when the meta holds another version, nothing is written and the answer is `STALE`.
CHANGE = r"""
local mode, bound, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local last = #KEYS
if string.sub(mode, 1, 1) == 'g' then
  if (redis.call('HGET', KEYS[last], 'version') or '0') ~= ARGV[#ARGV] then return 'stale' end
  mode, last = string.sub(mode, 2), last - 1
end
local fields = (last - 6) / 2
local suffixes = tonumber(ARGV[6])
local first = 7 + suffixes
local step = 2 + fields

local function unindex(item, packed)
  local meta = cmsgpack.unpack(packed)
  local tag = string.format('%016x', meta[1])
  for i = 1, fields do
    local entry = meta[i + 1]
    if entry == 1 then
      redis.call('ZREM', KEYS[4 + 2 * i], item)
    elseif type(entry) == 'string' then
      -- the escaped value (a whole member, holding NUL, in a meta made before)
      if not string.find(entry, '\0', 1, true) then
        entry = entry .. '\0' .. tag .. '\0' .. item
      end
      redis.call('ZREM', KEYS[3 + 2 * i], entry)
    end
  end
  return meta[1]
end

local function index(item, seq, at)
  local meta = {seq}
  local tag = string.format('%016x', seq)
  for i = 1, fields do
    local given = ARGV[at + 1 + i]
    local kind = string.sub(given, 1, 1)
    if kind == 's' then
      local value = string.sub(given, 2)
      redis.call('ZADD', KEYS[3 + 2 * i], 0, value .. '\0' .. tag .. '\0' .. item)
      meta[i + 1] = value
    elseif kind == 'o' then
      redis.call('ZADD', KEYS[4 + 2 * i], seq, item)
      meta[i + 1] = 1
    else
      meta[i + 1] = 0
    end
  end
  redis.call('HSET', KEYS[2], item, cmsgpack.pack(meta))
end

local function evict(evicted)
  local excess = redis.call('ZCARD', KEYS[3]) - bound
  if excess > 0 then
    local gone = redis.call('ZPOPMIN', KEYS[3], excess)
    for j = 1, #gone, 2 do
      local item = gone[j]
      local packed = redis.call('HGET', KEYS[2], item)
      if packed then unindex(item, packed) end
      redis.call('HDEL', KEYS[1], item)
      redis.call('HDEL', KEYS[2], item)
      evicted[#evicted + 1] = item
    end
  end
end

-- a batch of new items (none held, no id twice): each key written once for the batch
local function insert_new()
  local ids, seen = {}, {}
  for n = 0, count - 1 do
    local id = ARGV[first + n * step]
    if seen[id] then return nil end
    seen[id] = true
    ids[#ids + 1] = id
  end
  for _, held in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do
    if held then return nil end
  end
  local base = redis.call('INCRBY', KEYS[4], count) - count
  if base == 0 then
    redis.call('HSET', KEYS[last - 1], ARGV[4], ARGV[5])
    redis.call('SADD', KEYS[last], 'collections', unpack(ARGV, 7, 6 + suffixes))
  end
  local items, order, metas, members, others = {}, {}, {}, {}, {}
  for i = 1, fields do members[i], others[i] = {}, {} end
  for n = 0, count - 1 do
    local at = first + n * step
    local id, seq = ARGV[at], base + n + 1
    items[2 * n + 1] = id
    items[2 * n + 2] = ARGV[at + 1]
    order[2 * n + 1] = seq
    order[2 * n + 2] = id
    local meta, tag = {seq}, string.format('%016x', seq)
    for i = 1, fields do
      local given = ARGV[at + 1 + i]
      local kind = string.sub(given, 1, 1)
      if kind == 's' then
        local value = string.sub(given, 2)
        local list = members[i]
        list[#list + 1] = 0
        list[#list + 1] = value .. '\0' .. tag .. '\0' .. id
        meta[i + 1] = value
      elseif kind == 'o' then
        local list = others[i]
        list[#list + 1] = seq
        list[#list + 1] = id
        meta[i + 1] = 1
      else
        meta[i + 1] = 0
      end
    end
    metas[2 * n + 1] = id
    metas[2 * n + 2] = cmsgpack.pack(meta)
  end
  redis.call('HSET', KEYS[1], unpack(items))
  redis.call('ZADD', KEYS[3], unpack(order))
  for i = 1, fields do
    if #members[i] > 0 then redis.call('ZADD', KEYS[3 + 2 * i], unpack(members[i])) end
    if #others[i] > 0 then redis.call('ZADD', KEYS[4 + 2 * i], unpack(others[i])) end
  end
  redis.call('HSET', KEYS[2], unpack(metas))
  local evicted = {}
  evict(evicted)
  return evicted
end

-- a batch of new items built by the server (`built`): numbers reserved, members and metas
-- made; ARGV from `first`: the ids, then (id, bytes) pairs, (number, id) pairs, per index
-- how many members then (0, member) pairs and how many others then (number, id) pairs, and
-- (id, meta) pairs. {-1} when an id is held: nothing written.
local function insert_built()
  local at = first
  local function block(size)
    local from = at
    at = at + size
    return from, at - 1
  end
  for _, held in ipairs(redis.call('HMGET', KEYS[2], unpack(ARGV, block(count)))) do
    if held then return {-1} end
  end
  if tonumber(ARGV[first + count + 2 * count]) == 1 then
    redis.call('HSET', KEYS[last - 1], ARGV[4], ARGV[5])
    redis.call('SADD', KEYS[last], 'collections', unpack(ARGV, 7, 6 + suffixes))
  end
  redis.call('HSET', KEYS[1], unpack(ARGV, block(2 * count)))
  redis.call('ZADD', KEYS[3], unpack(ARGV, block(2 * count)))
  for i = 1, fields do
    for k = 3, 4 do
      local size = tonumber(ARGV[at])
      at = at + 1
      if size > 0 then redis.call('ZADD', KEYS[k + 2 * i], unpack(ARGV, block(2 * size))) end
    end
  end
  redis.call('HSET', KEYS[2], unpack(ARGV, block(2 * count)))
  local evicted = {}
  evict(evicted)
  return evicted
end

if mode == 'built' then return insert_built() end

if mode == 'insert' and count > 1 then
  local done = insert_new()
  if done then return done end
end

local changed, evicted = 0, {}
for n = 0, count - 1 do
  local at = first + n * step
  local id, raw = ARGV[at], ARGV[at + 1]
  local held = redis.call('HGET', KEYS[2], id)
  if mode == 'remove' then
    if held then
      unindex(id, held)
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      redis.call('ZREM', KEYS[3], id)
      changed = changed + 1
    end
  elseif mode == 'replace' then
    if held then
      local seq = unindex(id, held)
      redis.call('HSET', KEYS[1], id, raw)
      index(id, seq, at)
      changed = changed + 1
    end
  elseif mode == 'add' and held then
    -- an id already held: nothing changes
  else
    changed = changed + 1
    if held then unindex(id, held) end
    local seq = redis.call('INCR', KEYS[4])
    if seq == 1 then
      redis.call('HSET', KEYS[last - 1], ARGV[4], ARGV[5])
      redis.call('SADD', KEYS[last], 'collections', unpack(ARGV, 7, 6 + suffixes))
    end
    redis.call('HSET', KEYS[1], id, raw)
    redis.call('ZADD', KEYS[3], seq, id)
    index(id, seq, at)
    evict(evicted)
  end
end
if mode == 'insert' then return evicted end
if mode == 'add' then
  table.insert(evicted, 1, changed)
  return evicted
end
return changed
"""
STALE = b"stale"  # CHANGE's answer to a guarded change whose rules' version moved

# KEYS: order, items. ARGV: the number after which to start (exclusive), how many.
# {last number, id, bytes, id, bytes...}, oldest first; {} past the end.
PAGE = r"""
local found = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE',
  'LIMIT', 0, tonumber(ARGV[2]), 'WITHSCORES')
if #found == 0 then return {} end
local ids = {}
for j = 1, #found, 2 do ids[#ids + 1] = found[j] end
local raws = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {found[#found]}
for j = 1, #ids do
  out[#out + 1] = ids[j]
  out[#out + 1] = raws[j]
end
return out
"""

# KEYS: order, items. ARGV: first and last rank. {how many in all, bytes...}, oldest first.
SLICE = r"""
local total = redis.call('ZCARD', KEYS[1])
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
if #ids == 0 then return {total} end
local raws = redis.call('HMGET', KEYS[2], unpack(ids))
table.insert(raws, 1, total)
return raws
"""

# KEYS: (index, others) per field a filter holds equal to some values.
# ARGV: per field, how many values, then the escaped values.
# The ids of the field whose values (and others) hold the fewest, in insertion order.
LOOKUP = r"""
local best, least = nil, nil
local at = 1
for i = 1, #KEYS / 2 do
  local count = tonumber(ARGV[at])
  local values = {}
  local size = redis.call('ZCARD', KEYS[2 * i])
  for j = 1, count do
    local value = ARGV[at + j]
    values[j] = value
    local low, high = '[' .. value .. '\0', '(' .. value .. '\1'
    size = size + redis.call('ZLEXCOUNT', KEYS[2 * i - 1], low, high)
  end
  at = at + count + 1
  if least == nil or size < least then best, least = {i, values}, size end
end
local field, values = best[1], best[2]
local found, lists = {}, 0
for _, value in ipairs(values) do
  local low, high = '[' .. value .. '\0', '(' .. value .. '\1'
  local members = redis.call('ZRANGEBYLEX', KEYS[2 * field - 1], low, high)
  if #members > 0 then lists = lists + 1 end
  for _, member in ipairs(members) do
    local tag = string.sub(member, #value + 2, #value + 17)
    found[#found + 1] = {tag, string.sub(member, #value + 19)}
  end
end
local others = redis.call('ZRANGE', KEYS[2 * field], 0, -1, 'WITHSCORES')
if #others > 0 then lists = lists + 1 end
for j = 1, #others, 2 do
  found[#found + 1] = {string.format('%016x', tonumber(others[j + 1])), others[j]}
end
if lists > 1 then
  table.sort(found, function(a, b) return a[1] < b[1] end)
end
local ids = {}
for j = 1, #found do ids[j] = found[j][2] end
return ids
"""

# KEYS: the source's keys set, the target's made marker, the target's keys set.
# ARGV: the source's root, the target's root, 1 to join a target already made.
# 1 when copied, 0 when joined. Every key of the source is copied inside Redis (COPY).
FORK = r"""
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for _, suffix in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', ARGV[2] .. ':' .. suffix)
end
redis.call('DEL', KEYS[3])
for _, suffix in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('COPY', ARGV[1] .. ':' .. suffix, ARGV[2] .. ':' .. suffix, 'REPLACE')
end
redis.call('COPY', KEYS[1], KEYS[3], 'REPLACE')
redis.call('SET', KEYS[2], '1')
return 1
"""

# KEYS: the namespace's keys set. ARGV: its root. Every collection emptied (the counters of
# insertions, the collections and the keys kept).
CLEAR = r"""
for _, suffix in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if string.sub(suffix, 1, 2) == 'c:' and string.sub(suffix, -4) ~= ':seq' then
    redis.call('DEL', ARGV[1] .. ':' .. suffix)
  end
end
return 1
"""
