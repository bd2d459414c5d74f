//! The Redis admission of a batch of requests: the Lua script, the
//! command that carries the batch, and the reply turned back into each
//! request's answer.
//!
//! Requests of one batch mostly charge the same few counters (one rule's
//! key, team, tenant, model). So the command names each counter once, with
//! its cap, and each request charges counters by index; the script reads
//! each counter once, checks the requests one after the other against the
//! values as the requests before them left them (as exact as one call per
//! request: the script runs atomically), and writes each counter once.
//! It answers each counter's value before the batch and each request's
//! failed charge; the gateway replays the batch in the same order to know
//! every request's used-before amounts. Redis's work per request is a few
//! number conversions instead of a key, four arguments and a formatted
//! number per charge (bench/history/LIMITS.md).

use std::collections::HashMap;

use super::redis_args::{evalsha, Item, Num, RedisFailure};

pub(super) const SCRIPT: &str = r#"
-- KEYS: the batch's counters, each once. ARGV[1]: the number of requests
-- R; then per counter (KEYS order) 3 values: max, ttl_ms, enforce (1/0);
-- then per request: its number of charges n, then n pairs (counter index
-- into KEYS, amount).
-- Returns one string: "v1,...,vD;f1,...,fR": each counter's value before
-- the batch, then each request's failed charge (1-based; 0: admitted).
-- One bulk reply: redis-rs parses each element of an array reply
-- separately, at a cost that showed in profiles.
local d = #KEYS
local val, fresh, add, touched, maxv, ttl, enf = {}, {}, {}, {}, {}, {}, {}
local start = {}
for i = 1, d do
  local v = redis.call('GET', KEYS[i])
  fresh[i] = not v
  val[i] = tonumber(v or '0')
  start[i] = tostring(val[i])
  add[i] = 0
  local b = 1 + (i - 1) * 3
  maxv[i] = tonumber(ARGV[b + 1])
  ttl[i] = tonumber(ARGV[b + 2])
  enf[i] = ARGV[b + 3] == '1'
end
local p = 2 + 3 * d
local out = {}
for r = 1, tonumber(ARGV[1]) do
  local n = tonumber(ARGV[p])
  local failed = 0
  for j = 0, n - 1 do
    local c = tonumber(ARGV[p + 1 + 2 * j])
    if enf[c] and val[c] + tonumber(ARGV[p + 2 + 2 * j]) > maxv[c] then
      failed = j + 1
      break
    end
  end
  if failed == 0 then
    for j = 0, n - 1 do
      local c = tonumber(ARGV[p + 1 + 2 * j])
      local amount = tonumber(ARGV[p + 2 + 2 * j])
      val[c] = val[c] + amount
      add[c] = add[c] + amount
      touched[c] = true
    end
  end
  out[r] = failed
  p = p + 1 + 2 * n
end
-- A positive ttl is set when the counter is created (windowed counters);
-- a negative one is refreshed on every admission (in-flight gauges).
for i = 1, d do
  if touched[i] then
    redis.call('INCRBYFLOAT', KEYS[i], add[i])
    if ttl[i] < 0 then
      redis.call('PEXPIRE', KEYS[i], -ttl[i])
    elseif fresh[i] then
      redis.call('PEXPIRE', KEYS[i], ttl[i])
    end
  end
end
return table.concat(start, ',') .. ';' .. table.concat(out, ',')
"#;

/// One counter of a batch: its first item, with the caps merged.
struct Counter<'a> {
    key: &'a str,
    max: f64,
    ttl_ms: i64,
    enforce: bool,
}

/// A batch's counters, each once, and every item's counter index, in the
/// order the requests and their items come.
pub(super) struct Encoded<'a> {
    counters: Vec<Counter<'a>>,
    /// Per item of every request, flattened: its index into `counters`.
    index: Vec<usize>,
}

impl<'a> Encoded<'a> {
    /// Names each counter once. Items of one counter carry the same cap
    /// but across a config reload; then the tighter one is checked
    /// (smaller max, enforced if any is) for the whole batch.
    pub(super) fn new(requests: &[&'a [Item]]) -> Self {
        let total: usize = requests.iter().map(|r| r.len()).sum();
        let mut seen: HashMap<&str, usize, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(total.min(64), Default::default());
        let mut counters: Vec<Counter<'a>> = Vec::new();
        let mut index = Vec::with_capacity(total);
        for it in requests.iter().flat_map(|r| r.iter()) {
            let i = *seen.entry(it.key.as_str()).or_insert_with(|| {
                counters.push(Counter {
                    key: &it.key,
                    max: it.max,
                    ttl_ms: it.ttl_ms,
                    enforce: it.enforce,
                });
                counters.len() - 1
            });
            let c = &mut counters[i];
            c.max = c.max.min(it.max);
            c.enforce |= it.enforce;
            // In-flight gauges (negative: refreshed) keep the longest.
            c.ttl_ms = if c.ttl_ms < 0 && it.ttl_ms < 0 {
                c.ttl_ms.min(it.ttl_ms)
            } else {
                c.ttl_ms.max(it.ttl_ms)
            };
            index.push(i);
        }
        Self { counters, index }
    }

    /// `EVALSHA` of the script with the batch's keys and arguments.
    pub(super) fn command(&self, script: &redis::Script, requests: &[&[Item]]) -> redis::Cmd {
        let mut cmd = evalsha(script, self.counters.len());
        for c in &self.counters {
            cmd.arg(c.key);
        }
        cmd.arg(requests.len());
        for c in &self.counters {
            cmd.arg(Num(c.max)).arg(c.ttl_ms).arg(u8::from(c.enforce));
        }
        let mut index = self.index.iter();
        for r in requests {
            cmd.arg(r.len());
            for (it, i) in r.iter().zip(index.by_ref()) {
                cmd.arg(i + 1).arg(Num(it.amount));
            }
        }
        cmd
    }

    /// Each request's answer from the script's reply: `(failed, used)`,
    /// the used-before amounts found by replaying the batch in order.
    pub(super) fn answers(
        &self,
        reply: &str,
        requests: &[&[Item]],
    ) -> Result<Vec<(usize, Vec<f64>)>, RedisFailure> {
        let (start, failed) = reply.split_once(';').ok_or(RedisFailure::Reply)?;
        let mut cur = start
            .split(',')
            .map(|v| parse_used(v).ok_or(RedisFailure::Reply))
            .collect::<Result<Vec<f64>, _>>()?;
        if cur.len() != self.counters.len() {
            return Err(RedisFailure::Reply);
        }
        let mut failed = failed.split(',');
        let mut rest = self.index.as_slice();
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            let f = failed
                .next()
                .and_then(|f| f.parse::<usize>().ok())
                .filter(|&f| f <= r.len())
                .ok_or(RedisFailure::Reply)?;
            let (idx, tail) = rest.split_at_checked(r.len()).ok_or(RedisFailure::Reply)?;
            rest = tail;
            let used: Vec<f64> = idx.iter().map(|&i| cur[i]).collect();
            if f == 0 {
                for (it, &i) in r.iter().zip(idx) {
                    cur[i] += it.amount;
                }
            }
            out.push((f, used));
        }
        if failed.next().is_some() {
            return Err(RedisFailure::Reply);
        }
        Ok(out)
    }
}

/// One counter value: Lua's `tostring` writes integral counters as
/// integers, parsed here without the float parser.
fn parse_used(u: &str) -> Option<f64> {
    match u.parse::<i64>() {
        Ok(v) => Some(v as f64),
        Err(_) => u.parse::<f64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, amount: f64, max: f64, ttl_ms: i64, enforce: bool) -> Item {
        Item {
            key: key.into(),
            amount,
            max,
            ttl_ms,
            enforce,
        }
    }

    #[test]
    fn counters_named_once_and_replayed_in_order() {
        let a = [
            item("k", 1.0, 10.0, 60_000, true),
            item("t", 100.0, 250.0, 60_000, true),
        ];
        let b = [
            item("k", 1.0, 10.0, 60_000, true),
            item("t", 100.0, 250.0, 60_000, true),
        ];
        let c = [
            item("k", 1.0, 10.0, 60_000, true),
            item("t", 100.0, 250.0, 60_000, true),
        ];
        let reqs: Vec<&[Item]> = vec![&a, &b, &c];
        let enc = Encoded::new(&reqs);
        assert_eq!(enc.counters.len(), 2);
        assert_eq!(enc.index, vec![0, 1, 0, 1, 0, 1]);
        let args: Vec<Vec<u8>> = enc
            .command(&redis::Script::new("return 1"), &reqs)
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => vec![],
            })
            .collect();
        let text: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // EVALSHA sha 2 k t 3 | 10 60000 1 | 250 60000 1 | 2 1 1 2 100 | ...
        assert_eq!(text[0], "EVALSHA");
        assert_eq!(&text[2..7], ["2", "k", "t", "3", "10"]);
        assert_eq!(&text[12..17], ["2", "1", "1", "2", "100"]);
        // The third request would cross the token cap: it failed on charge 2.
        let answers = enc.answers("4,20;0,0,2", &reqs).unwrap();
        assert_eq!(answers[0], (0, vec![4.0, 20.0]));
        assert_eq!(answers[1], (0, vec![5.0, 120.0]));
        assert_eq!(answers[2], (2, vec![6.0, 220.0]));
    }

    #[test]
    fn caps_merge_to_the_tighter_across_a_reload() {
        let a = [item("k", 1.0, 10.0, -5_000, false)];
        let b = [item("k", 1.0, 8.0, -9_000, true)];
        let reqs: Vec<&[Item]> = vec![&a, &b];
        let enc = Encoded::new(&reqs);
        let c = &enc.counters[0];
        assert_eq!((c.max, c.ttl_ms, c.enforce), (8.0, -9_000, true));
    }

    #[test]
    fn bad_replies_fail_cleanly() {
        let a = [item("k", 1.0, 10.0, 1, true), item("t", 2.0, 10.0, 1, true)];
        let reqs: Vec<&[Item]> = vec![&a];
        let enc = Encoded::new(&reqs);
        for bad in [
            "", "1,2", "1;0", "1,2;", "1,2;3", "1,2;0,0", "x,2;0", "1,2;-1",
        ] {
            assert!(enc.answers(bad, &reqs).is_err(), "{bad:?}");
        }
        assert_eq!(
            enc.answers("1e+15,0.5;0", &reqs).unwrap()[0].1,
            vec![1e15, 0.5]
        );
    }
}
