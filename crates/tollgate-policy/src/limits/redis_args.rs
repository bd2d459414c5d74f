//! The pieces of the Redis wire that the store (`redis.rs`) and the batch
//! admission (`admit_batch.rs`) share: one charged counter, the failure
//! kinds, numbers as Redis arguments and the `EVALSHA` command. Below both,
//! so neither imports the other's internals both ways.

use std::time::Duration;

/// One counter an admission charges.
pub struct Item {
    /// `RedisStore::key`.
    pub key: String,
    pub amount: f64,
    pub max: f64,
    pub ttl_ms: i64,
    pub enforce: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: unexpected reply")]
    Reply,
    /// The shared script call of a batch of admissions failed.
    #[error("{0}")]
    Batch(String),
    #[error("redis: admission queue full")]
    Busy,
    #[error("redis: admission task stopped")]
    Stopped,
}

/// A number for Redis (Lua's `tonumber` and `INCRBYFLOAT` read both forms): integral
/// values (request counts, token counts, most caps) as integers through
/// `itoa`; redis-rs formats every `f64` through ryu, which profiled at
/// ~770 instructions per value for caps like 1e11.
pub(super) struct Num(pub f64);

impl redis::ToRedisArgs for Num {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            (self.0 as i64).write_redis_args(out);
        } else {
            self.0.write_redis_args(out);
        }
    }
}

/// `EVALSHA <sha> <keys>`, the keys and arguments to follow. Built as one
/// `Cmd` rather than through `ScriptInvocation`, which allocates a buffer
/// per key and per argument and then copies them all into a `Cmd`
/// (~6 k instructions of a five-cap admission, bench/history/LIMITS.md).
pub(super) fn evalsha(script: &redis::Script, keys: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys);
    cmd
}

#[cfg(test)]
mod tests {
    use super::Num;
    use redis::ToRedisArgs;

    #[test]
    fn numbers_are_written_as_redis_reads_them() {
        let args = |v: f64| Num(v).to_redis_args();
        assert_eq!(args(1.0), vec![b"1".to_vec()]);
        assert_eq!(args(1e11), vec![b"100000000000".to_vec()]);
        assert_eq!(args(-3.0), vec![b"-3".to_vec()]);
        assert_eq!(args(0.25), vec![b"0.25".to_vec()]);
        assert_eq!(args(1e20), 1e20f64.to_redis_args());
    }
}
