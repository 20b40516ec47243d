/**
 * One Lua script per primitive. Redis runs a script atomically (no other command interleaves), so each
 * primitive is one round trip and never a read then a write from the client. ioredis sends them with
 * EVALSHA and falls back to EVAL once after a server restart flushed the script cache.
 *
 * Every script gets the same KEYS (see keys.ts: sessions, owners, owner-keys, meta, record-keys) and
 * ARGV[1] = the cluster's key base `{prefix:cluster}:`, ARGV[2] = the notification channel; its own
 * arguments start at ARGV[3]. Per-session and per-record keys are derived from the base inside the
 * script: they share the hash tag, hence the slot, so this also works on Redis Cluster.
 *
 * Time is the server's: `TIME` is read at the top of every script (allowed since Redis 5, where
 * scripts replicate their effects, not their source). Session liveness is decided ONLY by the expiry
 * index `{T}:sessions` compared with that time, never by a key's TTL; the PX on per-session keys is a
 * backstop that cleans up after clusters nobody touches any more.
 */

/** Shared helpers, prepended to every script. */
const PRELUDE = `
local SESSIONS, OWNERS, OWNER_KEYS, META, RECORD_KEYS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local BASE, CHANNEL = ARGV[1], ARGV[2]
local clock = redis.call('TIME')
local NOW_MS = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local NOW_US = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
-- Per-session keys outlive the session by this much; only a cluster nobody touches relies on it.
local BACKSTOP_MS = 3600000

-- Lua numbers are doubles and tostring() would print 1.7e+15: format integers explicitly.
local function int(n) return string.format('%d', n) end
local function session_key(id) return BASE .. 's:' .. id end
local function held_key(id) return BASE .. 'h:' .. id end
local function record_key(key) return BASE .. 'r:' .. key end
local function notify(scope, key) redis.call('PUBLISH', CHANNEL, scope .. ' ' .. (key or '')) end

-- Lexicographic bounds of the keys starting with prefix (UTF-8 never contains the byte 0xFF).
local function lex_min(prefix) if prefix == '' then return '-' end return '[' .. prefix end
local function lex_max(prefix) if prefix == '' then return '+' end return '(' .. prefix .. '\\255' end

-- Live means: in the expiry index with an expiry after NOW by this server's clock. Nothing else
-- (a key's TTL, the session hash) decides liveness, so every script agrees on it.
local function is_live(id)
  local expires = redis.call('ZSCORE', SESSIONS, id)
  return expires ~= false and tonumber(expires) > NOW_MS
end

-- An owner entry is "<token> <session id> <acquired at ms>"; it counts only while its session is live.
local function owner_of(key)
  local value = redis.call('HGET', OWNERS, key)
  if not value then return nil end
  local token, session, at = string.match(value, '^(%d+) (%S+) (%d+)$')
  return { token = token, session = session, at = at }
end

local function drop_owner(key)
  redis.call('HDEL', OWNERS, key)
  redis.call('ZREM', OWNER_KEYS, key)
end

-- Drops a session and every key it still holds. Returns (sessions removed, owner entries removed).
local function drop_session(id)
  local dropped = 0
  for _, key in ipairs(redis.call('SMEMBERS', held_key(id))) do
    local owner = owner_of(key)
    -- After this session expired the key may have gone to another session: drop only our own entry.
    if owner and owner.session == id then
      drop_owner(key)
      dropped = dropped + 1
    end
  end
  redis.call('DEL', held_key(id), session_key(id))
  return redis.call('ZREM', SESSIONS, id), dropped
end

local function notify_dropped(sessions, owners)
  if sessions > 0 then notify('sessions') end
  if owners > 0 then notify('owners') end
end

-- Housekeeping: removes a bounded number of expired sessions (and publishes that they went). Safety
-- never depends on it: every read checks liveness against NOW itself.
local function prune()
  local expired = redis.call('ZRANGEBYSCORE', SESSIONS, '-inf', int(NOW_MS), 'LIMIT', 0, 32)
  local sessions, owners = 0, 0
  for _, id in ipairs(expired) do
    local s, o = drop_session(id)
    sessions, owners = sessions + s, owners + o
  end
  notify_dropped(sessions, owners)
end

-- A fencing token: HINCRBY of a per-cluster counter that is never reset, but never below the server
-- clock in microseconds nor below the highest token the calling handle has seen (floor). So if the
-- counter is lost with the server's data (restart without persistence, failover to a replica that
-- missed the last writes), the next token is still above every token issued before, as long as the
-- server clock did not step back by more than the outage lasted. A counter at or below the floor is
-- such a loss: it is counted in META (resets, last_reset) and reported to the caller.
local function next_token(floor)
  local token = redis.call('HINCRBY', META, 'seq', 1)
  local reset = '0'
  if token <= floor then
    reset = '1'
    redis.call('HINCRBY', META, 'resets', 1)
    redis.call('HSET', META, 'last_reset', int(NOW_MS))
  end
  local least = math.max(NOW_US, floor + 1)
  if token < least then
    token = least
    redis.call('HSET', META, 'seq', int(token))
  end
  return int(token), reset
end

-- Takes key for the live session id (the caller checked it). Returns { 'acquired', token, reset } or
-- { 'held', token, holder session, acquired at, holder client id, holder process JSON }.
local function acquire(key, id, floor)
  local owner = owner_of(key)
  if owner then
    if owner.session == id then return { 'acquired', owner.token, '0' } end
    if is_live(owner.session) then
      local f = redis.call('HMGET', session_key(owner.session), 'client', 'process')
      return { 'held', owner.token, owner.session, owner.at, f[1] or '', f[2] or '' }
    end
    -- The holder's session expired, so its ownership is void already; forget the stale entry.
    redis.call('SREM', held_key(owner.session), key)
  end
  local token, reset = next_token(floor)
  redis.call('HSET', OWNERS, key, token .. ' ' .. id .. ' ' .. int(NOW_MS))
  redis.call('ZADD', OWNER_KEYS, 0, key)
  -- The held set's backstop expiry is refreshed by every renewal (every TTL / 3), not here: the hot path
  -- stays short. (Expired sessions are pruned by open, renew and close, and judged by is_live everywhere.)
  redis.call('SADD', held_key(id), key)
  notify('owners', key)
  return { 'acquired', token, reset }
end

-- Frees key if it is held with token. Returns 1 when it was (by a live session), else 0.
local function release_one(key, token)
  local owner = owner_of(key)
  if not owner or owner.token ~= token then return 0 end
  drop_owner(key)
  redis.call('SREM', held_key(owner.session), key)
  notify('owners', key)
  if is_live(owner.session) then return 1 end
  return 0
end

-- Why a conditional write is refused: 'fenced', 'version', or nil when it may go ahead.
local function refusal(key, if_version, has_guard, guard_key, guard_token)
  if has_guard == '1' then
    local owner = owner_of(guard_key)
    -- Exactly this token, held by a live session: a released or expired owner is fenced too.
    if not owner or owner.token ~= guard_token or not is_live(owner.session) then return 'fenced' end
  end
  if if_version ~= '' then
    local version = redis.call('HGET', record_key(key), 'version')
    if if_version == 'absent' then
      -- Unique insert: scripts run one at a time, so of concurrent claimers exactly one sees no record.
      if version then return 'version' end
    elseif version ~= if_version then
      return 'version'
    end
  end
  return nil
end
`;

/** ARGV: id, info JSON, ttl ms, client id, process JSON. Returns the server time. */
const openSession = `
prune()
local id, ttl = ARGV[3], tonumber(ARGV[5])
redis.call('HSET', session_key(id), 'info', ARGV[4], 'ttl', ARGV[5], 'opened', int(NOW_MS), 'client', ARGV[6], 'process', ARGV[7])
redis.call('PEXPIRE', session_key(id), int(ttl + BACKSTOP_MS))
redis.call('ZADD', SESSIONS, int(NOW_MS + ttl), id)
notify('sessions')
return int(NOW_MS)
`;

/** ARGV: id, client id. Returns 1 when renewed, 0 when the session is gone (for good). */
const renewSession = `
prune()
local id = ARGV[3]
local ttl = tonumber(redis.call('HGET', session_key(id), 'ttl'))
-- The liveness test makes renewal of an expired session fail: once expired, it never comes back.
if not is_live(id) or not ttl then
  notify_dropped(drop_session(id))
  return 0
end
redis.call('ZADD', SESSIONS, 'XX', int(NOW_MS + ttl), id)
-- Re-bind to the connection the renewal came on (it changes when the handle reconnects).
redis.call('HSET', session_key(id), 'client', ARGV[4])
redis.call('PEXPIRE', session_key(id), int(ttl + BACKSTOP_MS))
redis.call('PEXPIRE', held_key(id), int(ttl + BACKSTOP_MS))
return 1
`;

/** ARGV: id, info (JSON). Returns 1 when the live session's info was replaced, 0 when it is gone. */
const updateSessionInfo = `
local id = ARGV[3]
-- A dead session stays dead: its info is not touched (nor its expiry: only renewals extend it).
if not is_live(id) then return 0 end
redis.call('HSET', session_key(id), 'info', ARGV[4])
notify('sessions')
return 1
`;

/** ARGV: id. Returns 1 when a session was removed. */
const closeSession = `
prune()
local sessions, owners = drop_session(ARGV[3])
notify_dropped(sessions, owners)
return sessions
`;

/** No ARGV. Returns { now, { id, info, ttl, opened, expires, client, process }… } for live sessions. */
const listSessions = `
local out = { int(NOW_MS) }
local ids = redis.call('ZRANGEBYSCORE', SESSIONS, '(' .. int(NOW_MS), '+inf', 'WITHSCORES')
for i = 1, #ids, 2 do
  local f = redis.call('HMGET', session_key(ids[i]), 'info', 'ttl', 'opened', 'client', 'process')
  if f[1] then
    table.insert(out, { ids[i], f[1], f[2], f[3], ids[i + 1], f[4] or '', f[5] or '' })
  end
end
return out
`;

/**
 * ARGV: key, session id, token floor. Returns { 'acquired', token, reset } | { 'expired' } |
 * { 'held', token, holder session, acquired at, holder client id, holder process JSON }.
 */
const tryAcquire = `
if not is_live(ARGV[4]) then return { 'expired' } end
return acquire(ARGV[3], ARGV[4], tonumber(ARGV[5]))
`;

/**
 * ARGV: session id, token floor, keys…. Returns { 'expired' } or one reply of tryAcquire per key (after
 * the session's liveness, checked once: the script runs at one instant).
 */
const tryAcquireMany = `
local id, floor = ARGV[3], tonumber(ARGV[4])
if not is_live(id) then return { 'expired' } end
local out = {}
for i = 5, #ARGV do out[#out + 1] = acquire(ARGV[i], id, floor) end
return out
`;

/** ARGV: key, token. Returns 1 when the key was held (by a live session) with that token. */
const release = `
return release_one(ARGV[3], ARGV[4])
`;

/** ARGV: key, token, key, token…. Returns release's answer per key. */
const releaseMany = `
local out = {}
for i = 3, #ARGV, 2 do out[#out + 1] = release_one(ARGV[i], ARGV[i + 1]) end
return out
`;

/** ARGV: key. Returns { token, session, acquired at } or nil. */
const holder = `
local owner = owner_of(ARGV[3])
if owner and is_live(owner.session) then return { owner.token, owner.session, owner.at } end
return false
`;

/** ARGV: prefix. Returns { key, token, session, acquired at }… of live holders, in key order. */
const listHolders = `
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYLEX', OWNER_KEYS, lex_min(ARGV[3]), lex_max(ARGV[3]))) do
  local owner = owner_of(key)
  if owner and is_live(owner.session) then table.insert(out, { key, owner.token, owner.session, owner.at }) end
end
return out
`;

/**
 * ARGV: key, ifVersion ('' | 'absent' | n), has guard ('0' | '1'), guard key, guard token, value JSON.
 * Returns { 1, version } or { 0, reason }.
 */
const put = `
local key = ARGV[3]
local refused = refusal(key, ARGV[4], ARGV[5], ARGV[6], ARGV[7])
if refused then return { 0, refused } end
local version = redis.call('HINCRBY', record_key(key), 'version', 1)
redis.call('HSET', record_key(key), 'value', ARGV[8], 'at', int(NOW_MS))
redis.call('ZADD', RECORD_KEYS, 0, key)
notify('records', key)
return { 1, version }
`;

/** ARGV: key, ifVersion, has guard, guard key, guard token. Returns 1 when deleted. */
const deleteRecord = `
local key = ARGV[3]
if refusal(key, ARGV[4], ARGV[5], ARGV[6], ARGV[7]) then return 0 end
if redis.call('DEL', record_key(key)) == 0 then return 0 end
redis.call('ZREM', RECORD_KEYS, key)
notify('records', key)
return 1
`;

/** ARGV: prefix, '1' for newest first, limit (-1: all). Returns { key, value, version, at }…. */
const list = `
local prefix, limit = ARGV[3], ARGV[5]
local keys
if ARGV[4] == '1' then
  keys = redis.call('ZREVRANGEBYLEX', RECORD_KEYS, lex_max(prefix), lex_min(prefix), 'LIMIT', 0, limit)
else
  keys = redis.call('ZRANGEBYLEX', RECORD_KEYS, lex_min(prefix), lex_max(prefix), 'LIMIT', 0, limit)
end
local out = {}
for _, key in ipairs(keys) do
  local f = redis.call('HMGET', record_key(key), 'value', 'version', 'at')
  if f[1] then table.insert(out, { key, f[1], f[2], f[3] }) end
end
return out
`;

/** ARGV: prefix, before key. Returns how many records were deleted. */
const deleteBefore = `
local prefix = ARGV[3]
local deleted = 0
for _, key in ipairs(redis.call('ZRANGEBYLEX', RECORD_KEYS, lex_min(prefix), '(' .. ARGV[4])) do
  -- The lexicographic range [prefix, before) also holds keys that do not start with prefix.
  if string.sub(key, 1, #prefix) == prefix then
    redis.call('DEL', record_key(key))
    redis.call('ZREM', RECORD_KEYS, key)
    deleted = deleted + 1
  end
end
if deleted > 0 then notify('records') end
return deleted
`;

/**
 * ARGV: session id, client id seen gone. Reaps a crashed owner's session. Conditioned on the client id
 * the caller checked: if the session was re-bound to another connection since, nothing happens.
 */
const reapSession = `
if redis.call('HGET', session_key(ARGV[3]), 'client') ~= ARGV[4] then return 0 end
local sessions, owners = drop_session(ARGV[3])
notify_dropped(sessions, owners)
return sessions
`;

export const SCRIPTS = {
  batonOpenSession: openSession,
  batonRenewSession: renewSession,
  batonUpdateSessionInfo: updateSessionInfo,
  batonCloseSession: closeSession,
  batonListSessions: listSessions,
  batonTryAcquire: tryAcquire,
  batonTryAcquireMany: tryAcquireMany,
  batonRelease: release,
  batonReleaseMany: releaseMany,
  batonHolder: holder,
  batonListHolders: listHolders,
  batonPut: put,
  batonDelete: deleteRecord,
  batonList: list,
  batonDeleteBefore: deleteBefore,
  batonReapSession: reapSession,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

/** Number of KEYS every script declares (see keys.ts `scriptKeys`). */
export const SCRIPT_KEY_COUNT = 5;

/** The full source of a script: the shared helpers, then its body. */
export function scriptSource(name: ScriptName): string {
  return `${PRELUDE}\n${SCRIPTS[name]}`;
}
