//! Latency samples and their percentiles.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Summary {
    pub count: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Duration> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let mut v: Vec<u64> = self.0.iter().map(|d| d.as_micros() as u64).collect();
        if v.is_empty() {
            return Summary::default();
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Summary {
            count: v.len(),
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: *v.last().unwrap_or(&0),
        }
    }
}

pub fn per_second(count: u64, took: Duration) -> f64 {
    if took.is_zero() {
        0.0
    } else {
        count as f64 / took.as_secs_f64()
    }
}
