//! A tiny deterministic pseudo-random generator (xorshift64*) for chaos schedules and fuzz
//! mutations: a run is repeated by giving the seed it printed.

#[derive(Debug, Clone)]
pub struct Rng(u64);

/// The seed of a run: `var` if set, else the clock; printed so that a failure can be repeated.
pub fn seed_from_env(var: &str, what: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    eprintln!("[{what}] seed {seed} (repeat with {var}={seed})");
    seed
}

/// A seed from the clock's nanoseconds.
pub(crate) fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from the environment variable `var`, else from the clock; prints the seed.
    pub fn from_env(var: &str, what: &str) -> Rng {
        Rng::new(seed_from_env(var, what))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}
