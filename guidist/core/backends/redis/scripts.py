"""The Lua scripts of the Redis backend: every state change is one script, so it is atomic.

Key layout (``P`` is the namespace prefix, ``guidist:`` by default):

=====================  ====================================================================
``P:config``           hash: lease_timeout, max_attempts, default_task, keep_* (shared by all)
``P:started``          when this deployment's state was created
``P:seq:task``         last task id handed out (INCRBY n gives n consecutive ids)
``P:seq:worker``       worker id counter
``P:layout``           "4": the layout below (INIT refuses a namespace in another one)
``P:b:<first>``        hash, one per submitted batch (first = its first task id): what its
                       tasks share, f function, k pickled kwargs, j job id, to time limit,
                       c "1" if classic, s submitted, n tasks, live (tasks not yet dropped),
                       kl (tasks of it in failed, dead or cancelled), nx "1" once a task of it
                       has its own attempt count, A "1" while its arguments are packed; and
                       per task ``<field><id>``: a pickled args (unless packed), p the
                       tutorial's "n * n = " prefix (classic), n attempts (only where it
                       differs from 0 while queued or cancelled, 1 otherwise), rb the attempts
                       at its last retry, and its record R once finished, in the field
                       named by the bare id (no letter: nothing to build per result):
                       "<finished> <len(worker)> <worker>" followed by the result element as
                       its worker sent it (see parse_results); a task done in a call whose
                       results came packed has no record here (see P:rd). A task's state is
                       the set it is in (done: a record or a P:ri run, and no set); a and
                       the record go when it leaves its finished set, the batch when its
                       last task did
``P:ba:<first>``       a packed batch's pickled arguments end to end (SUBMIT mode 'b')
``P:bo:<first>``       their end offsets, uint32 little-endian; a packed batch left with only
                       long-kept tasks, under 1/8 of it, moves them into a fields (unpack_batch)
``P:bi``               zset first -> "first:count": the batches kept (finds a task's batch)
``P:bt``               hash id -> when a running task started, by the scripts' clock
``P:lanes``            set of function names whose queue may hold tasks
``P:q:<function>``     zset of segments "<a>:<b>" (the queued tasks a..b of one batch), score
                       a (a retried task: "<id>:<id>", the last id then + 0.5): the queued
                       tasks of one function, claimed lowest score first across all lanes
``P:qn``               hash function -> how many tasks its lane holds
``P:ls``               zset of every lease slice "<a>:<b>:<worker>", score a: the ids a..b the
                       worker holds (finds a task's holder); a leased task not running is
                       claimed
``P:nl``               how many tasks are leased (claimed or running)
``P:running``          set of the leased task ids their worker has started
``P:w:<worker>``       hash: name host pid kind mode conc joined seen cur done failed state stop
                       fns, nh (how many tasks it leases), nrun (how many of those are
                       running), gb ("1": asked to give
                       back what it has not started; told on its next call), cpu and
                       rss (its CPU % and resident bytes, from its heartbeats)
``P:workers``          zset of worker ids by join order (offline ones stay until forgotten)
``P:wdl``              zset worker id -> lease deadline; only live workers are in it
``P:wl:<worker>``      zset of the slices "<a>:<b>" (score a) a worker holds: its leases,
                       claimed or running, one member per run of ids claimed
``P:wr:<worker>``      set of the ids it runs now (also in P:running)
``P:lc:<worker>``      "token:a-b,c,..": the worker's last claim (runs of consecutive ids),
                       replayed when a call is retried after a lost reply so no lease is
                       orphaned
``P:tok:<token>``      reply of a retried submit/register (expires after 10 minutes)
``P:fin:done``         list, oldest first, of "<result seq>:<id>" for a done result stored
                       alone and "<fs>:<n>:<skip>|<run>|..." for a call's packed ones (see
                       parse_entry), capped at keep_done tasks (trim_done): a task with a
                       record or a P:ri run that is in no other set is done
``P:dn``               how many done tasks P:fin:done holds
``P:rd:<fs>``          one call's done results as its broker packed them (encode_packed),
                       behind "<finished> <len(worker)> <worker> "; fs..fs+n-1 their seqs
``P:ri``               zset, score = first id: "<id>:<len>:<fs>:<rank>:<j>" per run of ids
                       of a packed call (get_task finds a task's call here)
``P:fin:<state>``      zset id -> result seq, for failed/dead/cancelled, capped (keep_*);
                       a task leaving its set is dropped; results_since merges these sets
                       (and done_since's reading of P:fin:done)
``P:c``                hash of counters: submitted, requeued, ignored_late, done, failed,
                       dead, cancelled, result_seq, event_seq, and evicted (the highest result
                       seq whose record was dropped, so result waiters know what they missed)
``P:cur``              hash: the per-second bucket being filled (sec sub done fail req)
``P:series``           zset sec -> "sec,sub,done,fail,req,queued,running,workers,claimed"
                       (1 hour; the fields of protocol.SERIES_FIELDS)
``P:events``           zset seq -> JSON [seq, time, kind, message] (last 1000)
``P:paused``           exists while dispatch is paused
``P:classic``          list: the classic result queue ("s" + text or "p" + pickle)
``P:wake``             pub/sub channel: published when tasks become claimable
``P:reaplock``         rate limit of the reaping that claims do on the side
``P:seq:job``          job id counter
``P:job:<id>``         hash, one per job: name, fns (comma-separated), sub, started, last (a
                       task last finished), and the counts queued running done failed dead
                       cancelled, kept by the scripts as tasks move
``P:jr:<id>``          list of "first:count" runs of the job's task ids
``P:jobs``             zset of job ids (score = id); the oldest finished beyond keep_jobs go
``P:jobnames``         hash job name -> id
``P:fn:<name>``        the bytes of a task function sent by value (see core.remote)
``P:done``             pub/sub channel: published when tasks finished (result waiters)
``P:fstats``           hash of per-function statistics merged from workers' reports:
                       ``<function>|done``, ``|failed``, ``|sum``, ``|max`` and ``|b<i>`` (the
                       count of run-time bucket i of core.histogram)
``P:spans``            stream, one entry per worker report: w worker id, s JSON list of
                       task-stream spans (about the last 20000 reports)
=====================  ====================================================================

Every script receives ARGV[1] = prefix and ARGV[2] = the caller's clock ("" to use the Redis
server's TIME, so machines with skewed clocks agree on lease deadlines); its own arguments
follow from ARGV[3].
"""

from __future__ import annotations

PRELUDE = r"""
local P = ARGV[1]
local LAYOUT = '4'  -- the key layout below; INIT refuses another
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local NOW = string.format('%.6f', now)
local CFG = redis.call('HMGET', P .. 'config', 'lease_timeout', 'max_attempts', 'default_task',
  'keep_done', 'keep_failed', 'keep_cancelled', 'keep_jobs', 'max_payload')
local LEASE = tonumber(CFG[1]) or 30
local MAXATT = tonumber(CFG[2]) or 3
local DEFAULT = CFG[3] or 'square'
local KEEP = {done = tonumber(CFG[4]) or 20000, failed = tonumber(CFG[5]) or 50000,
  dead = tonumber(CFG[5]) or 50000, cancelled = tonumber(CFG[6]) or 10000}
local KEEP_JOBS = tonumber(CFG[7]) or 1000
-- bytes of arguments one claim may carry (at least one task): big tasks come a few at a time
local BUDGET = tonumber(CFG[8]) or 16777216

-- Job counters are summed per job here and written once by flush(), as the global ones.
local JOB = {}
local function jbump(jid, field, n)
  if not jid then return end
  local t = JOB[jid]
  if not t then t = {}; JOB[jid] = t end
  t[field] = (t[field] or 0) + n
end

-- Counters are summed here and written once by flush(), so a batch costs one HINCRBY each.
local CNT, BUCKET, TOUCHED = {}, {}, {}
local SEQ = nil
local function bump(field, n) CNT[field] = (CNT[field] or 0) + n end
local function bucket(field, n) BUCKET[field] = (BUCKET[field] or 0) + n end
local function next_seq()
  if not SEQ then SEQ = tonumber(redis.call('HGET', P .. 'c', 'result_seq')) or 0 end
  SEQ = SEQ + 1
  return SEQ
end

-- A lane (P:q:<function>) holds segments, member "<a>:<b>" for the queued tasks a..b of
-- one batch, score a (a retried task: the last id at its retry + 0.5), so a submit adds one
-- member whatever its size, and a claim reads and trims a few. P:qn counts each lane's tasks.
local function lane_add(fn, a, b, score)
  redis.call('ZADD', P .. 'q:' .. fn, score or a, a .. ':' .. b)
  redis.call('HINCRBY', P .. 'qn', fn, b - a + 1)
  redis.call('SADD', P .. 'lanes', fn)
end

local function seg(m)
  -- a, b of a lane member "<a>:<b>"
  local a, b = string.match(m, '^(%d+):(%d+)$')
  return tonumber(a), tonumber(b)
end

local function lane_find(fn, n)
  -- the member of lane fn holding task n, and its a and b; nil when n is not queued there.
  -- A segment's score is its first id, or higher for a retried one (a single task, so its
  -- member is "n:n"); no segment can lie between: a batch's ids come at once.
  local lane = P .. 'q:' .. fn
  local m = redis.call('ZREVRANGEBYSCORE', lane, n, '-inf', 'LIMIT', 0, 1)[1]
  if m then
    local a, b = seg(m)
    if a <= n and n <= b then return m, a, b end
  end
  local single = n .. ':' .. n
  if redis.call('ZSCORE', lane, single) then return single, n, n end
  return nil
end

local function lane_remove(fn, n)
  -- take queued task n out of lane fn, splitting its segment; false if it was not queued
  local m, a, b = lane_find(fn, n)
  if not m then return false end
  local lane = P .. 'q:' .. fn
  redis.call('ZREM', lane, m)
  if a < n then redis.call('ZADD', lane, a, a .. ':' .. (n - 1)) end
  if n < b then redis.call('ZADD', lane, n + 1, (n + 1) .. ':' .. b) end
  redis.call('HINCRBY', P .. 'qn', fn, -1)
  return true
end

local function lane_head(lane, left, bound)
  -- the first left queued ids of a lane (only those scored below bound) as numbers, and
  -- the segments they come from, {member, a, b}, in order
  local ids, segs, pos, n = {}, {}, 0, 0
  while n < left do
    local z
    if bound then
      z = redis.call('ZRANGEBYSCORE', lane, '-inf', '(' .. bound, 'WITHSCORES', 'LIMIT', pos, 64)
    else
      z = redis.call('ZRANGE', lane, pos, pos + 63, 'WITHSCORES')
    end
    if #z == 0 then break end
    local capped = false
    for j = 1, #z, 2 do
      if n >= left then break end
      local a, b = seg(z[j])
      segs[#segs + 1] = {z[j], a, b}
      local hi = b
      -- another lane's retried task sits in the middle: only the ids before it
      if bound and hi >= bound then hi = math.max(a, math.ceil(bound) - 1); capped = true end
      hi = math.min(hi, a + left - n - 1)
      for id = a, hi do n = n + 1; ids[n] = id end
      if capped then break end
    end
    if capped or #z < 128 then break end
    pos = pos + 64
  end
  return ids, segs
end

local function lane_drop_head(fn, segs, k)
  -- the first k ids of the segments lane_head read leave the lane
  local lane = P .. 'q:' .. fn
  local whole = {}
  local left = k
  for _, sg in ipairs(segs) do
    if left <= 0 then break end
    local size = sg[3] - sg[2] + 1
    whole[#whole + 1] = sg[1]
    if left < size then
      local a = sg[2] + left
      redis.call('ZADD', lane, a, a .. ':' .. sg[3])
    end
    left = left - size
  end
  for i = 1, #whole, 1000 do
    redis.call('ZREM', lane, unpack(whole, i, math.min(i + 999, #whole)))
  end
  if k > 0 then redis.call('HINCRBY', P .. 'qn', fn, -k) end
end

local function lane_gone(fn)
  -- an empty lane leaves the set of lanes (and its count)
  if redis.call('EXISTS', P .. 'q:' .. fn) == 0 then
    redis.call('SREM', P .. 'lanes', fn)
    redis.call('HDEL', P .. 'qn', fn)
    return true
  end
  return false
end

local function queued_count()
  local n = 0
  for _, v in ipairs(redis.call('HVALS', P .. 'qn')) do n = n + tonumber(v) end
  return n
end

local function n_leased()
  -- {claimed, running} over all workers
  local running = redis.call('SCARD', P .. 'running')
  return {(tonumber(redis.call('GET', P .. 'nl')) or 0) - running, running}
end

local function tick()
  -- close the per-second bucket(s) that ended before now
  local sec = math.floor(now)
  local cur = tonumber(redis.call('HGET', P .. 'cur', 'sec'))
  if not cur then
    redis.call('HSET', P .. 'cur', 'sec', sec, 'sub', 0, 'done', 0, 'fail', 0, 'req', 0)
    redis.call('SETNX', P .. 'started', NOW)
    return
  end
  if sec <= cur then return end
  local b = redis.call('HMGET', P .. 'cur', 'sub', 'done', 'fail', 'req')
  local nl = n_leased()
  local tail = ',' .. queued_count() .. ',' .. nl[2] .. ',' .. redis.call('ZCARD', P .. 'wdl') ..
    ',' .. nl[1]
  local series = P .. 'series'
  redis.call('ZADD', series, cur, cur .. ',' .. (b[1] or 0) .. ',' .. (b[2] or 0) .. ',' ..
    (b[3] or 0) .. ',' .. (b[4] or 0) .. tail)
  local s = math.max(cur + 1, sec - 3600)
  while s < sec do
    redis.call('ZADD', series, s, s .. ',0,0,0,0' .. tail)
    s = s + 1
  end
  redis.call('HSET', P .. 'cur', 'sec', sec, 'sub', 0, 'done', 0, 'fail', 0, 'req', 0)
  redis.call('ZREMRANGEBYRANK', series, 0, -3601)
end

local function event(kind, msg)
  local seq = redis.call('HINCRBY', P .. 'c', 'event_seq', 1)
  redis.call('ZADD', P .. 'events', seq, cjson.encode({seq, now, kind, msg}))
  redis.call('ZREMRANGEBYRANK', P .. 'events', 0, -1001)
end

-- Tasks live in the hash of the batch they were submitted in (P:b:<first id>): the fields a
-- batch shares once, each task's own as "<name><id>". A script groups the ids it touches by
-- batch, so it makes a constant number of Redis calls per batch, not per task.
local function bkey(first) return P .. 'b:' .. first end

local function sorted_nums(ids)
  -- the ids (strings or numbers) as numbers, in ascending order
  local nums, sorted, prev = {}, true, -1
  for i, id in ipairs(ids) do
    local n = tonumber(id)
    nums[i] = n
    if n < prev then sorted = false end
    prev = n
  end
  if not sorted then table.sort(nums) end  -- claims and results mostly come in id order
  return nums
end

local function locate(ids)
  -- id (a number) -> the first id of the batch holding it; missing for ids no batch holds.
  -- One lookup per batch touched: the ids are walked in order, each batch covering a run.
  local nums = sorted_nums(ids)
  local where, first, last = {}, nil, -1
  for _, n in ipairs(nums) do
    if n > last then
      first, last = nil, n
      local m = redis.call('ZREVRANGEBYSCORE', P .. 'bi', n, '-inf', 'LIMIT', 0, 1)[1]
      if m then
        local f, c = string.match(m, '^(%d+):(%d+)$')
        f, c = tonumber(f), tonumber(c)
        if f + c - 1 >= n then first, last = f, f + c - 1 end
      end
    end
    if first then where[n] = first end
  end
  return where
end

local META = {}
local function meta(first)
  -- what a batch's tasks share: function, kwargs blob, job, time limit, classic, submitted
  local m = META[first]
  if not m then
    local h = redis.call('HMGET', bkey(first), 'f', 'k', 'j', 'to', 'c', 's', 'n', 'nx', 'A')
    m = {f = h[1], k = h[2] or '', j = h[3], to = h[4] or '', c = h[5], s = h[6], n = h[7],
      nx = h[8], A = h[9]}
    META[first] = m
  end
  return m
end

local WR = {}  -- batch first id -> {field, value, ...} written by write_out()
-- batch first id -> change in kl: how many of its tasks sit in failed, dead or cancelled (kept
-- long); a packed batch left with only those is unpacked (unpack_batch)
local KL = {}
local function kl_bump(first, n) KL[first] = (KL[first] or 0) + n end
local function put(first, field, value)
  local l = WR[first]
  if not l then l = {}; WR[first] = l end
  l[#l + 1] = field
  l[#l + 1] = value
end

local function write_out()
  for first, l in pairs(WR) do
    for i = 1, #l, 4000 do redis.call('HSET', bkey(first), unpack(l, i, math.min(i + 3999, #l))) end
  end
  WR = {}
end

-- A batch submitted packed (A = "1") keeps its arguments in two strings instead of a field
-- per task: P:ba:<first> the pickles end to end, P:bo:<first> the end offset of each (uint32,
-- little-endian), so a claim reads a run of tasks with two GETRANGEs and hands it on whole.
local function ends_of(first, lo, hi)
  -- {from = lo, raw = the end offsets of tasks lo-1 (if any) .. hi (0-based)}
  local from = lo > 0 and (lo - 1) or 0
  return {from = from, raw = redis.call('GETRANGE', P .. 'bo:' .. first, 4 * from, 4 * hi + 3)}
end

local function end_at(e, i)
  -- the end offset of task i (0-based) from an ends_of() read; 0 before the first
  if i < 0 then return 0 end
  return (struct.unpack('<I', e.raw, 4 * (i - e.from) + 1))
end

local function packed_arg(first, id)
  -- one task's pickled arguments from a packed batch
  local i = tonumber(id) - first
  local e = ends_of(first, i, i)
  local a, b = end_at(e, i - 1), end_at(e, i)
  if b <= a then return '' end
  return redis.call('GETRANGE', P .. 'ba:' .. first, a, b - 1)
end

local function zmscore(key, ids)
  -- the scores of ids in key, false for those not in it (in chunks below the unpack limit)
  local out = {}
  for i = 1, #ids, 1000 do
    local r = redis.call('ZMSCORE', key, unpack(ids, i, math.min(i + 999, #ids)))
    for j = 1, #r do out[#out + 1] = r[j] end
  end
  return out
end

local function smis(key, ids)
  -- whether each of ids is in the set key (true/false, aligned with ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local r = redis.call('SMISMEMBER', key, unpack(ids, i, math.min(i + 999, #ids)))
    for j = 1, #r do out[#out + 1] = r[j] == 1 end
  end
  return out
end

local function sadd_ids(key, ids)
  for i = 1, #ids, 1000 do redis.call('SADD', key, unpack(ids, i, math.min(i + 999, #ids))) end
end

local function srem_ids(key, ids)
  for i = 1, #ids, 1000 do redis.call('SREM', key, unpack(ids, i, math.min(i + 999, #ids))) end
end

-- Leases are kept per claimed slice: P:wl:<worker> is a zset of "<a>:<b>" (score a) for the
-- ids a..b the worker holds, P:ls every worker's slices as "<a>:<b>:<worker>" (score a), to
-- find a task's holder; nh in P:w:<worker> and P:nl count the tasks held. Those running are
-- also in P:running and P:wr:<worker> (a few per worker): a leased task not running is
-- claimed. A claim adds a member or two, a batch of results removes them.
local function slice_of(key, n)
  -- the member of a zset of slices covering task n, and its a and b (nil when none does)
  local m = redis.call('ZREVRANGEBYSCORE', key, n, '-inf', 'LIMIT', 0, 1)[1]
  if not m then return nil end
  local a, b = string.match(m, '^(%d+):(%d+)')
  a, b = tonumber(a), tonumber(b)
  if n > b then return nil end
  return m, a, b
end

local function holder_of(id)
  -- the worker leasing task id (nil when none does)
  local m = slice_of(P .. 'ls', tonumber(id))
  if not m then return nil end
  return string.match(m, '^%d+:%d+:(.*)$')
end

local function holds(wid, ids)
  -- whether wid leases each of ids (booleans aligned with ids): a lookup per slice met
  local out, key = {}, P .. 'wl:' .. wid
  local a, b = nil, nil
  for k, id in ipairs(ids) do
    local n = tonumber(id)
    if not (a and n >= a and n <= b) then
      local m
      m, a, b = slice_of(key, n)
      if not m then a, b = nil, nil end
    end
    out[k] = a ~= nil
  end
  return out
end

local function runs_of(nums)
  -- {{a, b}, ...}: sorted distinct numbers as runs of consecutive ones
  local runs, cur = {}, nil
  for _, n in ipairs(nums) do
    if cur and n == cur[2] + 1 then cur[2] = n
    elseif not cur or n > cur[2] then cur = {n, n}; runs[#runs + 1] = cur end
  end
  return runs
end

local function held_count(wid, n)
  -- add n to the tasks wid holds (its nh) and to everyone's (P:nl)
  if n == 0 then return end
  redis.call('INCRBY', P .. 'nl', n)
  if redis.call('EXISTS', P .. 'w:' .. wid) == 1 then
    redis.call('HINCRBY', P .. 'w:' .. wid, 'nh', n)
  end
end

local function lease_add(wid, ids)
  -- wid now leases ids (none leased before), one slice per run of consecutive ids
  local wl, zw, zl = P .. 'wl:' .. wid, {}, {}
  for _, r in ipairs(runs_of(sorted_nums(ids))) do
    local m = r[1] .. ':' .. r[2]
    zw[#zw + 1] = r[1]; zw[#zw + 1] = m
    zl[#zl + 1] = r[1]; zl[#zl + 1] = m .. ':' .. wid
  end
  if #zw == 0 then return end
  for i = 1, #zw, 2000 do
    redis.call('ZADD', wl, unpack(zw, i, math.min(i + 1999, #zw)))
    redis.call('ZADD', P .. 'ls', unpack(zl, i, math.min(i + 1999, #zl)))
  end
  held_count(wid, #ids)
end

local function lease_drop_runs(wid, runs)
  -- wid's leases of the ids in runs ({a, b}, ids it holds) end: their slices shrink, split
  -- or go; returns how many leases ended
  table.sort(runs, function(x, y) return x[1] < y[1] end)
  local key = P .. 'wl:' .. wid
  local gone, zw, zl, dropped = {}, {}, {}, 0
  local cur = nil  -- the slice being cut: {a, b, from (its first id not cut yet)}
  local function keep(a, b)
    local m = a .. ':' .. b
    zw[#zw + 1] = a; zw[#zw + 1] = m
    zl[#zl + 1] = a; zl[#zl + 1] = m .. ':' .. wid
  end
  local function close()
    if cur and cur[3] <= cur[2] then keep(cur[3], cur[2]) end
    cur = nil
  end
  for _, r in ipairs(runs) do
    local a, b = r[1], r[2]
    while a <= b do
      if not (cur and a >= cur[1] and a <= cur[2]) then
        close()
        local m, sa, sb = slice_of(key, a)
        if m then cur = {sa, sb, sa}; gone[#gone + 1] = m end
      end
      if cur and a >= cur[1] and a <= cur[2] then
        local e = math.min(b, cur[2])
        if a > cur[3] then keep(cur[3], a - 1) end
        cur[3] = e + 1
        dropped = dropped + e - a + 1
        a = e + 1
      else
        a = a + 1  -- not its lease
      end
    end
  end
  close()
  if #gone == 0 then return 0 end
  local gl = {}
  for k, m in ipairs(gone) do gl[k] = m .. ':' .. wid end
  for k = 1, #gone, 1000 do
    redis.call('ZREM', key, unpack(gone, k, math.min(k + 999, #gone)))
    redis.call('ZREM', P .. 'ls', unpack(gl, k, math.min(k + 999, #gl)))
  end
  for k = 1, #zw, 2000 do
    redis.call('ZADD', key, unpack(zw, k, math.min(k + 1999, #zw)))
    redis.call('ZADD', P .. 'ls', unpack(zl, k, math.min(k + 1999, #zl)))
  end
  held_count(wid, -dropped)
  return dropped
end

local function lease_drop(wid, ids)
  -- wid's leases of ids (ids it holds) end
  if #ids == 0 then return 0 end
  return lease_drop_runs(wid, runs_of(sorted_nums(ids)))
end

local function held_ids(wid)
  -- every task id wid leases, ascending
  local ids = {}
  for _, m in ipairs(redis.call('ZRANGE', P .. 'wl:' .. wid, 0, -1)) do
    local a, b = string.match(m, '^(%d+):(%d+)$')
    for n = tonumber(a), tonumber(b) do ids[#ids + 1] = n end
  end
  return ids
end

local function lowest_held(wid)
  -- the lowest id wid leases ('' when none)
  local m = redis.call('ZRANGE', P .. 'wl:' .. wid, 0, 0)[1]
  if not m then return '' end
  return string.match(m, '^(%d+)')
end

local function unrun(wid, ids)
  -- ids (running, leased by wid) stop running: out of P:running, P:wr, P:bt and nrun
  if #ids == 0 then return end
  srem_ids(P .. 'running', ids)
  srem_ids(P .. 'wr:' .. wid, ids)
  for i = 1, #ids, 1000 do
    redis.call('HDEL', P .. 'bt', unpack(ids, i, math.min(i + 999, #ids)))
  end
  if redis.call('EXISTS', P .. 'w:' .. wid) == 1 then
    redis.call('HINCRBY', P .. 'w:' .. wid, 'nrun', -#ids)
  end
end

local function running_of(wid)
  -- set of the ids wid runs now (a few)
  local r = {}
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'wr:' .. wid)) do r[tonumber(id)] = true end
  return r
end

local function attempts_of(first, id, queued)
  -- n<id> is written only where it differs from the rule: 0 while queued or cancelled, else 1
  local n = tonumber(redis.call('HGET', bkey(first), 'n' .. id))
  if n then return n end
  if queued then return 0 end
  return 1
end

-- The fields of a task that are dropped with it (the few tasks that were requeued or are
-- classic keep their small n, rb and p until their batch goes).
local TASK_FIELDS = {'a', ''}  -- '': the record, field <id>

local function unpack_batch(first)
  -- a packed batch holds only tasks kept long (failed, dead, cancelled) and few of them: give
  -- each a field and free the strings, so kept tasks never pin many times their own arguments
  local m = meta(first)
  local n = tonumber(m.n) or 0
  local ids = {}
  for i = 0, n - 1 do ids[#ids + 1] = first + i end
  local keep = {}
  for _, state in ipairs({'failed', 'dead', 'cancelled'}) do
    local r = zmscore(P .. 'fin:' .. state, ids)
    for i = 1, #ids do if r[i] then keep[i] = true end end
  end
  local e = {from = 0, raw = redis.call('GET', P .. 'bo:' .. first) or ''}
  local blob = redis.call('GET', P .. 'ba:' .. first) or ''
  local fields = {}
  for i = 1, #ids do
    if keep[i] then
      fields[#fields + 1] = 'a' .. ids[i]
      fields[#fields + 1] = string.sub(blob, end_at(e, i - 2) + 1, end_at(e, i - 1))
      if #fields >= 4000 then redis.call('HSET', bkey(first), unpack(fields)); fields = {} end
    end
  end
  if #fields > 0 then redis.call('HSET', bkey(first), unpack(fields)) end
  redis.call('HDEL', bkey(first), 'A')
  redis.call('UNLINK', P .. 'ba:' .. first, P .. 'bo:' .. first)
  m.A = nil
end

local function by_batch(ids, where)
  -- ids grouped by the first id of their batch (ids in no batch are left out)
  local by = {}
  for _, id in ipairs(ids) do
    local first = where[tonumber(id)]
    if first then
      local l = by[first]
      if not l then l = {}; by[first] = l end
      l[#l + 1] = id
    end
  end
  return by
end

local function shrink_batch(first, k, state, fields)
  -- k of a batch's tasks left their finished set (state), leaving fields behind: the batch
  -- goes whole with its last task, and a packed one left with few long-kept tasks unpacks
  local key = bkey(first)
  local count = meta(first).n  -- read before the hash may go
  if state ~= 'done' then redis.call('HINCRBY', key, 'kl', -k) end
  local live = redis.call('HINCRBY', key, 'live', -k)
  if live <= 0 then
    redis.call('UNLINK', key, P .. 'ba:' .. first, P .. 'bo:' .. first)
    redis.call('ZREM', P .. 'bi', first .. ':' .. (count or ''))
    META[first] = nil
    return
  end
  for i = 1, #fields, 4000 do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + 3999, #fields)))
  end
  if meta(first).A and live * 8 < (tonumber(count) or 0) and
      tonumber(redis.call('HGET', key, 'kl') or 0) >= live then
    unpack_batch(first)
  end
end

local function drop_tasks(ids, state)
  -- forget tasks that left the finished sets; a batch whose last task went is deleted whole
  local by = by_batch(ids, locate(ids))
  for first, l in pairs(by) do
    local fields = l  -- a packed batch: only records to drop, fields named by the bare ids
    if not meta(first).A then
      fields = {}
      for _, id in ipairs(l) do
        for _, name in ipairs(TASK_FIELDS) do fields[#fields + 1] = name .. id end
      end
    end
    shrink_batch(first, #l, state, fields)
  end
end

local function drop_runs(runs)
  -- forget done tasks whose results were stored packed ({lowest id, highest id} runs): no
  -- record per task to delete, only a count per batch (and args in a batch not packed)
  local per, fields = {}, {}
  for _, r in ipairs(runs) do
    local a, b = r[1], r[2]
    while a <= b do
      local m = redis.call('ZREVRANGEBYSCORE', P .. 'bi', a, '-inf', 'LIMIT', 0, 1)[1]
      local f, c = nil, nil
      if m then f, c = string.match(m, '^(%d+):(%d+)$') end
      f, c = tonumber(f), tonumber(c)
      if not f or f + c - 1 < a then break end  -- no batch holds it (cannot happen)
      local e = math.min(b, f + c - 1)
      per[f] = (per[f] or 0) + e - a + 1
      if not meta(f).A then
        local l = fields[f]
        if not l then l = {}; fields[f] = l end
        for id = a, e do l[#l + 1] = 'a' .. id end
      end
      a = e + 1
    end
  end
  for f, k in pairs(per) do shrink_batch(f, k, 'done', fields[f] or {}) end
end

local FIN = {}  -- state -> {seq, id, seq, id, ...} added to the finished sets by flush()
-- {fs, entry, n} of the calls whose done results were stored packed, pushed by flush()
local PACKED = {}

local function parse_full(s)
  -- {id, ok, payload, extra, started, runtime, exception} of one result element (see below)
  local id, ok, len, st, rt, xlen, pos = string.match(s,
    '^(%d+):(%d):(%d+):([^,:]*),?([^:]*):(%d+):()')
  len, xlen = tonumber(len), tonumber(xlen)
  return {id, ok, string.sub(s, pos + len + xlen), string.sub(s, pos, pos + len - 1), st, rt,
    string.sub(s, pos + len, pos + len + xlen - 1)}
end

local function classic_answer(id, first, state, raw)
  -- a classic task's outcome, for the tutorial's master on the classic result queue
  if true then
    local entry
    local item = parse_full(raw)
    local extra = item[4]
    if state == 'done' then
      local cp = redis.call('HGET', bkey(first), 'p' .. id)
      if cp and extra ~= '' then entry = 's' .. cp .. extra else entry = 'p' .. item[3] end
    else
      entry = 's' .. 'task ' .. id .. ' ' .. state .. ': ' .. (extra or '')
    end
    redis.call('RPUSH', P .. 'classic', entry)
  end
end

local function finish(id, first, state, raw, wid, prefix)
  -- move one task into a finished state; classic tasks also answer on the classic queue.
  -- Its record (field <id>) is "<finished> <len(worker)> <worker>" .. raw, raw the result
  -- element as the worker sent it (parse_results), read by the broker: one field per task.
  -- (complete() does the same for a batch of results from their holder, counting once.)
  local m = meta(first)
  jbump(m.j, state, 1)
  put(first, id, (prefix or (NOW .. ' ' .. #wid .. ' ' .. wid)) .. raw)
  bump(state, 1)
  if state == 'done' then bucket('done', 1) elseif state ~= 'cancelled' then bucket('fail', 1) end
  local seq = next_seq()
  local l = FIN[state]
  if not l then l = {}; FIN[state] = l end
  l[#l + 1] = seq
  l[#l + 1] = id
  if state ~= 'done' then kl_bump(first, 1) end
  if m.c == '1' and state ~= 'cancelled' then classic_answer(id, first, state, raw) end
end

-- P:fin:done holds, oldest first, one entry per result stored alone, "<seq>:<id>" (its
-- record in its batch's hash), and one per call whose results came packed,
-- "<fs>:<n>:<skip>|<run>|<run>...": its n tasks have the seqs fs..fs+n-1 in the order they
-- were accepted, the first skip of them trimmed already, and each run
-- "<id>:<len>:<fs>:<rank>:<j>" says that tasks id..id+len-1 are results rank.. of the call's
-- packed blob (P:rd:<fs>) and its accepted results j.. (the run is also P:ri's member, so
-- get_task finds a task's call by id). P:dn counts the tasks the list holds.
local function parse_entry(e)
  local bar = string.find(e, '|', 1, true)
  if not bar then
    local seq, id = string.match(e, '^(%d+):(%d+)$')
    return {fs = tonumber(seq), n = 1, skip = 0, id = tonumber(id)}
  end
  local fs, n, skip = string.match(string.sub(e, 1, bar - 1), '^(%d+):(%d+):(%d+)$')
  local runs = {}
  for m in string.gmatch(string.sub(e, bar + 1), '[^|]+') do
    local id, len, _, rank, j = string.match(m, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
    runs[#runs + 1] = {id = tonumber(id), len = tonumber(len), rank = tonumber(rank),
      j = tonumber(j), m = m}
  end
  return {fs = tonumber(fs), n = tonumber(n), skip = tonumber(skip), runs = runs, e = e}
end

local function entry_last(e)
  -- the newest result seq in an entry
  local fs, n = string.match(e, '^(%d+):(%d+):')
  if fs and string.find(e, '|', 1, true) then return tonumber(fs) + tonumber(n) - 1 end
  return tonumber(string.match(e, '^(%d+)'))
end

local function entry_rows(en, lo, hi, out)
  -- append {seq, id, fs, rank} of an entry's accepted results lo..hi (0-based; fs and rank 0
  -- for a result stored alone), in seq order
  if not en.runs then
    if lo <= 0 and hi >= 0 then
      local k = #out
      out[k + 1], out[k + 2], out[k + 3], out[k + 4] = en.fs, en.id, 0, 0
    end
    return
  end
  local fs = en.fs
  for _, r in ipairs(en.runs) do
    local a, b = math.max(lo, r.j), math.min(hi, r.j + r.len - 1)
    local k = #out
    for j = a, b do
      local d = j - r.j
      out[k + 1], out[k + 2], out[k + 3], out[k + 4] = fs + j, r.id + d, fs, r.rank + d
      k = k + 4
    end
  end
end

local function note_evicted(seq)
  -- result waiters learn that records up to seq are gone
  local evicted = tonumber(redis.call('HGET', P .. 'c', 'evicted')) or 0
  if seq and seq > evicted then redis.call('HSET', P .. 'c', 'evicted', seq) end
end

local function trim_done()
  -- cap P:fin:done at keep_done tasks, oldest first; a packed call goes whole (its blob and
  -- P:ri members with it) or, at the edge, keeps its newest and counts the rest as skipped
  local fin = P .. 'fin:done'
  local over = (tonumber(redis.call('GET', P .. 'dn')) or 0) - KEEP.done
  if over <= 0 then return end
  redis.call('DECRBY', P .. 'dn', over)
  local singles, runs, gone, last = {}, {}, 0, nil
  local pos = 0
  while over > 0 do
    local es = redis.call('LRANGE', fin, pos, pos + 63)
    if #es == 0 then break end
    for _, e in ipairs(es) do
      if over <= 0 then break end
      local en = parse_entry(e)
      local held = en.n - en.skip
      local upto = en.n - 1  -- the last accepted result dropped
      if held > over then upto = en.skip + over - 1 end
      if not en.runs then
        singles[#singles + 1] = en.id
      else
        for _, r in ipairs(en.runs) do
          local a, b = math.max(en.skip, r.j), math.min(upto, r.j + r.len - 1)
          if a <= b then runs[#runs + 1] = {r.id + a - r.j, r.id + b - r.j} end
        end
      end
      last = en.fs + upto
      if held > over then
        redis.call('LSET', fin, gone, en.fs .. ':' .. en.n .. ':' .. (upto + 1) ..
          string.sub(e, (string.find(e, '|', 1, true))))
        over = 0
      else
        if en.runs then
          local ms = {}
          for k, r in ipairs(en.runs) do ms[k] = r.m end
          redis.call('ZREM', P .. 'ri', unpack(ms))
          redis.call('UNLINK', P .. 'rd:' .. en.fs)
        end
        gone = gone + 1
        over = over - held
      end
    end
    pos = pos + #es
  end
  if gone > 0 then redis.call('LTRIM', fin, gone, -1) end
  note_evicted(last)
  if #singles > 0 then drop_tasks(singles, 'done') end
  if #runs > 0 then drop_runs(runs) end
end

local function oldest_done()
  -- the seq of the oldest done result kept (nil when none is)
  local head = redis.call('LINDEX', P .. 'fin:done', 0)
  if not head then return nil end
  local en = parse_entry(head)
  return en.fs + en.skip
end

local function packed_ref(n, oldest)
  -- fs, rank of the packed call holding done task n (nil when none does)
  if not oldest then return nil end
  local m = redis.call('ZREVRANGEBYSCORE', P .. 'ri', n, '-inf', 'LIMIT', 0, 1)[1]
  if not m then return nil end
  local id, len, fs, rank, j = string.match(m, '^(%d+):(%d+):(%d+):(%d+):(%d+)$')
  local d = n - tonumber(id)
  if d >= tonumber(len) or tonumber(fs) + tonumber(j) + d < oldest then return nil end
  return tonumber(fs), tonumber(rank) + d
end

local function done_since(cursor, limit)
  -- {seq, id, fs, rank, ...} of the done results after cursor, oldest first, at most limit:
  -- the list is in seq order, so a binary search of LINDEX finds where they start
  local fin = P .. 'fin:done'
  local out = {}
  local tail = redis.call('LINDEX', fin, -1)
  if limit <= 0 or not tail or entry_last(tail) <= cursor then return out end
  local lo, hi = 0, redis.call('LLEN', fin) - 1  -- the first entry after cursor is in lo..hi
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if entry_last(redis.call('LINDEX', fin, mid)) > cursor then hi = mid else lo = mid + 1 end
  end
  while #out < 4 * limit do
    local es = redis.call('LRANGE', fin, lo, lo + 31)
    if #es == 0 then break end
    for _, e in ipairs(es) do
      local en = parse_entry(e)
      local want = limit - #out / 4
      if want <= 0 then break end
      local from = math.max(en.skip, cursor - en.fs + 1)
      entry_rows(en, from, math.min(en.n - 1, from + want - 1), out)
    end
    lo = lo + #es
  end
  return out
end

local function finished_after(state, cursor, limit)
  -- {seq, id, fs, rank, ...} of one finished state's results after cursor, oldest first, at
  -- most limit (fs and rank: where a done result stored packed is, else 0)
  if state == 'done' then return done_since(cursor, limit) end
  local z = redis.call('ZRANGEBYSCORE', P .. 'fin:' .. state, '(' .. cursor, '+inf',
    'WITHSCORES', 'LIMIT', 0, limit)
  local out = {}
  for j = 1, #z, 2 do
    local k = #out
    out[k + 1], out[k + 2], out[k + 3], out[k + 4] = z[j + 1], z[j], 0, 0
  end
  return out
end

local function zadd_pairs(key, pairs_)
  local n = #pairs_
  for i = 1, n, 2000 do
    redis.call('ZADD', key, unpack(pairs_, i, math.min(i + 1999, n)))
  end
end

local function push_done(l)
  -- append the done results of this call to P:fin:done in seq order: {seq, id, ...} stored
  -- alone and the packed calls' entries (PACKED), then cap the list (trim_done)
  local entries, n = {}, #l / 2
  for i = 1, #l, 2 do entries[#entries + 1] = {l[i], l[i] .. ':' .. l[i + 1]} end
  for _, p in ipairs(PACKED) do
    entries[#entries + 1] = {p[1], p[2]}
    n = n + p[3]
  end
  if #l > 0 and #PACKED > 0 then table.sort(entries, function(x, y) return x[1] < y[1] end) end
  local fin = P .. 'fin:done'
  local strs = {}
  for i, e in ipairs(entries) do strs[i] = e[2] end
  for i = 1, #strs, 1000 do
    redis.call('RPUSH', fin, unpack(strs, i, math.min(i + 999, #strs)))
  end
  redis.call('INCRBY', P .. 'dn', n)
  PACKED = {}
  trim_done()
end

local function flush()
  -- write the summed counters and the finished sets, then cap them: a task is dropped when
  -- it leaves its finished set (results_since reads these sets, scored by result sequence)
  write_out()
  if SEQ then redis.call('HSET', P .. 'c', 'result_seq', SEQ) end
  for f, n in pairs(CNT) do if n ~= 0 then redis.call('HINCRBY', P .. 'c', f, n) end end
  for f, n in pairs(BUCKET) do if n ~= 0 then redis.call('HINCRBY', P .. 'cur', f, n) end end
  CNT, BUCKET = {}, {}
  for jid, t in pairs(JOB) do
    local jkey = P .. 'job:' .. jid
    if redis.call('EXISTS', jkey) == 1 then
      for f, n in pairs(t) do if n ~= 0 then redis.call('HINCRBY', jkey, f, n) end end
      if (t.claimed or 0) > 0 then redis.call('HSETNX', jkey, 'started', NOW) end
      if (t.done or 0) + (t.failed or 0) + (t.dead or 0) + (t.cancelled or 0) > 0 then
        redis.call('HSET', jkey, 'last', NOW)
      end
    end
  end
  JOB = {}
  for first, n in pairs(KL) do
    if n ~= 0 then redis.call('HINCRBY', bkey(first), 'kl', n) end
  end
  KL = {}
  if next(FIN) or #PACKED > 0 then redis.call('PUBLISH', P .. 'done', '1') end
  if FIN['done'] or #PACKED > 0 then push_done(FIN['done'] or {}); FIN['done'] = nil end
  for state, l in pairs(FIN) do
    local fin = P .. 'fin:' .. state
    zadd_pairs(fin, l)
    local over = redis.call('ZCARD', fin) - KEEP[state]
    if over > 0 then
      local old = redis.call('ZRANGE', fin, 0, over - 1)
      local last = redis.call('ZRANGE', fin, over - 1, over - 1, 'WITHSCORES')
      note_evicted(tonumber(last[2]))
      redis.call('ZREMRANGEBYRANK', fin, 0, over - 1)
      drop_tasks(old, state)
    end
  end
  FIN = {}
end

local function split_ids(csv)
  local ids = {}
  for id in string.gmatch(csv or '', '[^,]+') do ids[#ids + 1] = id end
  return ids
end

local function start_ids(wid, ids)
  -- mark wid's claimed tasks among ids as running, from now
  if #ids == 0 then return 0 end
  local mine = holds(wid, ids)
  local run = running_of(wid)
  local moved = {}
  for i, id in ipairs(ids) do
    if mine[i] and not run[tonumber(id)] then moved[#moved + 1] = id end
  end
  if #moved > 0 then
    local where = locate(moved)
    local bt = {}
    for _, id in ipairs(moved) do
      local first = where[tonumber(id)]
      if first then
        bt[#bt + 1] = id
        bt[#bt + 1] = NOW
        local j = meta(first).j
        jbump(j, 'claimed', -1)
        jbump(j, 'running', 1)
      end
    end
    -- when each started, by this clock, until it finishes (P:bt; the worker measures its own)
    for i = 1, #bt, 2000 do
      redis.call('HSET', P .. 'bt', unpack(bt, i, math.min(i + 1999, #bt)))
    end
    sadd_ids(P .. 'running', moved)
    sadd_ids(P .. 'wr:' .. wid, moved)
    redis.call('HINCRBY', P .. 'w:' .. wid, 'nrun', #moved)
  end
  return #moved
end

local function n_claimed(wid)
  -- leases a worker holds and has not started
  local h = redis.call('HMGET', P .. 'w:' .. wid, 'nh', 'nrun')
  return (tonumber(h[1]) or 0) - (tonumber(h[2]) or 0)
end

local function give_back_due(wid)
  -- whether to tell wid now that others wait for the tasks it has not started
  local wkey = P .. 'w:' .. wid
  if redis.call('HGET', wkey, 'gb') ~= '1' then return false end
  redis.call('HDEL', wkey, 'gb')
  return n_claimed(wid) > 0
end

local function allowed_functions(wid)
  -- nil: every function; else the set of the only functions the worker claims
  local fns = redis.call('HGET', P .. 'w:' .. wid, 'fns')
  if not fns or fns == '' then return nil end
  local allowed = {}
  for f in string.gmatch(fns, '[^,]+') do allowed[f] = true end
  return allowed
end

local function ask_for_give_back(idle)
  -- an idle worker waits: ask the live worker holding most unstarted tasks (that idle may
  -- run) to give them back; it hears it on its next call and releases them
  local allowed = allowed_functions(idle)
  local best, most = nil, 0
  for _, wid in ipairs(redis.call('ZRANGE', P .. 'wdl', 0, -1)) do
    if wid ~= idle then
      local h = redis.call('HMGET', P .. 'w:' .. wid, 'kind', 'state', 'stop')
      local n = n_claimed(wid)
      if n > most and h[1] == 'guidist' and h[2] ~= 'offline' and h[3] ~= '1' then
        local fits = allowed == nil
        if not fits then
          local held = held_ids(wid)
          local run = running_of(wid)
          local where = locate(held)
          for _, n in ipairs(held) do
            local first = where[n]
            if not run[n] and first and allowed[meta(first).f] then fits = true; break end
          end
        end
        if fits then best, most = wid, n end
      end
    end
  end
  if best then redis.call('HSET', P .. 'w:' .. best, 'gb', '1') end
end

local function requeue(id, first, attempts, score)
  -- an expired or released lease keeps its id as score (near the front, as it is old); a
  -- retried task goes behind everything submitted so far, as in the in-memory broker
  local m = meta(first)
  local key = bkey(first)
  jbump(m.j, 'queued', 1)
  redis.call('HDEL', P .. 'bt', id)
  if attempts > 0 then
    -- nx: some task of this batch has its own attempt count, so claims read them
    redis.call('HSET', key, 'n' .. id, attempts, 'nx', '1')
    m.nx = '1'
  else
    redis.call('HDEL', key, 'n' .. id)
  end
  lane_add(m.f, tonumber(id), tonumber(id), score)
end

local function parse_results(base, stop)
  -- one ARGV element per result: "<id>:<ok>:<len>:<started>,<runtime>:<xlen>:" .. extra (len
  -- bytes) .. exception (xlen bytes) .. payload, where payload is the pickled value (ok) or
  -- the error text, extra the value's int text (ok, for the tutorial's string) or the error's
  -- last line (failed), exception what the task raised as the worker pickled it (or empty),
  -- and the two times (empty when the worker did not measure) when it began and how long it
  -- ran. Only the id and ok are read here: the element is stored as it is (finish).
  local items, i = {}, base
  local match = string.match
  while ARGV[i] and (not stop or i <= stop) do
    local s = ARGV[i]
    local id, ok = match(s, '^(%d+):(%d)')
    items[#items + 1] = {id, ok, s}
    i = i + 1
  end
  return items
end

local function complete(wid, items)
  local wkey = P .. 'w:' .. wid
  local wexists = redis.call('EXISTS', wkey) == 1
  local accepted, ignored, done_n, failed_n = 0, 0, 0, 0
  local by_holder, run_by = {}, {}  -- holder -> the ids it leased / ran among these
  local ids = {}
  for i, item in ipairs(items) do ids[i] = item[1] end
  -- the usual case, answered for the whole batch at once: the sender holds these leases
  local mine = holds(wid, ids)
  local run = smis(P .. 'running', ids)
  local where = locate(ids)
  local prefix = NOW .. ' ' .. #wid .. ' ' .. wid
  -- the usual case, results from the worker holding them, counted per batch and written
  -- in one go; anything else takes the general path below, one task at a time
  local fast = {}  -- first -> {running, claimed, done, failed}
  local cur_first, cur_n, cur_wr = nil, nil, nil
  local seq = nil
  -- Per outcome (1 done, 2 failed): FIN's list, made when first needed, its length, and the
  -- count of results the fast path took.
  local OUTCOME = {'done', 'failed'}
  local fin, fin_n, fast_of = {}, {}, {0, 0}
  local mine_ids, n_mine = {}, 0
  for i, item in ipairs(items) do
    local id = item[1]
    local first = where[tonumber(id)]
    local accept = false
    if first and mine[i] then
      if first ~= cur_first then
        cur_first = first
        cur_n = fast[first]
        if not cur_n then cur_n = {0, 0, 0, 0}; fast[first] = cur_n end
        cur_wr = WR[first]
        if not cur_wr then cur_wr = {}; WR[first] = cur_wr end
      end
      if run[i] then
        local l = run_by[wid]
        if not l then l = {}; run_by[wid] = l end
        l[#l + 1] = id
        cur_n[1] = cur_n[1] + 1
      else
        cur_n[2] = cur_n[2] + 1  -- it ran and finished before its worker said it started
      end
      n_mine = n_mine + 1
      mine_ids[n_mine] = id
      local w = #cur_wr
      cur_wr[w + 1] = id  -- a record's field is its bare id
      cur_wr[w + 2] = prefix .. item[3]
      if not seq then seq = next_seq() else seq = seq + 1 end
      local k = (item[2] == '1') and 1 or 2
      cur_n[k + 2] = cur_n[k + 2] + 1
      local l = fin[k]
      if not l then
        l = FIN[OUTCOME[k]] or {}
        FIN[OUTCOME[k]] = l
        fin[k], fin_n[k] = l, #l
      end
      local n = fin_n[k]
      l[n + 1] = seq
      l[n + 2] = id
      fin_n[k] = n + 2
      fast_of[k] = fast_of[k] + 1
      accepted = accepted + 1
      accept = true
      if meta(first).c == '1' then
        classic_answer(id, first, item[2] == '1' and 'done' or 'failed', item[3])
      end
    elseif first then
      if seq then SEQ = seq; seq = nil end  -- finish() below counts on from here
      local m = meta(first)
      local st, holder = nil, nil
      if mine[i] then
        holder = wid
        st = run[i] and 'running' or 'claimed'
      else
        -- another worker holds it, or nobody does (its lease expired, or it finished)
        holder = holder_of(id)
        if holder then st = run[i] and 'running' or 'claimed' end
      end
      if st then
        jbump(m.j, st, -1)
        if st == 'running' then
          local l = run_by[holder]
          if not l then l = {}; run_by[holder] = l end
          l[#l + 1] = id
        end
        if holder then
          local l = by_holder[holder]
          if not l then l = {}; by_holder[holder] = l end
          l[#l + 1] = id
        end
        accept = true
      elseif lane_remove(m.f, tonumber(id)) then
        -- its lease expired and it waits again: the first result wins
        jbump(m.j, 'queued', -1)
        accept = true
      end
      if accept then
        -- the worker that delivered the result is recorded, as in memory, and so is its own
        -- measurement of when the task began and how long it ran (in the element)
        if item[2] == '1' then
          finish(id, first, 'done', item[3], wid, prefix)
          done_n = done_n + 1
        else
          finish(id, first, 'failed', item[3], wid, prefix)
          failed_n = failed_n + 1
        end
        accepted = accepted + 1
        -- finish() appended to FIN's lists: the fast path goes on after what it added
        fin = {}
      end
    end
    if not accept then ignored = ignored + 1 end
  end
  if seq then SEQ = seq end
  if n_mine > 0 then
    local l = by_holder[wid]
    if not l then l = {}; by_holder[wid] = l end
    for k = 1, n_mine do l[#l + 1] = mine_ids[k] end
    for first, c in pairs(fast) do
      if c[4] > 0 then kl_bump(first, c[4]) end
      local j = meta(first).j
      jbump(j, 'running', -c[1])
      jbump(j, 'claimed', -c[2])
      jbump(j, 'done', c[3])
      jbump(j, 'failed', c[4])
    end
    bump('done', fast_of[1])
    bump('failed', fast_of[2])
    bucket('done', fast_of[1])
    bucket('fail', fast_of[2])
  end
  done_n, failed_n = done_n + fast_of[1], failed_n + fast_of[2]
  write_out()
  for holder, l in pairs(run_by) do unrun(holder, l) end
  for holder, l in pairs(by_holder) do lease_drop(holder, l) end
  if wexists then
    if done_n > 0 then redis.call('HINCRBY', wkey, 'done', done_n) end
    if failed_n > 0 then redis.call('HINCRBY', wkey, 'failed', failed_n) end
  end
  bump('ignored_late', ignored)
  return accepted
end

local function packed_element(blob, k, extras, id)
  -- result k (0-based) of a packed blob as the element parse_results reads, for the few
  -- results that take complete()'s general path
  local base = string.find(blob, ' ', 1, true)
  local n = tonumber(string.sub(blob, 1, base - 1))
  local lo = k > 0 and struct.unpack('<I', blob, base + 1 + 4 * (k - 1)) or 0
  local hi = struct.unpack('<I', blob, base + 1 + 4 * k)
  local st = struct.unpack('<d', blob, base + 1 + 4 * n + 8 * k)
  local rt = struct.unpack('<d', blob, base + 1 + 12 * n + 8 * k)
  local timing = ''
  if st == st then timing = string.format('%.17g,%.17g', st, rt) end  -- NaN: not measured
  local extra = extras[k + 1] or ''
  local body = string.sub(blob, base + 1 + 20 * n + lo, base + 20 * n + hi)
  return {id, '1', id .. ':1:' .. #extra .. ':' .. timing .. ':0:' .. extra .. body}
end

local function complete_packed(wid, base)
  -- ARGV[base]: ok results packed by the broker ("<n> " .. their end offsets (uint32) ..
  -- start times .. run times (doubles, NaN when not measured) .. the pickled values),
  -- ARGV[base + 1] their int texts joined by ',' (the tutorial's string), ARGV[base + 2]
  -- their ids joined by ','.
  -- Those from the worker holding them are stored as they came: one SET of the blob, one
  -- P:fin:done entry and a P:ri member per run of ids, nothing per task but the lease sets.
  local blob = ARGV[base]
  if not blob then return 0 end
  local ids = {}
  for id in string.gmatch(ARGV[base + 2] or '', '[^,]+') do ids[#ids + 1] = id end
  local nids = #ids
  if nids == 0 then return 0 end
  local mine = holds(wid, ids)
  local run = running_of(wid)
  local where = locate(ids)
  local running, taken, rest = {}, {}, {}
  local nr, nt = 0, 0
  local per, runs, cur = {}, {}, nil  -- per batch {running, claimed}; runs of ids taken
  local cur_first, cur_c = nil, nil
  for k = 1, nids do
    local id = ids[k]
    local n = tonumber(id)
    local first = where[n]
    if first and mine[k] then
      if first ~= cur_first then
        cur_first = first
        -- a classic task also answers on the classic queue: the general path does that
        cur_c = nil
        if meta(first).c ~= '1' then
          cur_c = per[first]
          if not cur_c then cur_c = {0, 0}; per[first] = cur_c end
        end
      end
    else
      cur_first, cur_c = nil, nil
    end
    if cur_c then
      if run[n] then nr = nr + 1; running[nr] = id; cur_c[1] = cur_c[1] + 1
      else cur_c[2] = cur_c[2] + 1 end
      nt = nt + 1
      taken[nt] = id
      if cur and n == cur.id + cur.len and k - 1 == cur.rank + cur.len then
        cur.len = cur.len + 1
      else
        cur = {id = n, len = 1, rank = k - 1, j = nt - 1}
        runs[#runs + 1] = cur
      end
    else
      rest[#rest + 1] = k
    end
  end
  local accepted = 0
  if nt > 0 then
    if not SEQ then SEQ = tonumber(redis.call('HGET', P .. 'c', 'result_seq')) or 0 end
    local fs = SEQ + 1
    SEQ = SEQ + nt
    redis.call('SET', P .. 'rd:' .. fs, NOW .. ' ' .. #wid .. ' ' .. wid .. ' ' .. blob)
    local ms, zargs = {}, {}
    for r, c in ipairs(runs) do
      ms[r] = c.id .. ':' .. c.len .. ':' .. fs .. ':' .. c.rank .. ':' .. c.j
      zargs[#zargs + 1] = c.id
      zargs[#zargs + 1] = ms[r]
    end
    zadd_pairs(P .. 'ri', zargs)
    PACKED[#PACKED + 1] = {fs, fs .. ':' .. nt .. ':0|' .. table.concat(ms, '|'), nt}
    for first, c in pairs(per) do
      local j = meta(first).j
      jbump(j, 'running', -c[1])
      jbump(j, 'claimed', -c[2])
      jbump(j, 'done', c[1] + c[2])
    end
    bump('done', nt)
    bucket('done', nt)
    unrun(wid, running)
    -- the ids taken, as runs: the slices they were leased in go whole, as a rule
    local l_runs = {}
    for _, c in ipairs(runs) do l_runs[#l_runs + 1] = {c.id, c.id + c.len - 1} end
    lease_drop_runs(wid, l_runs)
    redis.call('HINCRBY', P .. 'w:' .. wid, 'done', nt)
    accepted = nt
  end
  if #rest > 0 then
    -- the others (another worker's lease, a classic task, a late result) one by one
    local extras = {}
    for x in string.gmatch(ARGV[base + 1] .. ',', '([^,]*),') do extras[#extras + 1] = x end
    local items = {}
    for _, k in ipairs(rest) do items[#items + 1] = packed_element(blob, k - 1, extras, ids[k]) end
    accepted = accepted + complete(wid, items)
  end
  return accepted
end

local function complete_all(wid, base)
  -- ARGV[base]: how many result elements follow one by one (failures, see parse_results),
  -- then those, then the packed ok results (complete_packed)
  local nf = tonumber(ARGV[base]) or 0
  local accepted = 0
  if nf > 0 then accepted = complete(wid, parse_results(base + 1, base + nf)) end
  return accepted + complete_packed(wid, base + 1 + nf)
end

-- a packed call's blob bigger than this goes back with only the records asked for
local WHOLE_CALL = 262144

local function call_blobs(list, wanted)
  -- {fs, blob, ranks, ...} for the packed calls in list: the blob stored (ranks {}), or for
  -- a big one the same layout holding only the records wanted[fs] (ranks: which they are)
  local out = {}
  for _, fs in ipairs(list) do
    local key = P .. 'rd:' .. fs
    local blob, ranks = '', {}
    if redis.call('STRLEN', key) <= WHOLE_CALL then
      blob = redis.call('GET', key) or ''
    else
      -- the header "<finished> <len(worker)> <worker> <n> ", then ends, times, bodies
      local head = redis.call('GETRANGE', key, 0, 511)
      local when, wlen = string.match(head, '^(%S+) (%d+) ')
      local wstart = #when + #wlen + 3
      if wstart + tonumber(wlen) + 24 > #head then
        head = redis.call('GETRANGE', key, 0, wstart + tonumber(wlen) + 63)
      end
      local nstart = wstart + tonumber(wlen) + 1
      local count = string.match(head, '^(%d+) ', nstart)
      local base = nstart + #count  -- 0-based offset of the ends
      local n = tonumber(count)
      local ends, starts, runs, bodies, total = {}, {}, {}, {}, 0
      for k, r in ipairs(wanted[fs]) do
        local lo = 0
        local e = base + 4 * r  -- where record r's end offset is
        if r > 0 then lo = struct.unpack('<I', redis.call('GETRANGE', key, e - 4, e - 1)) end
        local hi = struct.unpack('<I', redis.call('GETRANGE', key, e, e + 3))
        starts[k] = redis.call('GETRANGE', key, base + 4 * n + 8 * r, base + 4 * n + 8 * r + 7)
        runs[k] = redis.call('GETRANGE', key, base + 12 * n + 8 * r, base + 12 * n + 8 * r + 7)
        local body = ''
        if hi > lo then
          body = redis.call('GETRANGE', key, base + 20 * n + lo, base + 20 * n + hi - 1)
        end
        bodies[k] = body
        total = total + #body
        ends[k] = struct.pack('<I', total)
        ranks[k] = r
      end
      blob = string.sub(head, 1, nstart - 1) .. #ranks .. ' ' .. table.concat(ends) ..
        table.concat(starts) .. table.concat(runs) .. table.concat(bodies)
    end
    out[#out + 1] = fs
    out[#out + 1] = blob
    out[#out + 1] = ranks
  end
  return out
end

local function want_rank(calls, list, fs, rank)
  -- note that record rank of packed call fs is asked for (calls: fs -> ranks; list: the fs)
  local l = calls[fs]
  if not l then l = {}; calls[fs] = l; list[#list + 1] = fs end
  l[#l + 1] = rank
end

local function read_tasks(ids, where, names)
  -- the fields names (per task) of ids, {id -> {value, ...}}: one HMGET per batch
  local out, by = {}, by_batch(ids, where)
  local k = #names
  for first, l in pairs(by) do
    local step = math.floor(4000 / k)
    for i = 1, #l, step do
      local fields = {}
      for j = i, math.min(i + step - 1, #l) do
        for _, name in ipairs(names) do fields[#fields + 1] = name .. l[j] end
      end
      local v = redis.call('HMGET', bkey(first), unpack(fields))
      local pos = 1
      local packed = meta(first).A
      for j = i, math.min(i + step - 1, #l) do
        local row = {}
        for c = 1, k do
          row[c] = v[pos]
          if packed and names[c] == 'a' then row[c] = packed_arg(first, l[j]) end
          pos = pos + 1
        end
        out[l[j]] = row
      end
    end
  end
  return out
end

local function read_field(ids, where, name)
  -- field name of each id, aligned with ids (false where it has none): one HMGET per batch run
  local out, i, n = {}, 1, #ids
  while i <= n do
    local first = where[tonumber(ids[i])]
    local j = i
    if first then
      local fields = {name .. ids[i]}
      while j < n and #fields < 4000 and where[tonumber(ids[j + 1])] == first do
        j = j + 1
        fields[#fields + 1] = name .. ids[j]
      end
      local v = redis.call('HMGET', bkey(first), unpack(fields))
      for k = 1, #fields do out[i + k - 1] = v[k] end
    end
    i = j + 1
  end
  return out
end

local function close_run(run)
  -- a packed run taken: its pickles in one GETRANGE, with their end offsets and base
  if not run then return end
  local e = run.e
  local ends = string.sub(e.raw, 4 * (run.lo - e.from) + 1, 4 * (run.hi - e.from) + 4)
  local blob = ''
  if run.stop > run.start then
    blob = redis.call('GETRANGE', P .. 'ba:' .. run.first, run.start, run.stop - 1)
  end
  run.into[#run.into + 1] = {blob, ends, run.start}
end

local function take_from(wid, fn, left, bound, groups, all_ids)
  -- lease up to left tasks from one lane, only those older than bound (another lane's head).
  -- A task whose worker died holding it (attempts > 0) is handed out alone, as the in-memory
  -- broker does, so a task that kills workers only piles up attempts on itself.
  -- Returns the number leased and whether the claim must stop here.
  local ids, segs = lane_head(P .. 'q:' .. fn, left, bound)
  local nids = #ids
  if nids == 0 then return 0, true end
  local where = locate(ids)
  local run = nil  -- the packed run being taken: consecutive tasks of one packed batch
  local prev_e, prev_i, prev_hi = nil, -2, 0
  local cur, cur_first, g3, g4, ng = nil, nil, nil, nil, 0
  local processed, n_taken, stop = 0, 0, false
  local n_all = #all_ids
  local per_batch = {}  -- first -> tasks taken from that batch
  -- read in growing chunks, so a claim of big arguments reads little more than it takes
  local pos, chunk = 1, 8
  while pos <= nids and not stop do
    local last = math.min(pos + chunk - 1, nids)
    local part = {}
    for i = pos, last do part[#part + 1] = ids[i] end
    chunk = math.min(chunk * 4, 1000)
    -- arguments: a field per task, or for packed batches the offsets of the ids in this part
    local args, ends = {}, {}
    local span = {}  -- packed batch first -> {lowest, highest} index in this part
    local unpacked = {}
    -- each id's number and batch, worked out once for the loops below; a batch's meta is
    -- looked at once per run of its ids, not per id
    local nums, firsts, any_nx = {}, {}, false
    local last_first, last_m = nil, nil
    for k = 1, #part do
      local n = tonumber(part[k])
      local first = where[n]
      nums[k], firsts[k] = n, first
      if first then
        if first ~= last_first then
          last_first, last_m = first, meta(first)
          if last_m.nx then any_nx = true end
        end
        if last_m.A then
          local i = n - first
          local sp = span[first]
          if not sp then span[first] = {i, i}
          else
            if i < sp[1] then sp[1] = i end
            if i > sp[2] then sp[2] = i end
          end
        else
          unpacked[#unpacked + 1] = part[k]
        end
      end
    end
    for first, sp in pairs(span) do ends[first] = ends_of(first, sp[1], sp[2]) end
    if #unpacked > 0 then
      local v = read_field(unpacked, where, 'a')
      for k = 1, #unpacked do args[unpacked[k]] = v[k] end
    end
    -- attempts are read only in batches where some task was requeued (nx)
    local att, rbs = {}, {}
    if any_nx then
      att = read_field(part, where, 'n')
      rbs = read_field(part, where, 'rb')
    end
    for k = 1, #part do
      local id = part[k]
      local n = nums[k]
      local first = firsts[k]
      if first then  -- (an id no batch holds is no task: it is dropped from the lane)
        local e = ends[first]
        local a, size, i, lo, hi = nil, 0, 0, 0, 0
        if e then
          i = n - first
          -- the previous task's end is this one's start when they follow each other
          if e == prev_e and i == prev_i + 1 then lo = prev_hi else lo = end_at(e, i - 1) end
          hi = end_at(e, i)
          prev_e, prev_i, prev_hi = e, i, hi
          size = hi - lo
        else
          a = args[id] or ''
          size = #a
        end
        if n_all > 0 and size > BUDGET then stop = true; break end
        BUDGET = BUDGET - size
        local attempts = tonumber(att[k]) or 0
        -- rb: the attempts at its last retry by hand; only hand-outs after it are suspect
        if attempts > (tonumber(rbs[k]) or 0) then
          stop = true
          if n_all > 0 then break end
        end
        if att[k] then put(first, 'n' .. id, attempts + 1) end
        if first ~= cur_first then
          local m = meta(first)
          local packed = e and true or false
          if cur == nil or cur[2] ~= m.k or cur[5] ~= m.to or cur.packed ~= packed then
            close_run(run)
            run = nil
            -- to: the tasks' time limit ('' for none); a packed group's arguments come as runs
            cur = {fn, m.k, {}, {}, m.to, {}}
            cur.packed = packed
            groups[#groups + 1] = cur
            g3, g4, ng = cur[3], cur[4], 0
          end
          cur_first = first
        end
        per_batch[first] = (per_batch[first] or 0) + 1
        ng = ng + 1
        g3[ng] = n
        if e then
          if run and run.first == first and run.hi == i - 1 then
            run.hi, run.stop = i, hi
          else
            close_run(run)
            run = {first = first, lo = i, hi = i, start = lo, stop = hi, e = e, into = cur[6]}
          end
        else
          g4[ng] = a
        end
        n_all = n_all + 1
        all_ids[n_all] = id
        n_taken = n_taken + 1
      end
      processed = processed + 1
      if stop then break end
    end
    pos = last + 1
    close_run(run)  -- a run ends with its part: the next part reads offsets of its own
    run = nil
  end
  for first, c in pairs(per_batch) do
    local j = meta(first).j
    jbump(j, 'queued', -c)
    jbump(j, 'claimed', c)
  end
  -- what was looked at is the head of the lane, in order
  lane_drop_head(fn, segs, processed)
  lane_gone(fn)
  if n_taken == 0 and processed > 0 and not stop then return 0, false end
  return n_taken, stop
end

local function take(wid, max_n, only_lane, limits)
  -- lease up to max_n queued tasks to wid, oldest id first across lanes; with limits (function
  -- -> most tasks per claim; 1 for a function not in it) about one claim's worth of work in
  -- all. The first tasks, up to the worker's free slots, start as they are delivered.
  local groups, all_ids = {}, {}
  if redis.call('EXISTS', P .. 'paused') == 1 or max_n <= 0 then return groups, all_ids end
  local left = max_n
  local used = 0.0
  -- a worker registered with a list of functions claims only those
  local allowed = allowed_functions(wid)
  local tries = 0
  while left > 0 do
    local heads = {}
    local names = only_lane and {only_lane} or redis.call('SMEMBERS', P .. 'lanes')
    for _, f in ipairs(names) do
      local h = redis.call('ZRANGE', P .. 'q:' .. f, 0, 0, 'WITHSCORES')
      if #h == 0 then
        if not only_lane then lane_gone(f) end
      elseif allowed == nil or allowed[f] then
        heads[#heads + 1] = {f, tonumber(h[2])}
      end
    end
    if #heads == 0 then break end
    table.sort(heads, function(x, y) return x[2] < y[2] end)
    local bound = nil
    if heads[2] then bound = heads[2][2] end
    local fn = heads[1][1]
    local n, limit = left, 1
    if limits then
      limit = math.max(1, math.floor(tonumber(limits[fn]) or 1))
      n = math.min(left, math.floor((1.0 - used) * limit + 1e-9))
      if n < 1 then
        if #all_ids > 0 then break end  -- the claim is full: these wait for the next one
        n = 1
      end
    end
    local got, stop = take_from(wid, fn, n, bound, groups, all_ids)
    left = left - got
    used = used + got / limit
    tries = tries + 1
    if stop or (got == 0 and tries > 10) then break end
  end
  write_out()
  if #all_ids > 0 then
    lease_add(wid, all_ids)
    local h = redis.call('HMGET', P .. 'w:' .. wid, 'conc', 'nrun')
    local free = (tonumber(h[1]) or 1) - (tonumber(h[2]) or 0)
    if free > 0 then
      -- the worker starts these as soon as the reply arrives: they are running now
      local first = {}
      for i = 1, math.min(free, #all_ids) do first[i] = all_ids[i] end
      start_ids(wid, first)
    end
  end
  return groups, all_ids
end

local function remember_claim(wid, token, groups)
  -- the claim's ids (its groups' in order) as runs "a-b" of consecutive ids: a number is
  -- formatted per run, not per id
  if token == '' then return end
  local runs, lo, hi = {}, nil, nil
  for _, g in ipairs(groups) do
    for _, n in ipairs(g[3]) do
      if lo and n == hi + 1 then hi = n
      else
        if lo then runs[#runs + 1] = lo == hi and lo or (lo .. '-' .. hi) end
        lo, hi = n, n
      end
    end
  end
  if not lo then return end
  runs[#runs + 1] = lo == hi and lo or (lo .. '-' .. hi)
  redis.call('SET', P .. 'lc:' .. wid, token .. ':' .. table.concat(runs, ','))
end

local function replay(wid, token)
  -- the same call again after a lost reply: hand back what that call leased, if still held
  if token == '' then return nil end
  local v = redis.call('GET', P .. 'lc:' .. wid)
  if not v then return nil end
  local sep = string.find(v, ':', 1, true)
  if not sep or string.sub(v, 1, sep - 1) ~= token then return nil end
  local ids = {}
  for run in string.gmatch(string.sub(v, sep + 1), '[^,]+') do
    local a, b = string.match(run, '^(%d+)-(%d+)$')
    if a then
      for k = tonumber(a), tonumber(b) do ids[#ids + 1] = tostring(k) end
    else
      ids[#ids + 1] = run
    end
  end
  local mine = holds(wid, ids)  -- its leases, claimed or running
  local where = locate(ids)
  local args = read_tasks(ids, where, {'a'})
  local groups, cur = {}, nil
  for i, id in ipairs(ids) do
    local first = where[tonumber(id)]
    if mine[i] and first then
      local m = meta(first)
      if cur == nil or cur[1] ~= m.f or cur[2] ~= m.k or cur[5] ~= m.to then
        cur = {m.f, m.k, {}, {}, m.to}
        groups[#groups + 1] = cur
      end
      cur[3][#cur[3] + 1] = tonumber(id)
      cur[4][#cur[4] + 1] = (args[id] and args[id][1]) or ''
    end
  end
  return groups
end

local function release_ids(wid, ids)
  -- give leases back without counting the attempt
  local mine = holds(wid, ids)
  local run = running_of(wid)
  local where = locate(ids)
  local back, gone, seen, running = 0, {}, {}, {}
  for i, id in ipairs(ids) do
    local n = tonumber(id)
    local first = where[n]
    if first and mine[i] and not seen[n] then
      seen[n] = true
      gone[#gone + 1] = n
      local st = 'claimed'
      if run[n] then st = 'running'; running[#running + 1] = n end
      jbump(meta(first).j, st, -1)
      requeue(n, first, math.max(0, attempts_of(first, n, false) - 1))
      back = back + 1
    end
  end
  unrun(wid, running)
  lease_drop(wid, gone)
  if back > 0 then redis.call('PUBLISH', P .. 'wake', 'r') end
  return back
end

local function forget_leases(wid)
  -- every lease of wid ends at once (it went offline or left); returns the ids it held
  local members = redis.call('ZRANGE', P .. 'wl:' .. wid, 0, -1)
  local ids, gl = {}, {}
  for k, m in ipairs(members) do
    local a, b = string.match(m, '^(%d+):(%d+)$')
    for n = tonumber(a), tonumber(b) do ids[#ids + 1] = n end
    gl[k] = m .. ':' .. wid
  end
  for k = 1, #gl, 1000 do
    redis.call('ZREM', P .. 'ls', unpack(gl, k, math.min(k + 999, #gl)))
  end
  srem_ids(P .. 'running', redis.call('SMEMBERS', P .. 'wr:' .. wid))
  redis.call('DEL', P .. 'wl:' .. wid, P .. 'wr:' .. wid)
  if #ids > 0 then redis.call('INCRBY', P .. 'nl', -#ids) end
  if redis.call('EXISTS', P .. 'w:' .. wid) == 1 then
    redis.call('HSET', P .. 'w:' .. wid, 'nh', 0, 'nrun', 0)
  end
  return ids
end

local function expire(wid, why)
  -- mark a worker offline and requeue (or bury) every task it held
  local wkey = P .. 'w:' .. wid
  redis.call('HSET', wkey, 'state', 'offline')
  redis.call('HDEL', wkey, 'cur', 'gb')
  redis.call('ZREM', P .. 'wdl', wid)
  local run = running_of(wid)
  local ids = forget_leases(wid)
  redis.call('DEL', P .. 'lc:' .. wid)
  local back, dead = 0, 0
  local where = locate(ids)
  -- every lease counts an attempt, claimed ones too: an inline worker may have started tasks
  -- since it last said so, and the one that killed it must reach max_attempts
  for _, id in ipairs(ids) do
    local first = where[id]
    if first then
      jbump(meta(first).j, run[id] and 'running' or 'claimed', -1)
      local att = attempts_of(first, id, false)
      local rb = tonumber(redis.call('HGET', bkey(first), 'rb' .. id)) or 0
      local n = att - rb  -- expiries since a retry
      if n >= MAXATT then
        local err = string.format('lease expired %d times (its worker died or hung each time); '
          .. 'last worker %s', n, wid)
        put(first, 'n' .. id, att)
        redis.call('HDEL', P .. 'bt', id)
        finish(id, first, 'dead', id .. ':0:' .. #err .. '::0:' .. err .. err, wid)
        dead = dead + 1
      else
        requeue(id, first, att)
        back = back + 1
      end
    end
  end
  write_out()
  bump('requeued', back)
  bucket('req', back)
  event('worker-offline', 'worker ' .. wid .. ' went offline (' .. why .. ')')
  if back > 0 then
    event('requeued', back .. ' task(s) of ' .. wid .. ' requeued')
    redis.call('PUBLISH', P .. 'wake', 'e')
  end
  if dead > 0 then
    event('dead', dead .. ' task(s) of ' .. wid .. ' are dead after ' .. MAXATT .. ' attempts')
  end
  return back + dead
end

local function reap()
  local n = 0
  local late = redis.call('ZRANGEBYSCORE', P .. 'wdl', '-inf', '(' .. NOW)
  for _, wid in ipairs(late) do
    local seen = tonumber(redis.call('HGET', P .. 'w:' .. wid, 'seen')) or now
    n = n + expire(wid, string.format('no heartbeat for %.0f s', now - seen))
  end
  return n
end

local function workers_info()
  local out = {}
  for _, wid in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
    local h = redis.call('HMGET', P .. 'w:' .. wid, 'name', 'host', 'pid', 'kind', 'mode', 'conc',
      'state', 'joined', 'seen', 'cur', 'done', 'failed', 'fns', 'addr', 'nrun', 'cpu', 'rss',
      'nh')
    if h[7] then
      local first = lowest_held(wid)
      out[#out + 1] = {wid, h[1] or '', h[2] or '', h[3] or '0', h[4] or '', h[5] or '',
        h[6] or '1', h[7], h[8] or '0', h[9] or '0', h[10] or '', h[11] or '0', h[12] or '0',
        tonumber(h[18]) or 0, first, h[13] or '', h[14] or '', h[15] or '0', h[16] or '',
        h[17] or ''}
    end
  end
  return out
end

local function touch_worker(wid)
  redis.call('HSET', P .. 'w:' .. wid, 'seen', NOW)
  redis.call('ZADD', P .. 'wdl', now + LEASE, wid)
end

local function maybe_reap(auto_ms)
  -- with no server process in the path, claims reap on the side (at most once per interval)
  if auto_ms > 0 and redis.call('SET', P .. 'reaplock', '1', 'PX', auto_ms, 'NX') then reap() end
end

local function trim_jobs()
  -- forget the oldest finished jobs beyond KEEP_JOBS (jobs with tasks left always stay)
  local over = redis.call('ZCARD', P .. 'jobs') - KEEP_JOBS
  if over <= 0 then return end
  for _, jid in ipairs(redis.call('ZRANGE', P .. 'jobs', 0, over + 99)) do
    if over <= 0 then break end
    local jkey = P .. 'job:' .. jid
    local h = redis.call('HMGET', jkey, 'name', 'queued', 'running', 'claimed')
    if (tonumber(h[2]) or 0) + (tonumber(h[3]) or 0) + (tonumber(h[4]) or 0) == 0 then
      if h[1] then redis.call('HDEL', P .. 'jobnames', h[1]) end
      redis.call('DEL', jkey, P .. 'jr:' .. jid)
      redis.call('ZREM', P .. 'jobs', jid)
      over = over - 1
    end
  end
end

local function find_job(ref)
  -- a job by '#id' or by name; nil when there is none
  if string.sub(ref, 1, 1) == '#' then
    local jid = string.sub(ref, 2)
    if redis.call('EXISTS', P .. 'job:' .. jid) == 1 then return jid end
    return nil
  end
  local jid = redis.call('HGET', P .. 'jobnames', ref)
  if jid then return jid end
  if string.match(ref, '^%d+$') and redis.call('EXISTS', P .. 'job:' .. ref) == 1 then
    return ref
  end
  return nil
end

local function open_job(ref)
  -- the job a submission joins: '#id' must exist; a name is made when new
  local jid = find_job(ref)
  if jid then return jid end
  if string.sub(ref, 1, 1) == '#' then
    return redis.error_reply('no job with id ' .. string.sub(ref, 2) .. ': open it by name first')
  end
  jid = tostring(redis.call('INCR', P .. 'seq:job'))
  redis.call('HSET', P .. 'job:' .. jid, 'name', ref, 'fns', '', 'sub', NOW, 'queued', 0,
    'claimed', 0, 'running', 0, 'done', 0, 'failed', 0, 'dead', 0, 'cancelled', 0)
  redis.call('ZADD', P .. 'jobs', tonumber(jid), jid)
  redis.call('HSET', P .. 'jobnames', ref, jid)
  trim_jobs()
  return jid
end

local function job_info(jid, no_ranges)
  local h = redis.call('HMGET', P .. 'job:' .. jid, 'name', 'fns', 'queued', 'claimed',
    'running', 'done', 'failed', 'dead', 'cancelled', 'sub', 'started', 'last')
  if not h[1] then return nil end
  for i = 1, #h do if not h[i] then h[i] = '' end end
  return {jid, h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], NOW,
    no_ranges and {} or redis.call('LRANGE', P .. 'jr:' .. jid, 0, -1)}
end

local function jobs_info(n)
  -- the newest n jobs, newest first, without their id ranges (what a snapshot carries)
  local out = {}
  if n <= 0 then return out end
  for _, jid in ipairs(redis.call('ZREVRANGE', P .. 'jobs', 0, n - 1)) do
    local info = job_info(jid, true)
    if info then out[#out + 1] = info end
  end
  return out
end
"""

INIT = r"""
-- ARGV[3..]: pairs to set, then "--", then pairs to set only if missing
local layout = redis.call('GET', P .. 'layout')
if layout ~= LAYOUT then
  if layout or redis.call('EXISTS', P .. 'seq:task') == 1 then
    return redis.error_reply('guidist layout ' .. (layout or '1') .. ' found, ' .. LAYOUT ..
      ' needed')
  end
  redis.call('SET', P .. 'layout', LAYOUT)
end
local i, mode = 3, 'set'
while ARGV[i] do
  if ARGV[i] == '--' then mode = 'setnx'; i = i + 1
  else
    if mode == 'set' then redis.call('HSET', P .. 'config', ARGV[i], ARGV[i + 1])
    else redis.call('HSETNX', P .. 'config', ARGV[i], ARGV[i + 1]) end
    i = i + 2
  end
end
tick()
return redis.call('HGETALL', P .. 'config')
"""

SUBMIT = r"""
-- ARGV: token, job ('#id' or a name), function, kwargs blob ('' for none), classic ('1' a
-- classic submission, '0' not, 'b' not and packed), n, time limit in seconds ('' for none),
-- then per task the args blob (and, for classic submissions, the tutorial's "n * n = " prefix
-- or ''); packed: the pickles end to end, then their end offsets as little-endian uint32
local token = ARGV[3]
if token ~= '' then
  local prev = redis.call('GET', P .. 'tok:' .. token)
  if prev then return tonumber(prev) end
end
tick()
local jid = open_job(ARGV[4])
if type(jid) == 'table' then return jid end  -- the error reply of an unknown job id
local fn, kw, classic, n = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local to = ARGV[9]
local last = redis.call('INCRBY', P .. 'seq:task', n)
local first = last - n + 1
local key = bkey(first)
local h = {'f', fn, 's', NOW, 'j', jid, 'n', n, 'live', n}
if kw ~= '' then h[#h + 1] = 'k'; h[#h + 1] = kw end
if to ~= '' then h[#h + 1] = 'to'; h[#h + 1] = to end
if classic == '1' then h[#h + 1] = 'c'; h[#h + 1] = '1' end
if classic == 'b' then h[#h + 1] = 'A'; h[#h + 1] = '1' end
redis.call('HSET', key, unpack(h))
local fields = {}
if classic == 'b' then
  redis.call('SET', P .. 'ba:' .. first, ARGV[10])
  redis.call('SET', P .. 'bo:' .. first, ARGV[11])
else
  local stride = 1
  if classic == '1' then stride = 2 end
  for i = 0, n - 1 do
    local id = first + i
    fields[#fields + 1] = 'a' .. id
    fields[#fields + 1] = ARGV[10 + stride * i]
    if classic == '1' then
      local cp = ARGV[11 + stride * i]
      if cp ~= '' then fields[#fields + 1] = 'p' .. id; fields[#fields + 1] = cp end
    end
    if #fields >= 4000 then redis.call('HSET', key, unpack(fields)); fields = {} end
  end
  if #fields > 0 then redis.call('HSET', key, unpack(fields)) end
end
redis.call('ZADD', P .. 'bi', first, first .. ':' .. n)
lane_add(fn, first, last)
jbump(jid, 'queued', n)
local jkey = P .. 'job:' .. jid
local fns = redis.call('HGET', jkey, 'fns') or ''
if not string.find(',' .. fns .. ',', ',' .. fn .. ',', 1, true) then
  redis.call('HSET', jkey, 'fns', fns == '' and fn or (fns .. ',' .. fn))
end
-- its ids, as runs: a submission right after the job's previous one extends that run
local runs = P .. 'jr:' .. jid
local prev = redis.call('LINDEX', runs, -1)
local pf, pn = nil, nil
if prev then pf, pn = string.match(prev, '^(%d+):(%d+)$') end
if pf and tonumber(pf) + tonumber(pn) == first then
  redis.call('LSET', runs, -1, pf .. ':' .. (tonumber(pn) + n))
else
  redis.call('RPUSH', runs, first .. ':' .. n)
end
bump('submitted', n)
bucket('sub', n)
flush()
if token ~= '' then redis.call('SET', P .. 'tok:' .. token, first, 'EX', 600) end
redis.call('PUBLISH', P .. 'wake', 'q')
return first
"""

REGISTER = r"""
-- ARGV: token, name, host, pid, mode, concurrency, kind, functions, address
local token = ARGV[3]
if token ~= '' then
  local prev = redis.call('GET', P .. 'tok:' .. token)
  if prev then return {prev, tostring(LEASE), DEFAULT} end
end
tick()
local name, host, pid, mode, conc, kind = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local fns = ARGV[10] or ''
local addr = ARGV[11] or ''
local seq = redis.call('INCR', P .. 'seq:worker')
local wid = name .. '#' .. seq
redis.call('HSET', P .. 'w:' .. wid, 'name', name, 'host', host, 'pid', pid, 'kind', kind,
  'mode', mode, 'conc', conc, 'joined', NOW, 'seen', NOW, 'done', 0, 'failed', 0,
  'state', 'idle', 'stop', '0', 'fns', fns, 'addr', addr, 'nrun', 0)
redis.call('ZADD', P .. 'workers', seq, wid)
redis.call('ZADD', P .. 'wdl', now + LEASE, wid)
event('worker-joined', 'worker ' .. wid .. ' joined from ' .. host .. ' (pid ' .. pid .. ', ' ..
  mode .. ')')
if token ~= '' then redis.call('SET', P .. 'tok:' .. token, wid, 'EX', 600) end
return {wid, tostring(LEASE), DEFAULT}
"""

HEARTBEAT = r"""
-- ARGV: worker id, the ids of the tasks it runs now ("id,id,..."; '' for none), and
-- optionally its CPU % and resident bytes
local wid = ARGV[3]
local running = split_ids(ARGV[4])
local wkey = P .. 'w:' .. wid
local st = redis.call('HGET', wkey, 'state')
if not st or st == 'offline' then return 'unknown' end
touch_worker(wid)
if ARGV[5] and ARGV[5] ~= '' then
  redis.call('HSET', wkey, 'cpu', ARGV[5], 'rss', ARGV[6])
end
if running[1] then
  redis.call('HSET', wkey, 'cur', running[1])
  start_ids(wid, running)
  flush()  -- the started tasks' jobs count them as running
else
  redis.call('HDEL', wkey, 'cur')
end
if redis.call('HGET', wkey, 'stop') == '1' then return 'stop' end
if give_back_due(wid) then return 'give-back' end
return 'ok'
"""

EXCHANGE = r"""
-- ARGV: worker id, max_n, token, auto-reap ms, running ids ("id,id,..." or ''), limits (JSON
-- object function -> most tasks per claim, or '' for none), ask ('1': the caller will wait,
-- so ask a busy worker to give back what it has not started), then result quads
-- reply: {command, accepted, group...}, group = {function, kwargs blob, {ids}, {args blobs}}
local wid, max_n, token, auto_ms = ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local limits = nil
if ARGV[8] ~= '' then limits = cjson.decode(ARGV[8]) end
tick()
local wkey = P .. 'w:' .. wid
local st = redis.call('HGET', wkey, 'state')
if not st or st == 'offline' then
  local accepted = complete_all(wid, 10)
  flush()
  return {'unknown', accepted}
end
touch_worker(wid)
local accepted = complete_all(wid, 10)
if ARGV[7] ~= '' then start_ids(wid, split_ids(ARGV[7])) end
maybe_reap(auto_ms)
local reply = {'ok', accepted}
if redis.call('HGET', wkey, 'stop') == '1' then
  reply[1] = 'stop'
elseif give_back_due(wid) then
  reply[1] = 'give-back'
else
  local groups = replay(wid, token)
  if not groups then
    local ids
    groups, ids = take(wid, max_n, nil, limits)
    remember_claim(wid, token, groups)
    if #ids == 0 and ARGV[9] == '1' then ask_for_give_back(wid) end
  end
  for _, g in ipairs(groups) do reply[#reply + 1] = g end
end
flush()
return reply
"""

COMPLETE = r"""
-- ARGV: worker id, then result quads
tick()
local accepted = complete_all(ARGV[3], 4)
flush()
return accepted
"""

UNREGISTER = r"""
local wid = ARGV[3]
local wkey = P .. 'w:' .. wid
if redis.call('EXISTS', wkey) == 0 then return 0 end
tick()
local n = release_ids(wid, held_ids(wid))
forget_leases(wid)
redis.call('DEL', wkey, P .. 'lc:' .. wid)
redis.call('ZREM', P .. 'workers', wid)
redis.call('ZREM', P .. 'wdl', wid)
local msg = 'worker ' .. wid .. ' left'
if n > 0 then msg = msg .. ', returning ' .. n .. ' task(s) to the queue' end
event('worker-left', msg)
flush()
return n
"""

RELEASE = r"""
-- ARGV: worker id, 'all' or 'ids', ids...
local wid = ARGV[3]
if redis.call('EXISTS', P .. 'w:' .. wid) == 0 then return 0 end
local ids
if ARGV[4] == 'all' then
  ids = held_ids(wid)
else
  ids = {}
  local i = 5
  while ARGV[i] do ids[#ids + 1] = ARGV[i]; i = i + 1 end
end
local n = release_ids(wid, ids)
flush()
return n
"""

REQUEST_STOP = r"""
local n, i = 0, 3
while ARGV[i] do
  local wkey = P .. 'w:' .. ARGV[i]
  local st = redis.call('HGET', wkey, 'state')
  if st and st ~= 'offline' then
    redis.call('HSET', wkey, 'stop', '1', 'state', 'stopping')
    n = n + 1
  end
  i = i + 1
end
return n
"""

FORGET_OFFLINE = r"""
local n = 0
for _, wid in ipairs(redis.call('ZRANGE', P .. 'workers', 0, -1)) do
  local st = redis.call('HGET', P .. 'w:' .. wid, 'state')
  if st == 'offline' or not st then
    forget_leases(wid)  -- (none: an offline worker's went when it went offline)
    redis.call('DEL', P .. 'w:' .. wid, P .. 'lc:' .. wid)
    redis.call('ZREM', P .. 'workers', wid)
    if st then n = n + 1 end
  end
end
return n
"""

WORKERS = r"""
return workers_info()
"""

REAP = r"""
tick()
local n = reap()
flush()
return n
"""

PAUSE = r"""
-- ARGV: '1' pause, '0' resume
if ARGV[3] == '1' then
  if redis.call('SET', P .. 'paused', '1', 'NX') then event('control', 'dispatch paused') end
else
  if redis.call('DEL', P .. 'paused') == 1 then
    event('control', 'dispatch resumed')
    redis.call('PUBLISH', P .. 'wake', 'p')
  end
end
return 1
"""

CANCEL = r"""
tick()
local ids, i = {}, 3
while ARGV[i] do ids[#ids + 1] = ARGV[i]; i = i + 1 end
local where = locate(ids)
local n = 0
for _, id in ipairs(ids) do
  local first = where[tonumber(id)]
  if first then
    local m = meta(first)
    if lane_remove(m.f, tonumber(id)) then
      jbump(m.j, 'queued', -1)
      finish(id, first, 'cancelled', '', '')
      n = n + 1
    end
  end
end
if n > 0 then event('control', n .. ' queued task(s) cancelled') end
flush()
return n
"""

PURGE = r"""
-- ARGV: highest id to purge, most tasks this call, tasks purged by earlier calls
-- reply: {purged now, 1 when finished}
-- (scores up to the highest id + 0.5: tasks retried before this purge began count too)
local bound, limit, total = tonumber(ARGV[3]) + 0.6, tonumber(ARGV[4]), tonumber(ARGV[5])
tick()
local n = 0
for _, f in ipairs(redis.call('SMEMBERS', P .. 'lanes')) do
  if n >= limit then break end
  local ids, segs = lane_head(P .. 'q:' .. f, limit - n, bound)
  if #ids > 0 then
    lane_drop_head(f, segs, #ids)
    local where = locate(ids)
    for _, id in ipairs(ids) do
      local first = where[tonumber(id)]
      if first then
        jbump(meta(first).j, 'queued', -1)
        -- kept as cancelled (up to keep_cancelled), so a result waiter learns it was
        finish(id, first, 'cancelled', '', '')
      end
    end
    n = n + #ids
  end
  lane_gone(f)
end
local finished = n < limit
if finished then event('control', 'queue purged: ' .. (total + n) .. ' task(s) cancelled') end
flush()
return {n, finished and 1 or 0}
"""

RETRY = r"""
tick()
local ids, i = {}, 3
while ARGV[i] do ids[#ids + 1] = ARGV[i]; i = i + 1 end
local where = locate(ids)
local failed = zmscore(P .. 'fin:failed', ids)
local dead = zmscore(P .. 'fin:dead', ids)
local behind = (tonumber(redis.call('GET', P .. 'seq:task')) or 0) + 0.5
local n = 0
for k, id in ipairs(ids) do
  local first = where[tonumber(id)]
  local st = (failed[k] and 'failed') or (dead[k] and 'dead') or nil
  if first and st then
    redis.call('ZREM', P .. 'fin:' .. st, id)
    kl_bump(first, -1)
    bump(st, -1)
    jbump(meta(first).j, st, -1)
    local key = bkey(first)
    redis.call('HDEL', key, id)
    -- the attempts go on counting; the lease rules start afresh from here
    local att = attempts_of(first, id, false)
    redis.call('HSET', key, 'rb' .. id, att, 'nx', '1')
    meta(first).nx = '1'
    requeue(id, first, att, behind)
    n = n + 1
  end
end
if n > 0 then
  bump('requeued', n)
  bucket('req', n)
  event('control', n .. ' task(s) queued again for retry')
  redis.call('PUBLISH', P .. 'wake', 't')
end
flush()
return n
"""

SNAPSHOT = r"""
-- ARGV: series cursor, events cursor, how many of the newest jobs
local series_since, events_since, n_jobs = ARGV[3], ARGV[4], tonumber(ARGV[5]) or 0
tick()
local series = redis.call('ZREVRANGEBYSCORE', P .. 'series', '+inf', '(' .. series_since,
  'LIMIT', 0, 900)
local last10 = redis.call('ZREVRANGE', P .. 'series', 0, 9)
local events = redis.call('ZREVRANGEBYSCORE', P .. 'events', '+inf', '(' .. events_since,
  'LIMIT', 0, 500)
local nl = n_leased()
return {NOW, redis.call('HGETALL', P .. 'c'), queued_count(), nl[2],
  redis.call('EXISTS', P .. 'paused'), series, last10, events, workers_info(),
  redis.call('GET', P .. 'started') or NOW, redis.call('LLEN', P .. 'classic'), DEFAULT,
  nl[1], jobs_info(n_jobs)}
"""

QUEUED_COUNT = r"""
return queued_count()
"""

CLASSIC_GET = r"""
-- ARGV: connection key, token; reply: {} or {args blob, kwargs blob}
local wid, token = 'classic:' .. ARGV[3], ARGV[4]
tick()
local wkey = P .. 'w:' .. wid
local st = redis.call('HGET', wkey, 'state')
if not st then
  local host = string.match(ARGV[3], '@(.*)$') or ARGV[3]
  local seq = redis.call('INCR', P .. 'seq:worker')
  redis.call('HSET', wkey, 'name', 'classic', 'host', host, 'pid', 0, 'kind', 'classic',
    'mode', 'classic', 'conc', 1, 'joined', NOW, 'done', 0, 'failed', 0, 'state', 'idle',
    'stop', '0', 'addr', host, 'nrun', 0)
  redis.call('ZADD', P .. 'workers', seq, wid)
  event('worker-joined', 'classic worker connected from ' .. host)
elseif st == 'offline' then
  redis.call('HSET', wkey, 'state', 'idle')
end
touch_worker(wid)
local groups = replay(wid, token)
if not groups then
  local ids
  groups, ids = take(wid, 1, DEFAULT)
  remember_claim(wid, token, groups)
end
flush()
if #groups == 0 then return {} end
local g = groups[1]
if g[6] and g[6][1] then return {g[6][1][1], g[2]} end  -- one task of a packed batch
return {g[4][1], g[2]}
"""

CLASSIC_PUT = r"""
-- ARGV: connection key, then one result quad; reply: 1 if it completed the task it held
-- A classic task's result reaches the master through finish(); one submitted through the
-- batched API is read from the ledger, so only a worker holding nothing feeds the queue.
local wid = 'classic:' .. ARGV[3]
tick()
local items = parse_results(4)
local wkey = P .. 'w:' .. wid
if redis.call('EXISTS', wkey) == 1 then
  local tid = lowest_held(wid)
  if tid ~= '' then
    touch_worker(wid)
    items[1][1] = tid
    complete(wid, items)
    flush()
    return 1
  end
end
redis.call('RPUSH', P .. 'classic', 'p' .. parse_full(items[1][3])[3])
return 0
"""

CONNECTION_CLOSED = r"""
local wid = 'classic:' .. ARGV[3]
local wkey = P .. 'w:' .. wid
if redis.call('EXISTS', wkey) == 0 then return 0 end
tick()
if redis.call('ZCARD', P .. 'wl:' .. wid) > 0 then expire(wid, 'connection closed') end
forget_leases(wid)
redis.call('DEL', wkey, P .. 'lc:' .. wid)
redis.call('ZREM', P .. 'workers', wid)
redis.call('ZREM', P .. 'wdl', wid)
event('worker-left', 'classic worker ' .. wid .. ' disconnected')
flush()
return 1
"""

RESULTS = r"""
-- ARGV: cursor (a result seq), limit, then the job ids wanted
-- reply: {new cursor, {{id, state, record R<id> (see finish) or '', fs, rank}...}, gap,
-- {fs, blob, ...}}: a result stored packed is rank of call fs, whose blob comes once
-- Reads only the results after cursor (the finished sets are scored by result seq), so its
-- cost follows what finished, never how many tasks the caller waits for.
local cursor, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local want = {}
local i = 5
while ARGV[i] do want[ARGV[i]] = true; i = i + 1 end
local newest = tonumber(redis.call('HGET', P .. 'c', 'result_seq')) or 0
if cursor > newest then return {newest, {}, 1, {}} end  -- a cursor from another deployment
local rows, bound = {}, newest
for _, state in ipairs({'done', 'failed', 'dead', 'cancelled'}) do
  local part = finished_after(state, cursor, limit)
  for j = 1, #part, 4 do
    rows[#rows + 1] = {tonumber(part[j]), tostring(part[j + 1]), state, part[j + 2], part[j + 3]}
  end
  -- a set that filled the limit may hold more: read no further than its last, this time
  if #part >= 4 * limit then bound = math.min(bound, tonumber(part[#part - 3])) end
end
table.sort(rows, function(a, b) return a[1] < b[1] end)
local kept = {}
for _, row in ipairs(rows) do
  if row[1] <= bound then kept[#kept + 1] = row end
end
local ids = {}
for k, row in ipairs(kept) do ids[k] = row[2] end
local where = locate(ids)
local wanted, alone = {}, {}
for _, row in ipairs(kept) do
  local first = where[tonumber(row[2])]
  if first and want[meta(first).j or ''] then
    wanted[#wanted + 1] = row
    if row[4] == 0 then alone[#alone + 1] = row[2] end
  end
end
local values = read_tasks(alone, where, {''})
local out, calls, blobs = {}, {}, {}
for _, row in ipairs(wanted) do
  local id, fs = row[2], row[4]
  if fs ~= 0 then
    out[#out + 1] = {id, row[3], '', fs, row[5]}
    want_rank(calls, blobs, fs, row[5])
  else
    local v = values[id] or {}
    out[#out + 1] = {id, row[3], v[1] or ''}
  end
end
local evicted = tonumber(redis.call('HGET', P .. 'c', 'evicted')) or 0
return {bound, out, evicted > cursor and 1 or 0, call_blobs(blobs, calls)}
"""

OPEN_JOB = r"""
-- ARGV: job ('#id' or a name); reply: the job's info
tick()
local jid = open_job(ARGV[3])
if type(jid) == 'table' then return jid end
return job_info(jid)
"""

JOB = r"""
-- ARGV: '#id' or a name; reply: the job's info, or nil
local jid = find_job(ARGV[3])
if not jid then return nil end
return job_info(jid)
"""

JOBS = r"""
-- reply: every job kept, newest first
local out = {}
for _, jid in ipairs(redis.call('ZREVRANGE', P .. 'jobs', 0, -1)) do
  local info = job_info(jid)
  if info then out[#out + 1] = info end
end
return out
"""

EXPIRE_WORKER = r"""
-- ARGV: worker id, why; a guidist worker whose every connection to the server closed
local wid = ARGV[3]
local st = redis.call('HGET', P .. 'w:' .. wid, 'state')
if not st or st == 'offline' then return 0 end
tick()
local n = expire(wid, ARGV[4])
flush()
return n
"""

REPORT = r"""
-- ARGV: worker id, its report as JSON: {"f": [[function, done, failed, [bucket, n, ...],
-- run-time sum, run-time max], ...], "s": [span, ...]} (a few times a second per worker)
local wid = ARGV[3]
local r = cjson.decode(ARGV[4])
local k = P .. 'fstats'
for _, f in ipairs(r.f or {}) do
  local name = f[1]
  if f[2] ~= 0 then redis.call('HINCRBY', k, name .. '|done', f[2]) end
  if f[3] ~= 0 then redis.call('HINCRBY', k, name .. '|failed', f[3]) end
  local b = f[4]
  for i = 1, #b, 2 do redis.call('HINCRBY', k, name .. '|b' .. b[i], b[i + 1]) end
  redis.call('HINCRBYFLOAT', k, name .. '|sum', f[5])
  local top = tonumber(redis.call('HGET', k, name .. '|max')) or 0
  if f[6] > top then redis.call('HSET', k, name .. '|max', f[6]) end
end
if r.s and #r.s > 0 then
  redis.call('XADD', P .. 'spans', 'MAXLEN', '~', 20000, '*', 'w', wid, 's', cjson.encode(r.s))
end
return 1
"""

TASKS = r"""
-- ARGV: task ids; reply: per id its fields ({} when unknown): f st s j n, k, w (the holder of
-- a lease), and those it has of a (args), b (started, by the server), R (finished, see
-- finish) or P ("<fs>:<rank>": its record is result rank of the packed call fs); its state
-- is the set it is in. Then one more element: {fs, blob, ...} of the packed calls named
local ids, i = {}, 3
while ARGV[i] do ids[#ids + 1] = ARGV[i]; i = i + 1 end
local where = locate(ids)
local names = {'a', 'n', ''}  -- '': the record (field <id>)
local d = read_tasks(ids, where, names)
-- done is the one finished state without a set of ids: a record R and no other set
local SETS = {{'failed', P .. 'fin:failed'}, {'dead', P .. 'fin:dead'},
  {'cancelled', P .. 'fin:cancelled'}}
local out, calls, blobs, oldest = {}, {}, {}, false
for k, id in ipairs(ids) do
  local first = where[tonumber(id)]
  local rec = {}
  if first then
    local m = meta(first)
    local st = nil
    if lane_find(m.f or '', tonumber(id)) then st = 'queued'
    elseif redis.call('SISMEMBER', P .. 'running', id) == 1 then st = 'running'
    elseif holder_of(id) then st = 'claimed' end
    for _, s in ipairs(SETS) do
      if st then break end
      if redis.call('ZSCORE', s[2], id) then st = s[1] end
    end
    if not st and (d[id] or {})[3] then st = 'done' end  -- [3]: the record
    local fs, rank = nil, nil
    if not st then
      -- done in a call whose results came packed: its record is in that call's blob
      if oldest == false then oldest = oldest_done() end
      fs, rank = packed_ref(tonumber(id), oldest)
      if fs then
        st = 'done'
        want_rank(calls, blobs, fs, rank)
      end
    end
    if st then
      local v = d[id] or {}
      local n = v[2]
      if not n then n = (st == 'queued' or st == 'cancelled') and '0' or '1' end
      rec = {'f', m.f or '', 'st', st, 's', m.s or '0', 'j', m.j or '', 'n', n}
      if m.k ~= '' then rec[#rec + 1] = 'k'; rec[#rec + 1] = m.k end
      if st == 'running' or st == 'claimed' then
        local w = holder_of(id)
        if w then rec[#rec + 1] = 'w'; rec[#rec + 1] = w end
        local b = redis.call('HGET', P .. 'bt', id)
        if b then rec[#rec + 1] = 'b'; rec[#rec + 1] = b end
      end
      for c, name in ipairs(names) do
        if name ~= 'n' and v[c] then
          rec[#rec + 1] = name == '' and 'R' or name
          rec[#rec + 1] = v[c]
        end
      end
      if fs then rec[#rec + 1] = 'P'; rec[#rec + 1] = fs .. ':' .. rank end
    end
  end
  out[k] = rec
end
out[#ids + 1] = call_blobs(blobs, calls)
return out
"""

FINISHED_SINCE = r"""
-- ARGV: cursor (a result seq), limit; reply: {seq, id, ...} of the results after cursor in
-- every finished state, oldest first, at most limit: one script, so the sets are read at one
-- instant and a result finishing meanwhile is never stepped over
local cursor, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local rows = {}
for _, state in ipairs({'done', 'failed', 'dead', 'cancelled'}) do
  local part = finished_after(state, cursor, limit)
  for j = 1, #part, 4 do rows[#rows + 1] = {tonumber(part[j]), part[j + 1]} end
end
table.sort(rows, function(a, b) return a[1] < b[1] end)
local out = {}
for k = 1, math.min(limit, #rows) do
  out[#out + 1] = rows[k][1]
  out[#out + 1] = rows[k][2]
end
return out
"""

FINISHED_UNION = r"""
-- ARGV: start, stop (ranks, newest first), then the finished states to merge; reply: their
-- ids by result seq, newest first, from a union kept for a second (the pages of one screen
-- share it): the zsets as they are, done's list entries added with their seqs
local union = P .. 'listing:finished'
if redis.call('EXISTS', union) == 0 then
  local zsets, with_done = {}, false
  local i = 5
  while ARGV[i] do
    if ARGV[i] == 'done' then with_done = true else zsets[#zsets + 1] = P .. 'fin:' .. ARGV[i] end
    i = i + 1
  end
  if #zsets > 0 then redis.call('ZUNIONSTORE', union, #zsets, unpack(zsets)) end
  if with_done then
    local pairs_, rows = {}, {}
    for _, e in ipairs(redis.call('LRANGE', P .. 'fin:done', 0, -1)) do
      local en = parse_entry(e)
      entry_rows(en, en.skip, en.n - 1, rows)
    end
    for j = 1, #rows, 4 do
      pairs_[#pairs_ + 1] = rows[j]
      pairs_[#pairs_ + 1] = rows[j + 1]
    end
    zadd_pairs(union, pairs_)
  end
  redis.call('PEXPIRE', union, 1000)
end
return redis.call('ZREVRANGE', union, tonumber(ARGV[3]), tonumber(ARGV[4]))
"""

DONE_ROWS = r"""
-- ARGV: start, count; reply: {seq, id, ...} of the done tasks ranked start..start+count-1
-- from the newest, oldest first (the listing's page of P:fin:done, read from its end)
local start, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local need = start + count
local fin = P .. 'fin:done'
local newest = {}  -- {seq, id, ...} newest first
local pos = -1
while #newest < 2 * need do
  local es = redis.call('LRANGE', fin, pos - 31, pos)
  if #es == 0 then break end
  for i = #es, 1, -1 do
    local rows = {}
    local en = parse_entry(es[i])
    entry_rows(en, en.skip, en.n - 1, rows)
    for j = #rows - 3, 1, -4 do
      if #newest >= 2 * need then break end
      newest[#newest + 1] = rows[j]
      newest[#newest + 1] = rows[j + 1]
    end
  end
  if #es < 32 then break end
  pos = pos - 32
end
local out = {}
for k = math.min(#newest, 2 * need) - 1, 2 * start + 1, -2 do
  out[#out + 1] = newest[k]
  out[#out + 1] = newest[k + 1]
end
return out
"""

#: name -> full script source (prelude + body).
SCRIPTS: dict[str, str] = {
    name: PRELUDE + body for name, body in {
        "init": INIT, "submit": SUBMIT, "register": REGISTER, "heartbeat": HEARTBEAT,
        "exchange": EXCHANGE, "complete": COMPLETE, "unregister": UNREGISTER,
        "release": RELEASE, "request_stop": REQUEST_STOP, "forget_offline": FORGET_OFFLINE,
        "workers": WORKERS, "reap": REAP, "pause": PAUSE, "cancel": CANCEL, "purge": PURGE,
        "retry": RETRY, "snapshot": SNAPSHOT, "queued_count": QUEUED_COUNT,
        "classic_get": CLASSIC_GET, "classic_put": CLASSIC_PUT,
        "connection_closed": CONNECTION_CLOSED, "expire_worker": EXPIRE_WORKER,
        "open_job": OPEN_JOB, "job": JOB, "jobs": JOBS, "results": RESULTS, "report": REPORT,
        "tasks": TASKS, "finished_since": FINISHED_SINCE, "finished_union": FINISHED_UNION,
        "done_rows": DONE_ROWS,
    }.items()
}
